"""Writing TOML: values, keys and whole documents of nested tables, read back exactly by ``tomllib``.

The standard library reads TOML but does not write it. alem writes two kinds of file: ``alem.toml``
(:mod:`alem.config`, every key with a comment, built line by line with :func:`toml_value`) and NEB
presets (``alem demo``'s, written whole with :func:`dumps`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (quotes, backslashes and control characters escaped)."""
    # a JSON string is a TOML basic string, except that TOML forbids a raw DEL and escapes of
    # surrogates (ensure_ascii would write characters beyond U+FFFF as surrogate pairs)
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    """A key, bare when TOML allows it, else quoted."""
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """One TOML value: a bool, int, float, string, a list of them or a mapping of them (an inline
    table) (``TypeError`` otherwise)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # 'inf' and '-inf' are TOML too
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):  # an inline table
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(data: Mapping[str, Any]) -> str:
    """A TOML document: the plain keys of ``data`` first, then one ``[table]`` per nested mapping."""
    return "\n".join(_table_lines(data, ())) + "\n"


def _table_lines(data: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    lines = [f"{toml_key(key)} = {toml_value(value)}" for key, value in data.items() if not isinstance(value, Mapping)]
    for key, value in data.items():
        if isinstance(value, Mapping):
            name = ".".join(toml_key(part) for part in (*path, key))
            lines += ["", f"[{name}]", *_table_lines(value, (*path, key))]
    return lines
