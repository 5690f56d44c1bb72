"""The words of computed sentences, tables and figures in both languages (``book/vocabulary.yml``)."""

from __future__ import annotations

import functools

import yaml

from helpers.book.bilingual import LANGS
from helpers.paths import BOOK

VOCABULARY = BOOK / "vocabulary.yml"
COMMON = "common"


class _Loader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        if twice := sorted({k for k in keys if keys.count(k) > 1}):
            raise KeyError(f"{VOCABULARY.name}: {twice} given twice in one section")
        return super().construct_mapping(node, deep=deep)


@functools.cache
def vocabulary() -> dict[str, dict[str, str]]:
    """Every section of the vocabulary: ``{topic: {English: Chinese}}``."""
    return yaml.load(VOCABULARY.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a safe loader)


def labels(topic: str = COMMON) -> dict[str, str]:
    """The Chinese of every term ``topic`` may use (its section over ``common``)."""
    if topic not in vocabulary():
        raise KeyError(f"no section {topic!r} in {VOCABULARY.name}")
    return {**vocabulary()[COMMON], **vocabulary()[topic]}


def zh(term: str, topic: str = COMMON) -> str:
    """The Chinese of ``term`` in ``topic``'s section, else in ``common``."""
    if (found := labels(topic).get(term)) is None:
        raise KeyError(f"{term!r} is not in the {topic!r} section of {VOCABULARY.name} (nor in common)")
    return found


def pick(lang: str, en, zh):
    """``en`` or ``zh``, by the page's language."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {LANGS}")
    return en if lang == "en" else zh


def in_lang(term: str, lang: str, topic: str = COMMON) -> str:
    """``term`` as the ``lang`` page says it (looked up in either language, so a missing term fails on both)."""
    return pick(lang, term, zh(term, topic))


def label(term, lang: str, topic: str = COMMON):
    """A label that data give (a column, a row): in Chinese when the vocabulary has it, else as it is."""
    return pick(lang, term, labels(topic).get(term, term))


def of(lang: str, topic: str = COMMON):
    """``in_lang`` for one page and topic: ``w = of(lang, "serving"); w("requests")``."""
    return lambda term: in_lang(term, lang, topic)


def both(term: str, topic: str = COMMON) -> tuple[str, str]:
    """``(English, Chinese)`` of a term."""
    return term, zh(term, topic)


def _formatted(pair: tuple[str, str], values: dict) -> dict[str, str]:
    """``{"en": ..., "zh": ...}`` of an (English, Chinese) pair with ``values`` formatted in (a value that is itself
    such a dict gives each language its own wording); as they are when there are no values."""
    return {
        lang: w.format(**{k: v[lang] if isinstance(v, dict) else v for k, v in values.items()}) if values else w
        for lang, w in zip(LANGS, pair)
    }


def sentence(term: str, topic: str = COMMON, **values) -> dict[str, str]:
    """``term`` in each language, ``{"en": ..., "zh": ...}``, with ``values`` formatted in (see :func:`_formatted`)."""
    return _formatted(both(term, topic), values)


def by_gap(gap: float, wordings: tuple[str, str, str], topic: str, tolerance: float = 0.01) -> dict[str, str]:
    """A gap in words, by :func:`sentence`: ``wordings[0]`` when it is over ``tolerance``, ``[1]`` under
    ``-tolerance``, else ``[2]``; ``{points}`` is the gap (or, within it, the tolerance) in percentage points."""
    case = 0 if gap > tolerance else 1 if gap < -tolerance else 2
    return sentence(wordings[case], topic, points=f"{tolerance * 100:.0f}" if case == 2 else f"{abs(gap) * 100:.1f}")


def glue_values(**values) -> None:
    """``glue(name, value, display=False)`` for every keyword."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)


def glue(name: str, en: str, zh_or_topic: str = COMMON, **values) -> None:
    """Glue ``name_en``, ``name_zh``: ``(name, en, zh)`` or ``(name, term[, topic])``, ``values`` formatted in."""
    pair = both(en, zh_or_topic) if zh_or_topic in vocabulary() else (en, zh_or_topic)
    glue_values(**{f"{name}_{lang}": w for lang, w in _formatted(pair, values).items()})
