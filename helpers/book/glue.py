"""Glued values in the readers' editions: ``{eval}`glued("name")``` shows what ``{glue:text}`` shows on the site.
Importing this module (an edition's first cell does) makes ``myst_nb.glue`` remember each value it glues.
"""

from __future__ import annotations

from helpers.show import Text

#: every value glued in this kernel, by name
VALUES: dict[str, object] = {}


def glued(name: str, spec: str = "") -> Text:
    """The value glued as ``name``, formatted with ``spec`` (or "…" until its cell has run)."""
    if name not in VALUES:
        return Text("…")
    value = VALUES[name]
    if spec:
        try:
            return Text(format(float(value), spec))
        except (TypeError, ValueError):
            return Text(format(value, spec))
    return Text(str(value))


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
