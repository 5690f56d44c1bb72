"""The coverage table: every claim and question of the article has a complete row, quoted exactly,
answered in a chapter section that exists in both languages."""

from __future__ import annotations

import re

from helpers import article
from helpers.book import sphinx_ext
from helpers.book.notebooks import sources

COVERAGE = sphinx_ext.load(sphinx_ext.DATA)
ROWS = COVERAGE["rows"]
LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.M)
#: what the article says that the course must answer (the issue that asked for this table lists them)
REQUIRED = (
    "智能安防",
    "智能交通",
    "医疗、金融、交通",
    "语音识别",
    "2.跨领域的应用",
    "3.算法创新",
    "并使用梯度下降算法进行训练",
    "规模和性能",
    "需求和技能水平",
    "# 参数初始化",
    "from_logits=True",
    "model.fit(x_train, y_train, epochs=10)",
)


def _sentences(text: str) -> list[tuple[str, str]]:
    """(section heading, sentence) for every sentence of the article's prose (code block removed)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    found, section = [], ""
    for line in prose.splitlines():
        line = line.strip()
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line:
            found += [(section, s) for s in re.split(r"(?<=[。？！])", line) if s.strip()]
    return found


def _labels() -> set[str]:
    return {label for source in sources() for label in LABEL.findall(source.read_text(encoding="utf-8"))}


def test_every_row_is_complete():
    assert sphinx_ext.problems(COVERAGE) == []


def test_every_row_points_at_a_chapter_and_section_in_both_languages():
    labels = _labels()
    for row in ROWS:
        for lang in sphinx_ext.LANGS:
            assert f"{row['chapter']}-{lang}" in labels, f"no chapter label {row['chapter']}-{lang}"
            assert f"{row['target']}-{lang}" in labels, f"no section label {row['target']}-{lang}"


def test_the_issues_claims_all_have_rows():
    claims = [row["claim"] for row in ROWS]
    for needed in REQUIRED:
        assert any(needed in claim for claim in claims), f"no row quotes {needed!r}"


def test_code_claims_quote_the_listing_exactly():
    for row in ROWS:
        if row["section"].startswith("4.") and not re.search(
            r"[\u4e00-\u9fff]", row["claim"].replace("# 参数初始化", "")
        ):
            assert row["claim"] in article.LISTING, row["claim"]


def test_every_sentence_of_the_article_has_a_row_and_every_quote_is_exact(article_text):
    text = article_text
    headings = {line.lstrip("#").strip() for line in text.splitlines() if line.strip().startswith("#")}
    quotes = [row["claim"] for row in ROWS] + [item["text"] for item in COVERAGE.get("not_claims", [])]
    for row in ROWS:
        assert row["section"] in headings, f"{row['section']!r} is not a heading of the article"
        assert row["claim"] in text, f"not the article's words: {row['claim']!r}"
    for item in COVERAGE.get("not_claims", []):
        assert item["text"] in text and item["why"].strip(), item
    uncovered = [(section, s) for section, s in _sentences(text) if not any(q in s for q in quotes)]
    assert not uncovered, f"sentences of the article without a row: {uncovered}"


def test_section_numbers_for_the_table():
    assert sphinx_ext.section_number("2.1人工智能大模型") == "§2.1"
    assert sphinx_ext.section_number("5.未来发展趋势与挑战") == "§5"
    assert sphinx_ext.section_number("结论") == "结论"


def test_problems_names_what_is_missing():
    bad = {
        "rows": [
            {
                "section": "1",
                "claim": "x",
                "claim_en": "",
                "chapter": "a",
                "target": "a",
                "how": ["guess"],
                "en": "e",
                "zh": "z",
            }
        ]
    }
    found = sphinx_ext.problems(bad)
    assert any("claim_en is empty" in p for p in found) and any("how must be" in p for p in found)
    assert sphinx_ext.problems({"rows": []}) == ["no rows"]
