"""Glued values in the readers' editions: ``{eval}`glued("name")``` shows what ``{glue:text}`` shows on the site.

Importing this module (an edition's first cell does) makes ``myst_nb.glue`` remember each value it
glues; :func:`glued` returns one formatted as the site does (``glued("acc", ".1%")``).
"""

from __future__ import annotations

#: every value glued in this kernel, by name
VALUES: dict[str, object] = {}


class Shown:
    """A value as text: its repr is the text itself (no quotes), as the site shows it."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def glued(name: str, spec: str = "") -> Shown:
    """The value glued as ``name``, formatted with ``spec`` (or "…" until its cell has run)."""
    if name not in VALUES:
        return Shown("…")
    value = VALUES[name]
    if spec:
        try:
            return Shown(format(float(value), spec))
        except (TypeError, ValueError):
            return Shown(format(value, spec))
    return Shown(str(value))


def record() -> None:
    """Make ``myst_nb.glue`` remember the values it glues (once per kernel)."""
    import myst_nb

    if getattr(myst_nb.glue, "_records", False):
        return
    original = myst_nb.glue

    def glue(name, variable, display=True):
        VALUES[name] = variable
        return original(name, variable, display=display)

    glue._records = True
    glue.__doc__ = original.__doc__
    myst_nb.glue = glue


record()
