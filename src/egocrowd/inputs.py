"""The base of every input model (API bodies, campaign definitions): strict, and refusing what no
column can hold before it gets near one. The database engine refuses the same values again at its
edge (egocrowd.db.engine), so code paths without an input model are covered too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class InputModel(BaseModel):
    # JSON parsers accept NaN, Infinity and 1e999 (→ inf): none is a number anyone can mean.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data):
        where = _nul_at(data)
        if where is not None:
            raise ValueError(f"{'.'.join(where) or 'text'} may not contain a NUL character")
        return data


def _nul_at(value, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where the first NUL character is in a JSON-like value (a path of keys), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        if isinstance(k, str) and "\x00" in k:
            return (*path, k.replace("\x00", "\\0"))
        found = _nul_at(v, (*path, str(k)))
        if found is not None:
            return found
    return None
