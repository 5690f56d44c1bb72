"""A chapter's headline results, glued as ``headline_<name>`` (JSON text) for the conclusion's table."""

from __future__ import annotations

import ast
import json
import re

PREFIX = "headline_"
#: how a value reads: a percentage, "2.3×", months, minutes, percentage points, a ratio "0.87", one
#: decimal "3.2", a whole number "1,234", or words already written in each language (en, zh)
UNITS = ("pct", "times", "months", "minutes", "points", "ratio", "one", "whole", "words")
Words = tuple[str, str]  # (English, Chinese)


def _words(pair, what: str) -> list[str]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(w, str) and w for w in pair)):
        raise ValueError(f"{what} must be (English, Chinese) words, got {pair!r}")
    return list(pair)


def payload(value, unit: str, measure: Words, meaning: Words | None = None) -> str:
    """The JSON text glued for one headline (checked: a known unit, a number or words, two wordings)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}: one of {', '.join(UNITS)}")
    data = {"value": _words(value, "a value in words") if unit == "words" else float(value), "unit": unit}
    data.update(measure=_words(measure, "measure"), meaning=None if meaning is None else _words(meaning, "meaning"))
    return json.dumps(data, ensure_ascii=False)


def headline(name: str, value, unit: str, measure: Words, meaning: Words | None = None) -> None:
    """Glue one headline: ``value`` in ``unit`` (nan if not measured), (en, zh) ``measure`` and ``meaning``."""
    from myst_nb import glue

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValueError(f"a headline's name is letters, digits and '_' (an identifier), got {name!r}")
    glue(PREFIX + name, payload(value, unit, measure, meaning), display=False)


def parse(raw) -> dict:
    """One headline from the summary's plain-text repr of its glued JSON text (or the text itself)."""
    data = json.loads(ast.literal_eval(raw) if isinstance(raw, str) and raw[:1] in "'\"" else raw)
    for key in ("measure", "meaning") + (("value",) if data["unit"] == "words" else ()):
        data[key] = None if data[key] is None else tuple(data[key])
    return data


def of(metrics: dict) -> dict[str, dict]:
    """Every headline among a chapter's glued values (``name`` -> :func:`parse`), in the order glued."""
    return {name.removeprefix(PREFIX): parse(raw) for name, raw in metrics.items() if name.startswith(PREFIX)}
