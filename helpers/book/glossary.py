"""The course's bilingual glossary from ``book/glossary.yml``: each site's glossary page (:func:`page`), the
terms :mod:`helpers.book.sphinx_ext` links, and the rejected Chinese variants the tests look for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.paths import BOOK

TABLE = BOOK / "glossary.yml"
TITLE = {"en": "Glossary", "zh": "术语表"}
INTRO = {
    "en": "One term per idea: the English and Chinese terms the course uses, each defined in one line, "
    "with the chapter that introduces it. In every chapter the first use of a term links here.",
    "zh": "一个概念只用一个术语：本课程使用的中英文术语，各附一句话的定义和首次引入它的章节。"
    "每一章中某个术语第一次出现时都链接到这里。",
}
#: a term's definition on each site, and where the term is introduced
DEFINITION = {
    "en": "{definition} (Chinese: {zh}.) Introduced in {{numref}}`chapter %s <{label}-en>`.",
    "zh": "{definition}首见于{{numref}}`第 %s 章 <{label}-zh>`。",
}


@dataclass(frozen=True)
class Term:
    en: str
    zh: str
    definition: dict[str, str]
    chapter: str
    reject: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def entry(self, lang: str) -> str:
        """The glossary term as shown (and as cross-referenced) on the ``lang`` site."""
        return self.en if lang == "en" else f"{self.zh}（{self.en}）"


def load(path: Path = TABLE) -> list[Term]:
    rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    terms, seen = [], {"en": set(), "zh": set()}
    for i, row in enumerate(rows):
        if missing := [k for k in ("en", "zh", "en_def", "zh_def", "chapter") if not row.get(k)]:
            raise ValueError(f"{path.name} entry {i} ({row.get('en', '?')}): missing {missing}")
        for lang in ("en", "zh"):
            key = row[lang].lower()
            if key in seen[lang]:
                raise ValueError(f"{path.name}: {row[lang]!r} appears twice")
            seen[lang].add(key)
        reject = tuple(row.get("reject") or ())
        if row["zh"] in reject:
            raise ValueError(f"{path.name}: {row['zh']!r} both used and rejected")
        terms.append(Term(row["en"], row["zh"], {"en": row["en_def"], "zh": row["zh_def"]}, row["chapter"], reject))
    return terms


def page(lang: str) -> str:
    """The glossary page of one site, as MyST Markdown."""
    lines = ["(glossary)=", f"# {TITLE[lang]}", "", INTRO[lang], "", "```{glossary}"]
    for term in sorted(load(), key=lambda t: t.en.lower()):  # both sites in English alphabetical order
        label = term.chapter.replace("_", "-")
        definition = DEFINITION[lang].format(definition=term.definition[lang], zh=term.zh, label=label)
        lines += [term.entry(lang), f"  {definition}", ""]
    return "\n".join([*lines, "```", ""])


def pattern(term: Term, lang: str) -> re.Pattern:
    """What counts as a use of the term in running text (English: whole words, plural too)."""
    if lang == "en":
        return re.compile(rf"(?<![\w-]){re.escape(term.en)}(?:s|es)?(?![\w-])", re.IGNORECASE)
    return re.compile(re.escape(term.zh))
