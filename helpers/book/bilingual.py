"""One notebook, two languages: keep one language's prose and every code cell.

Markdown cells are tagged ``en`` or ``zh``; code cells belong to both unless tagged. :func:`split`
makes the readers' editions (from the source) and the sites' pages (``page=True``, from the executed
notebook, so both languages show the same numbers; papermill's injected cell is folded into the
parameters cell). Per language a code cell may give an output (``metadata: {"lang": "zh"}``), a comment
``# English ‖ 中文`` and a figure caption (``mystnb: figure: caption_en / caption_zh``).
"""

from __future__ import annotations

import ast
import copy
import re

LANGS = ("en", "zh")
#: a line of the parameters cell: ``name: type = value  # comment``
PARAMETER_LINE = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)(?P<annotation>\s*:[^=#]+)?=\s*(?P<value>.*?)(?P<comment>\s+#.*)?$"
)


def language_of(cell) -> str | None:
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t in LANGS]
    if len(tags) > 1:
        raise ValueError(f"a cell is tagged with both languages: {cell.source[:60]!r}")
    return tags[0] if tags else None


def check_tags(nb, name: str = "notebook") -> None:
    """Every markdown cell must belong to exactly one language."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and language_of(cell) is None:
            raise ValueError(f"{name}: markdown cell {i} has no language tag (en or zh): {cell.source[:60]!r}")


#: a comment in both languages: ``# English ‖ 中文``
BILINGUAL_COMMENT = re.compile(r"(?P<lead>#\s*)(?P<en>[^‖\n]*?)\s*‖\s*(?P<zh>[^\n]*)$")


def _localize(cell, lang: str) -> None:
    """A code cell's figure caption, comments and outputs in ``lang``."""
    figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    if isinstance(figure, dict):
        captions = {other: figure.pop(f"caption_{other}", None) for other in LANGS}
        if captions[lang] is not None:
            figure["caption"] = captions[lang]
    lines = cell.source.split("\n")
    cell.source = "\n".join(BILINGUAL_COMMENT.sub(lambda m: m["lead"] + m[lang].rstrip(), line) for line in lines)
    cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("metadata", {}).get("lang") in (None, lang)]


def fold_parameters(nb) -> None:
    """Show this run's values (papermill's injected cell) in the parameters cell, comments kept; drop the
    injected cell, and collapse the parameters cell on the page."""
    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    assigned = [node for cell in injected for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)]
    values = {a.targets[0].id: ast.literal_eval(a.value) for a in assigned if isinstance(a.targets[0], ast.Name)}

    def fold(match: re.Match) -> str:
        if match["name"] not in values:
            return match[0]
        return f"{match['name']}{match['annotation'] or ' '}= {values[match['name']]!r}{match['comment'] or ''}"

    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            cell.source = "\n".join(PARAMETER_LINE.sub(fold, line) for line in cell.source.splitlines())
            if "hide-input" not in tags:
                tags.append("hide-input")


def split(nb, lang: str, page: bool = False, name: str = "notebook"):
    """The ``lang`` edition of a bilingual notebook; with ``page``, a page of the site (from the executed notebook, so
    both languages show the same numbers, the injected parameters folded into the parameters cell)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {LANGS}")
    check_tags(nb, name)
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if language_of(c) in (None, lang)]
    for cell in out.cells:
        if cell.cell_type == "code":
            _localize(cell, lang)
    if page:
        fold_parameters(out)
    out.metadata["language"] = lang
    return out
