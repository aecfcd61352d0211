"""One error tree for the whole platform.

Every error carries a stable machine ``code`` (dotted, ``area.reason``), a ``message`` and an HTTP
``status`` that only ``egocrowd.web`` turns into an RFC 9457 problem document. Codes are part of the
public API: never rename one, add a new one instead.

The ``message`` is this occurrence's words, in English, as precise and technical as helps (it becomes
the problem's ``detail``). What a person reads first is the code's ``title``: one short sentence per
code in ``egocrowd.problem_titles``, translated into the reader's language. A new code needs a row
there (and in docs/api.md's tables); tests/docs/test_error_codes.py checks both.

    EgocrowdError                       500  internal
    ├── InvalidInput                    422  e.g. validation.failed, campaign.bad_requirements
    │                                        input.nul_character, input.out_of_range,
    │                                        input.non_finite_number (refused where values meet the database)
    │                                        money.bad_amount, money.sub_minor, money.unknown_currency,
    │                                        ledger.currency_mismatch, ledger.unbalanced, ledger.bad_leg,
    │                                        ledger.bad_key, ledger.reason_required, ledger.bad_owner
    ├── Unauthenticated                 401  auth.required, auth.bad_credentials, auth.bad_token,
    │                                        auth.token_expired
    ├── Forbidden                       403  auth.forbidden, consent.missing, auth.csrf,
    │                                        ledger.override_forbidden
    ├── NotFound                        404  <entity>.not_found (ledger.transaction_not_found)
    ├── Conflict                        409  campaign.bad_transition, assignment.no_slots, ...,
    │                                        upload.offset_mismatch, upload.locked, upload.interrupted,
    │                                        ledger.idempotency_conflict
    │   └── InsufficientFunds           409  ledger.insufficient_funds (egocrowd.pay.ledger)
    ├── Gone                            410  assignment.lease_expired, upload.expired
    ├── TooLarge                        413  upload.too_large
    ├── TooManyRequests                 429  auth.throttled (extra ``retry_after``: seconds)
    ├── MediaError                      422  video.unreadable, video.too_short, ... (clip rejected)
    └── DeidError                       500  deid.model_missing, deid.detector_failed, deid.encode_failed
                                             (the clip is kept raw-only and shown as failed, never "clean")

The tus protocol's own statuses are subclasses in ``egocrowd.uploads.protocol``: BadTusRequest 400
(upload.bad_request, upload.bad_metadata, upload.bad_checksum), UnsupportedVersion 412,
UnsupportedContentType 415, ChecksumMismatch 460.
"""

from __future__ import annotations

import pickle
from typing import Any


class EgocrowdError(Exception):
    status = 500
    default_code = "internal"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra

    def __reduce__(self):
        # Keep code and extras when an error crosses a process boundary (executors, bounded calls);
        # an extra that cannot be pickled travels as its repr rather than losing the whole error.
        return (_rebuild, (type(self), self.message, self.code, {k: _picklable(v) for k, v in self.extra.items()}))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidInput(EgocrowdError):
    status = 422
    default_code = "validation.failed"


class Unauthenticated(EgocrowdError):
    status = 401
    default_code = "auth.required"


class Forbidden(EgocrowdError):
    status = 403
    default_code = "auth.forbidden"


class NotFound(EgocrowdError):
    status = 404
    default_code = "not_found"


class Conflict(EgocrowdError):
    status = 409
    default_code = "conflict"


class Gone(EgocrowdError):
    status = 410
    default_code = "gone"


class TooLarge(EgocrowdError):
    status = 413
    default_code = "too_large"


class TooManyRequests(EgocrowdError):
    """Refused for now; ``retry_after`` (seconds) becomes the Retry-After header."""

    status = 429
    default_code = "http.too_many_requests"


class MediaError(EgocrowdError):
    """A media file we cannot accept; ``code`` says why (``video.unreadable``, ``video.too_short``...)."""

    status = 422
    default_code = "video.unreadable"


class DeidError(EgocrowdError):
    """De-identification could not be done (a model missing, a detector crashed, the encoder failed).
    The clip stays raw-only, with ``code`` as its visible reason; nothing derived is served."""

    status = 500
    default_code = "deid.failed"


def _rebuild(cls, message, code, extra):
    return cls(message, code=code, **extra)


def _picklable(value):
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001
        return repr(value)
