"""A chapter's headlines: glued as JSON text, read back from the run summary's plain-text values."""

from __future__ import annotations

import json
import math

import nbformat
import pytest

from helpers import headline
from helpers.book import run
from helpers.topics import conclusion, course


def _glue_into_notebook(monkeypatch, tmp_path, calls) -> dict:
    """Run ``headline(...)`` for each of ``calls`` as a kernel would display it, write the outputs in a
    notebook, and read them back as the runner writes the summary (``run.glued_values``)."""
    import myst_nb.ext.glue as myst_glue

    shown = []
    monkeypatch.setattr(myst_glue, "ipy_display", lambda data, raw, metadata: shown.append((data, metadata)))
    for args in calls:
        headline.headline(*args)
    cell = nbformat.v4.new_code_cell("headline(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=meta) for data, meta in shown]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return json.loads(json.dumps(run.glued_values(path)))  # as summary.json holds them


def test_a_headline_survives_the_summary(monkeypatch, tmp_path):
    metrics = _glue_into_notebook(
        monkeypatch,
        tmp_path,
        [
            (
                "test_acc",
                0.734,
                "pct",
                ("test accuracy", "测试准确率"),
                ("7.3 times chance (10%)", "是随机猜测（10%）的 7.3 倍"),
            ),
            ("lost", ("0 of 460 requests", "460 个请求中丢失 0 个"), "words", ("requests lost", "丢失的请求")),
            ("gain", float("nan"), "times", ("a gain, \"quoted\" 'twice'", "收益")),
        ],
    )
    assert list(metrics) == ["headline_test_acc", "headline_lost", "headline_gain"]
    found = headline.of({"other": "0.5", **metrics})
    assert list(found) == ["test_acc", "lost", "gain"], "in the order glued, and nothing else"
    assert found["test_acc"] == {
        "value": 0.734,
        "unit": "pct",
        "measure": ("test accuracy", "测试准确率"),
        "meaning": ("7.3 times chance (10%)", "是随机猜测（10%）的 7.3 倍"),
    }
    assert found["lost"]["value"] == ("0 of 460 requests", "460 个请求中丢失 0 个") and found["lost"]["meaning"] is None
    assert math.isnan(found["gain"]["value"]) and found["gain"]["measure"][0] == "a gain, \"quoted\" 'twice'"
    assert conclusion.shown(found["test_acc"]["value"], "pct", "en") == "73.4%"
    assert conclusion.shown(found["lost"]["value"], "words", "zh") == "460 个请求中丢失 0 个"
    assert conclusion.shown(found["gain"]["value"], "times", "en") == "—"


@pytest.mark.parametrize(
    "args, error",
    [
        ((0.5, "percent", ("a", "一")), "unknown unit"),
        ((0.5, "pct", ("only English",)), "measure must be"),
        ((0.5, "pct", ("a", "一"), ("a", "")), "meaning must be"),
        (("0.5 of 1", "words", ("a", "一")), "a value in words"),
    ],
)
def test_a_headline_is_checked_where_it_is_glued(args, error):
    with pytest.raises(ValueError, match=error):
        headline.payload(*args)


def test_every_unit_reads_in_both_languages():
    for unit in headline.UNITS:
        value = ("words", "文字") if unit == "words" else 3.25
        for lang in course.LANGS:
            assert conclusion.shown(value, unit, lang) not in ("", "—"), unit


def test_a_headline_name_is_a_plain_identifier():
    with pytest.raises(ValueError, match="an identifier"):
        headline.headline("Test accuracy", 0.5, "pct", ("a", "一"))
