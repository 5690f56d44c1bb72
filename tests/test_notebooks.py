"""The notebooks: clean sources, a real ci-profile run, nbval's strict comparison, failure reports."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from helpers.book import bilingual, run


@pytest.mark.parametrize("path", sorted(run.NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_source_notebook_is_clean_and_bilingual(path):
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs for c in code_cells), "commit notebooks without outputs"
    assert not any(c.execution_count for c in code_cells), "commit notebooks without execution counts"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    bilingual.check_tags(nb, path.stem)  # every markdown cell is en or zh
    langs = [bilingual.language_of(c) for c in nb.cells if c.cell_type == "markdown"]
    assert langs.count("en") == langs.count("zh"), "each English cell has a Chinese twin"


def test_ci_run_writes_a_summary(executed_ci):
    summary = json.loads((executed_ci / "summary.json").read_text())
    for stem in run.notebook_paths():
        record = summary["notebooks"][stem]
        assert record["status"] == "ok"
        assert record["seconds"] > 0
        assert record["parameters"].get("seed", 0) == 0  # (a chapter that draws nothing random has no seed)
        assert record["metrics"], "the notebook glued its key numbers"
    assert summary["machine"]["versions"]["keras"]
    assert summary["machine"]["cpu_cores"] >= 1
    metrics = summary["notebooks"]["cifar10_cnn"]["metrics"]
    assert 0 <= float(metrics["corrected_test_acc"]) <= 1
    assert metrics["article_params"] == "'167,562'"


def test_the_conclusion_finds_what_it_reads(executed_ci):
    """Every chapter glues a headline (helpers.headline) that the conclusion can show, and the ci run
    glued every value the conclusion reads from another chapter by name (conclusion.READS)."""
    from helpers import headline
    from helpers.topics import conclusion, course

    notebooks = json.loads((executed_ci / "summary.json").read_text())["notebooks"]
    for stem in run.notebook_paths():
        if stem != "conclusion":
            found = headline.of(notebooks[stem]["metrics"])
            assert found, f"{stem} glues no headline: the conclusion would have nothing to show for it"
            for h in found.values():
                assert all(conclusion.shown(h["value"], h["unit"], lang) for lang in course.LANGS)
    for stem, names in conclusion.READS.items():
        missing = sorted(set(names) - set(notebooks[stem]["metrics"]))
        assert not missing, f"the conclusion reads {missing} from {stem}, which the ci run did not glue"


@pytest.mark.parametrize("stem", list(run.notebook_paths()))  # in chapter order, as the lanes check them
def test_executed_notebook_reproduces_under_nbval(ci_lanes, stem):
    """nbval re-executes the ci-profile notebook and compares every output, strictly (run in the
    background as soon as the runner has executed the chapter: tests/ci_lane.py)."""
    code, output = ci_lanes.chapter(stem)
    first = max(0, output.find("FAILED"))  # the first cell that failed, where the cause is, not the cascade
    assert code == 0, output[first : first + 5000] + "\n...\n" + output[-1500:]


def test_executed_chapters_write_nothing_to_stderr(executed_ci):
    """A chapter's outputs are the same on every machine: nothing on stderr (a download's message, a
    progress bar, a library's warning) that a second execution, or a machine with the data already
    cached, would not print."""
    for path in sorted(executed_ci.glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    pytest.fail(f"{path.name}, cell {index} wrote to stderr: {output.get('text', '')[:500]}")


def test_executed_outputs_are_free_of_native_log_noise(executed_ci):
    """No C++ start-up notices, and no log line of Ray's processes (the driver prints them, in
    colour, whenever they come, into whatever cell runs then: a page would show one, its colour
    failing the contrast check). Keras's progress bar in the article's listing, run as printed, stays."""
    ray_line = re.compile(r"\((raylet|pid=|ServeController|ServeReplica|ProxyActor)")
    for path in executed_ci.glob("*.ipynb"):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                text = output.get("text", "")
                assert "absl::InitializeLog" not in text and "cudart_stub" not in text, path.name
                assert not ray_line.search(text), f"{path.name}, cell {index}: {text[:300]}"


@pytest.mark.slow
def test_a_failing_cell_is_reported_and_its_copy_kept(tmp_path, capsys):
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("epochs = 1", metadata={"tags": ["parameters"]}),  # a course parameter
            nbformat.v4.new_code_cell("print('before')"),
            nbformat.v4.new_code_cell("raise RuntimeError('the third cell fails')"),
        ]
    )
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(broken, tmp_path / "nb" / "99_broken.ipynb")
    code = run.main(["--profile", "ci", "--notebooks-dir", str(tmp_path / "nb"), "--output-dir", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken failed in cell 2" in err and "RuntimeError: the third cell fails" in err
    kept = nbformat.read(tmp_path / "out" / "broken.ipynb", as_version=4)  # executed copies are named by chapter id
    assert any(o.get("ename") == "RuntimeError" for o in kept.cells[-1].outputs)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notebooks"]["broken"]["status"] == "failed"


@pytest.mark.slow
def test_an_up_to_date_notebook_is_skipped_unless_forced(tmp_path, capsys):
    tiny = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("epochs: int = 1  # a course parameter", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(epochs * 2)"),
        ]
    )
    tiny.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(tiny, tmp_path / "nb" / "98_tiny.ipynb")
    args = ["--profile", "ci", "--notebooks-dir", str(tmp_path / "nb"), "--output-dir", str(tmp_path / "out")]
    assert run.main(args) == 0
    assert run.main(args) == 0
    assert re.search(r"tiny +up to date, skipped", capsys.readouterr().out)
    assert run.main([*args, "-p", "epochs=3"]) == 0  # other parameters: runs again
    out = capsys.readouterr().out
    assert re.search(r"tiny +ok .*-p epochs=3", out) and "skipped" not in out
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "6\n"


@pytest.mark.parametrize("lang", bilingual.LANGS)
def test_a_readers_edition_holds_one_language(lang):
    """What a page's download and launch buttons open: one language's prose only, every code cell
    (its comments in that language).
    That each edition runs from top to bottom, with the ci profile's values, is checked where a
    reader runs it, in JupyterLab (tests/test_lab.py)."""
    for both_path in run.notebook_paths().values():
        edition = nbformat.read(both_path.parent / lang / both_path.name, as_version=4)
        both = nbformat.read(both_path, as_version=4)
        assert {bilingual.language_of(c) for c in edition.cells if c.cell_type == "markdown"} == {lang}, both_path.name
        code = lambda nb: [c for c in nb.cells if c.cell_type == "code"]  # noqa: E731
        assert len(code(edition)) == len(code(both)), f"{both_path.name}: the {lang} edition lost code cells"
