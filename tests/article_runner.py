"""Running the article's listing step by step outside a notebook, for tests/test_article.py: each
step's printed output as a terminal shows it, and its warnings."""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from dataclasses import dataclass, field

from helpers.article import EPOCHS, _first_sentence


def namespace(train_size: int | None, test_size: int | None, seed: int, epochs: int = EPOCHS) -> dict:
    """What :func:`runnable` needs: the verified loader and the chapter's sizes, seed and epochs."""
    from helpers import data

    return {
        "__name__": "article_listing",
        "data": data,
        "train_size": train_size,
        "test_size": test_size,
        "seed": seed,
        "epochs": epochs,
    }


class Terminal(io.TextIOBase):
    """A text stream that keeps what a terminal would show: ``\\r`` returns to the start of the
    line, ``\\b`` moves back one character, later characters overwrite earlier ones, and colour
    codes take no room."""

    _CONTROL = re.compile(r"([\r\n\b])")
    _COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # ANSI colour codes: a terminal shows none of them

    def __init__(self):
        super().__init__()
        self._lines: list[list[str]] = [[]]
        self._col = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for chunk in self._CONTROL.split(self._COLOUR.sub("", text)):
            if chunk == "\n":
                self._lines.append([])
                self._col = 0
            elif chunk == "\r":
                self._col = 0
            elif chunk == "\b":
                self._col = max(0, self._col - 1)
            elif chunk:
                line = self._lines[-1]
                if self._col > len(line):
                    line.extend(" " * (self._col - len(line)))
                line[self._col : self._col + len(chunk)] = list(chunk)
                self._col += len(chunk)
        return len(text)

    def text(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self._lines).strip("\n")


@dataclass
class StepRun:
    """One step of the listing, run: its wall time, what it printed, the warnings it raised."""

    step: str
    seconds: float
    output: str
    warnings: list[str] = field(default_factory=list)


def run_step(code: str, ns: dict, step: str = "") -> StepRun:
    """Run ``code`` in the namespace ``ns`` (which it extends, as a notebook cell would)."""
    screen = Terminal()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(screen):
        warnings.simplefilter("always")
        start = time.perf_counter()
        exec(compile(code, f"<the article's listing: {step or 'code'}>", "exec"), ns)
        seconds = time.perf_counter() - start
    return StepRun(step, seconds, screen.text(), first_sentences(caught))


def first_sentences(caught) -> list[str]:
    """Each distinct warning as ``Category: its first sentence``, in the order raised."""
    seen: list[str] = []
    for w in caught:
        line = _first_sentence(w.category, w.message)
        if line not in seen:
            seen.append(line)
    return seen
