"""Parameter validation: every bad value stops with a message naming it, before any compute."""

from __future__ import annotations

import pytest

from helpers.book import params, run
from helpers.book.params import Cifar10CnnParams, ParameterError


@pytest.fixture(scope="module")
def defaults():
    return run.notebook_defaults(run.notebook_paths()["cifar10_cnn"])


def test_schema_matches_the_notebooks_parameters_cell():
    for stem, path in run.notebook_paths().items():
        assert stem in params.SCHEMAS, f"{stem} has no parameter schema in helpers/params.py"
        fields = set(params.SCHEMAS[stem].model_fields) - {"notebook"}
        assert fields == set(run.notebook_defaults(path)), stem


def test_the_notebook_defaults_are_valid(defaults):
    checked = Cifar10CnnParams.check(defaults)
    assert checked.epochs == defaults["epochs"] == 10  # the article trains for 10 epochs


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("epochs", -1, "greater than or equal to 1"),
        ("epochs", "10", "valid integer"),
        ("learning_rate", -0.1, "greater than 0"),
        ("keras_backend", "caffe", "'tensorflow', 'jax' or 'torch'"),
        ("train_size", 60_000, "less than or equal to 50000"),
        ("augment", "yes", "valid boolean"),
    ],
)
def test_a_bad_value_names_the_parameter(defaults, name, value, words):
    with pytest.raises(ParameterError) as info:
        Cifar10CnnParams.check({**defaults, name: value})
    message = str(info.value)
    assert f"parameter '{name}' = {value!r}" in message
    assert words in message
    assert "python -m helpers.book.run" in message  # and says how to fix it


def test_validation_set_must_fit_in_the_training_set(defaults):
    with pytest.raises(ParameterError, match="val_size"):
        Cifar10CnnParams.check({**defaults, "train_size": 1000, "val_size": 600})


def test_parse_override_reads_yaml_values():
    assert run.parse_override("epochs=3") == ("epochs", 3)
    assert run.parse_override("learning_rate=1e-3") == ("learning_rate", 0.001)
    assert run.parse_override("augment=false") == ("augment", False)
    assert run.parse_override("keras_backend=jax") == ("keras_backend", "jax")
    with pytest.raises(run.RunError, match="name=value"):
        run.parse_override("epochs")


def test_plan_rejects_unknown_names_with_a_suggestion(tmp_path):
    with pytest.raises(run.RunError, match="did you mean 'epochs'"):
        run.plan("ci", None, [("epoch", 3)], tmp_path)
    with pytest.raises(run.RunError, match="unknown profile 'fast'"):
        run.plan("fast", None, [], tmp_path)
    with pytest.raises(run.RunError, match="no notebook matches 'cifar100'"):
        run.plan("ci", ["cifar100"], [], tmp_path)


def test_plan_merges_profile_and_overrides(tmp_path):
    [p] = run.plan("ci", ["cifar10"], [("epochs", 1)], tmp_path)
    assert p.parameters["train_size"] == 2000  # from profiles/ci.yaml
    assert p.parameters["epochs"] == 1  # the override wins
    assert p.output == tmp_path / "cifar10_cnn.ipynb"


def test_cli_stops_on_a_bad_value_before_any_kernel_starts(tmp_path, capsys):
    code = run.main(["--profile", "ci", "-p", "epochs=-1", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "parameter 'epochs' = -1" in err
    assert not list(tmp_path.iterdir()), "nothing may be executed or written"


def test_a_name_shared_by_chapters_has_one_type_and_one_bound():
    """``epochs`` (or ``seed``, ``test_size``...) means the same thing, with the same limits, in
    every chapter that has it: one definition per idea."""
    seen: dict[str, tuple] = {}
    for stem, schema in sorted(params.SCHEMAS.items()):
        for name, field in schema.model_fields.items():
            if name == "notebook":
                continue
            meaning = (field.annotation, tuple(repr(m) for m in field.metadata))
            if name in seen:
                first_stem, first = seen[name]
                assert meaning == first, f"{name!r} differs between {first_stem} {first} and {stem} {meaning}"
            else:
                seen[name] = (stem, meaning)
    shared = [n for n in seen if sum(n in s.model_fields for s in params.SCHEMAS.values()) > 1]
    assert {"seed", "keras_backend", "epochs", "test_size", "batch_size"} <= set(shared)


def test_every_training_chapter_has_the_shared_base():
    for stem, schema in params.SCHEMAS.items():
        if "keras_backend" in schema.model_fields:
            assert issubclass(schema, params.ChapterParams), stem
