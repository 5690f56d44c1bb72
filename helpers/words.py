"""The words of computed sentences, tables and figures in both languages: ``book/vocabulary.yml``
(``common`` plus one section per topic; a translator edits that file only).

    words.of("zh", "serving")("requests per second")   # '每秒请求数' (the topic's, else common's)
    words.glue("gain", "{x:.1%} more", x=0.042)         # glued as gain_en / gain_zh
    show.table(frame, words.labels("serving"))          # headers and index through the vocabulary
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import yaml

from helpers.book.bilingual import LANGS
from helpers.paths import BOOK

VOCABULARY = BOOK / "vocabulary.yml"
COMMON = "common"


class _Loader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise KeyError(f"{VOCABULARY.name}: {twice} given twice in one section")
        return super().construct_mapping(node, deep=deep)


@functools.cache
def vocabulary() -> dict[str, dict[str, str]]:
    """Every section of the vocabulary: ``{topic: {English: Chinese}}``."""
    return yaml.load(VOCABULARY.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a safe loader)


def labels(topic: str = COMMON) -> dict[str, str]:
    """The Chinese of every term ``topic`` may use (its own section over ``common``), e.g. for
    :func:`helpers.show.table`'s ``columns_zh`` and ``index_zh``; a label not in it stays as it is."""
    sections = vocabulary()
    if topic not in sections:
        raise KeyError(f"no section {topic!r} in {VOCABULARY.name}")
    return {**sections[COMMON], **sections[topic]}


def zh(term: str, topic: str = COMMON) -> str:
    """The Chinese of ``term`` in ``topic``'s section, else in ``common``."""
    try:
        return labels(topic)[term]
    except KeyError:
        raise KeyError(f"{term!r} is not in the {topic!r} section of {VOCABULARY.name} (nor in common)") from None


def pick(lang: str, en, zh):
    """``en`` or ``zh``, by the page's language."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {LANGS}")
    return en if lang == "en" else zh


def in_lang(term: str, lang: str, topic: str = COMMON) -> str:
    """``term`` as the ``lang`` page says it (looked up for both languages, so a missing term fails on both)."""
    return pick(lang, term, zh(term, topic))


def label(term, lang: str, topic: str = COMMON):
    """A label that data give (a column, a row): in Chinese when the vocabulary has it, else as it is."""
    return labels(topic).get(term, term) if lang == "zh" else pick(lang, term, term)


def of(lang: str, topic: str = COMMON) -> Callable[[str], str]:
    """``in_lang`` for one page and topic: ``w = of(lang, "serving"); w("requests")``."""
    return lambda term: in_lang(term, lang, topic)


def both(term: str, topic: str = COMMON) -> tuple[str, str]:
    """``(English, Chinese)`` of a term."""
    return term, zh(term, topic)


def glue_values(**values) -> None:
    """``glue(name, value, display=False)`` for every keyword."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)


def glue(name: str, en: str, zh_or_topic: str = COMMON, **values) -> None:
    """A value in words, glued once per language (``name_en``, ``name_zh``): ``glue(name, en, zh)``, or
    ``glue(name, term[, topic])`` with the Chinese from the vocabulary; ``values`` are formatted into both."""
    words = (en, zh_or_topic) if zh_or_topic not in vocabulary() else both(en, zh_or_topic)
    if values:
        words = tuple(w.format(**values) for w in words)
    glue_values(**{f"{name}_{lang}": w for lang, w in zip(LANGS, words)})
