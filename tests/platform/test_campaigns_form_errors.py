"""The one form-error mechanism (egocrowd.web.pages.forms): every pydantic error type it maps, in
plain words, each under its form field; our own field errors; the campaign form's own words."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from egocrowd.campaigns.schema import CampaignIn
from egocrowd.errors import Conflict, InvalidInput
from egocrowd.web.pages.campaigns import WORDS
from egocrowd.web.pages.forms import FALLBACK, GENERAL, MESSAGES, Words, field_errors, message, summary
from egocrowd.web.pages.render import form_error

JARGON = ("Value error", "pattern", "String should", "Input should", "valid integer", "Extra inputs", "ctx")


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


class Everything(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("abc", min_length=3, max_length=5)
    tags: list[str] = Field(default_factory=lambda: ["a"], min_length=1, max_length=2)
    seconds: float = Field(5, ge=1, le=10)
    count: int = Field(5, gt=0, lt=10)
    ratio: float = 0.5
    flag: bool = False
    side: Literal["left", "right"] = "left"
    colour: Colour = Colour.red
    code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "KE"
    when: datetime | None = None
    nested: dict[str, int] = Field(default_factory=dict)
    even: int = 2
    required: str

    @field_validator("even")
    @classmethod
    def _even(cls, v):
        if v % 2:
            raise ValueError("the number must be even")
        return v


#: input → (error type, field, plain message)
CASES = [
    ({}, "missing", "required", "Please fill this in."),
    ({"name": "ab"}, "string_too_short", "name", "Must be at least 3 characters."),
    ({"name": ""}, "string_too_short", "name", "Please fill this in."),
    ({"name": "abcdefg"}, "string_too_long", "name", "Must be at most 5 characters."),
    ({"tags": []}, "too_short", "tags", "Give at least 1 item."),
    ({"tags": ["a", "b", "c"]}, "too_long", "tags", "Give at most 2 items."),
    ({"seconds": 0}, "greater_than_equal", "seconds", "Must be at least 1 second."),
    ({"seconds": 11}, "less_than_equal", "seconds", "Must be at most 10 seconds."),
    ({"count": 0}, "greater_than", "count", "Must be more than 0."),
    ({"count": 10}, "less_than", "count", "Must be less than 10."),
    ({"count": "many"}, "int_parsing", "count", "Must be a whole number, such as 12."),
    ({"count": 1.5}, "int_from_float", "count", "Must be a whole number, such as 12."),
    ({"ratio": "half"}, "float_parsing", "ratio", "Must be a number, such as 2.5."),
    ({"flag": "perhaps"}, "bool_parsing", "flag", "Choose yes or no."),
    ({"side": "up"}, "literal_error", "side", "Choose one of: left or right."),
    ({"colour": "green"}, "enum", "colour", "Choose one of: red or blue."),
    ({"code": "Kenya"}, "string_pattern_mismatch", "code", "“Kenya” is not in the expected form."),
    ({"when": "next tuesday"}, "datetime_from_date_parsing", "when", "Give a date and time, such as 2027-01-31 18:00."),
    ({"even": 3}, "value_error", "even", "The number must be even."),
    ({"surprise": 1}, "extra_forbidden", "surprise", "This is not part of the form."),
    ({"nested": [1]}, "dict_type", "nested", FALLBACK),
]


@pytest.mark.parametrize(("data", "kind", "field", "plain"), CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_each_error_type_in_plain_words(data, kind, field, plain):
    with pytest.raises(ValidationError) as caught:
        Everything.model_validate({"required": "x", **data} if field != "required" else data)
    errors = caught.value.errors()
    assert kind in {e["type"] for e in errors}
    got = field_errors(caught.value, Words(units={"seconds": "second"}))
    assert got[field] == plain
    assert not any(j in plain for j in JARGON)


def test_the_cases_cover_every_mapped_type():
    covered = {c[1] for c in CASES}
    # types a form cannot produce through this model (checked by their template only)
    unreachable = {
        "int_type", "float_type", "finite_number", "decimal_parsing", "datetime_parsing",
        "datetime_type", "date_parsing", "assertion_error",
    }  # fmt: skip
    assert set(MESSAGES) - covered == unreachable
    for kind in unreachable:
        text = message({"type": kind, "loc": ("x",), "msg": "", "input": "?", "ctx": {"error": "it is wrong"}}, "x")
        assert text and not any(j in text for j in JARGON), kind


def test_all_errors_at_once_one_per_field():
    with pytest.raises(ValidationError) as caught:
        Everything.model_validate({"name": "a", "seconds": 0, "tags": ["a", "b", "c"], "required": "x"})
    got = field_errors(caught.value)
    assert set(got) == {"name", "seconds", "tags"}
    assert summary(got) == "3 things need fixing before this can be saved."
    assert summary({"name": "x"}) == "One thing needs fixing before this can be saved."


def test_our_own_errors_name_their_field_or_none():
    assert field_errors(InvalidInput("Enter a valid email address.", code="user.bad_email", field="email")) == {
        "email": "Enter a valid email address."
    }
    assert field_errors(Conflict("Taken.", code="x.taken", field="pay_cents"), Words(names={"pay_cents": "pay"})) == {
        "pay": "Taken."
    }
    assert field_errors(Conflict("Not now.", code="x.busy")) == {GENERAL: "Not now."}
    words = Words(overrides={"email": {"user.bad_email": "Use an address such as ana@example.org."}})
    assert field_errors(InvalidInput("…", code="user.bad_email", field="email"), words) == {
        "email": "Use an address such as ana@example.org."
    }


def test_the_one_line_error_of_other_pages_uses_the_same_plain_words():
    """render.form_error (the line above the account, admin and consent forms) speaks like field_errors."""
    with pytest.raises(ValidationError) as caught:
        Everything.model_validate({"name": "a", "seconds": 0, "required": "x"})
    line = form_error(caught.value)
    # the problem's title first (the reader's language), what exactly is wrong on the second line
    assert line == {
        "code": "validation.failed",
        "title": "Some of what was sent needs fixing",
        "detail": "Must be at least 3 characters. Must be at least 1.",
        "message": 'Some of what was sent needs fixing<br><span class="error-detail">'
        "Must be at least 3 characters. Must be at least 1.</span>",
    }
    assert not any(j in line["message"] for j in JARGON)
    # our own refusal: its detail is the occurrence's English message, marked as English
    line = form_error(InvalidInput("Enter a valid email address <now>.", code="user.bad_email", field="email"))
    assert line["title"] == "This email address is not valid" and line["detail"] == "Enter a valid email address <now>."
    assert line["message"] == (
        'This email address is not valid<br><span class="error-detail" lang="en" dir="ltr" translate="no">'
        "Enter a valid email address &lt;now&gt;.</span>"
    )


def test_the_campaign_form_words():
    form = {
        "title": "ab",
        "instructions": "Fold a shirt, hands in view.",
        "requirements": {"min_duration_s": 30, "max_duration_s": 10, "min_fps": 0, "max_upload_mb": 0},
        "taxonomy": {"verbs": "take, Fold it!", "nouns": ""},
        "target_clips": -1,  # 0 is an evaluation-only campaign (#19)
        "pay_cents": "1.5x",
        "currency": "dollars",
        "expected_minutes": 5,
        "allowed_countries": "KE, Kenya",
        "buyer_name": "Lab",
        "consent_version": "",
        "deadline_at": "2020-01-01T00:00",
        "max_clips_per_worker": "lots",
    }
    with pytest.raises(ValidationError) as caught:
        CampaignIn.model_validate(form)
    got = field_errors(caught.value, WORDS)
    assert got == {
        "title": "Must be at least 3 characters.",
        "max_duration_s": "The longest clip must be at least as long as the shortest.",
        "min_fps": "Must be at least 1 frame per second.",
        "max_upload_mb": "Must be at least 1 MB.",
        "verbs": "Use lower-case words such as fold or open_lid; “it!” is not one.",
        "nouns": "Give at least one object.",
        "target_clips": "Must be at least 0 clips.",
        "pay": "Must be an amount, such as 1.50.",
        "currency": "Use a three-letter currency code such as USD, EUR or KES.",
        "allowed_countries": "Use two-letter country codes such as KE or BR; “KENYA” is not one.",
        "consent_version": "Choose the consent workers sign.",
        "deadline_at": "The deadline must be in the future.",
        "max_clips_per_worker": "Must be a whole number, such as 12.",
    }
    for text in got.values():
        assert not any(j in text for j in JARGON), text
