"""The course's vocabulary (``book/vocabulary.yml``, read by :mod:`helpers.words`): well formed, and
holding every term the code and the chapters look up."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest
import yaml

from helpers import words
from helpers.paths import NOTEBOOKS, ROOT

#: the functions that look a literal term up: ``w("epoch")``, ``_w("model", lang)``, ``words.zh(...)``, ``sentence(...)``
LOOKUPS = {"w", "_w", "in_lang", "zh", "both", "sentence"}
#: a section named in a file: ``of(lang, "serving")``, ``in_lang(term, lang, "lm")``, ``glue(name, term, "lm")``
SECTION = re.compile(r"""["']([a-z_0-9]+)["']\)""")


def _sources():
    """Every helper module and every chapter's code."""
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        yield path, "\n".join(c.source for c in cells if c.cell_type == "code" and not c.source.startswith(("%", "!")))


def _terms(node) -> list[str]:
    """The literal terms of an argument: a string, or each branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _terms(node.body) + _terms(node.orelse)
    return []


def _looked_up(tree) -> list[tuple[str, str | None]]:
    """``(term, section)`` of every literal lookup: the section the call names (``common`` when it
    names none), or None for a file's own ``w``/``_w`` (any section the file names)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        where = {"in_lang": 2, "zh": 1, "both": 1, "sentence": 1, "glue": 2}.get(name)
        if name == "glue" and not (isinstance(node.func, ast.Attribute) and node.func.value.id == "words"):
            continue
        args = node.args[1:] if name == "glue" else node.args
        section = None
        if where is not None:
            named = _terms(node.args[where]) if len(node.args) > where else []
            if name == "glue" and named and named[0] not in words.vocabulary():
                continue  # words.glue(name, en, zh): both wordings given
            section = named[0] if named else words.COMMON
        if name in LOOKUPS or name == "glue":
            found += [(term, section) for term in _terms(args[0])]
    return found


def test_the_vocabulary_is_well_formed():
    sections = words.vocabulary()
    assert words.COMMON in sections
    for name, terms in sections.items():
        assert re.fullmatch(r"[a-z_0-9]+", name) and terms, name
        for en, zh in terms.items():
            assert isinstance(en, str) and isinstance(zh, str) and en.strip() and zh.strip(), (name, en)
            # a term written with {placeholders} keeps them in Chinese
            assert sorted(re.findall(r"\{[^}]*\}", en)) == sorted(re.findall(r"\{[^}]*\}", zh)), (name, en, zh)
            if name != words.COMMON:
                assert sections[words.COMMON].get(en) != zh, f"{en!r} reads the same in common: keep it there only"


def test_a_key_given_twice_is_refused():
    with pytest.raises(KeyError, match="given twice"):
        yaml.load("common:\n  epoch: 轮次\n  epoch: 轮数\n", Loader=words._Loader)  # noqa: S506


def test_a_missing_term_names_itself():
    with pytest.raises(KeyError, match="no such term"):
        words.zh("no such term", "serving")
    with pytest.raises(KeyError, match="no such term"):
        words.in_lang("no such term", "en")
    with pytest.raises(KeyError, match="no section"):
        words.labels("no_such_section")
    assert words.label("no such term", "zh") == "no such term"


def test_lookups_and_glue(monkeypatch):
    assert words.in_lang("epoch", "en") == "epoch" and words.in_lang("epoch", "zh") == "轮次"
    assert words.of("zh", "lm")("validation") == words.zh("validation")  # common, through a section
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.update({name: value}))
    words.glue("x", "epoch")
    words.glue("y", "{run}: training", run="A")
    words.glue("z", "yes", "是")
    assert glued == {
        "x_en": "epoch",
        "x_zh": "轮次",
        "y_en": "A: training",
        "y_zh": "A：训练",
        "z_en": "yes",
        "z_zh": "是",
    }


def test_every_term_the_code_looks_up_is_in_the_vocabulary():
    missing, checked = [], 0
    for path, text in _sources():
        topics = {words.COMMON} | {t for t in SECTION.findall(text) if t in words.vocabulary()}
        for term, section in _looked_up(ast.parse(text)):
            checked += 1
            if not any(term in words.labels(t) for t in ([section] if section else topics)):
                missing.append(f"{path.relative_to(ROOT)}: {term!r}")
    assert checked > 150 and not missing, missing


def test_terms_kept_in_tables_and_built_from_names_are_in_the_vocabulary():
    """Terms the code holds in tables (looked up by key, so the scan above cannot see them), and the ones
    :func:`~helpers.topics.scaling.describe_bend` builds from its unit, in every case it words."""
    from helpers import training
    from helpers.topics import conclusion, federated, scaling, transfer

    tables = {
        "trends": [
            *scaling.BEND_WORDS.values(),
            *scaling.VERDICTS.values(),
            *(name for _, name in scaling.AXES.values()),
            *(w for wordings in federated.GAP_WORDS.values() for w in wordings),
            *federated.ROUND_CURVES.values(),
            *transfer.VERDICTS,
        ],
        "conclusion": [label for _, _, label in conclusion.ACCURACIES],
        words.COMMON: list(training.HISTORY_COLUMNS.values()),
    }
    missing = [(topic, term) for topic, terms in tables.items() for term in terms if term not in words.labels(topic)]
    assert not missing, missing
    bending = scaling.PowerLawFit(exponent=0.5, scale=2.0, irreducible=0.1, r2=1.0, n=5)  # bends at x = 400
    straight = scaling.PowerLawFit(exponent=0.5, scale=2.0, irreducible=0.0, r2=1.0, n=5)
    for unit in ("parameters", "training images"):
        said = [
            scaling.describe_bend(fit, low, high, unit)
            for fit, low, high in (
                (None, 1, 10),
                (straight, 1, 10),
                (bending, 1000, 2000),
                (bending, 10, 1000),
                (bending, 1, 10),
            )
        ]
        assert [s["where"] for s in said] == ["none", "none", "below", "inside", "above"]
        assert all(unit in s["en"] and "{" not in s["en"] + s["zh"] for s in said)
