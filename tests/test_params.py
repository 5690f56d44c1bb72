"""Parameter validation: every bad value stops with a message naming it, before any compute."""

from __future__ import annotations

from functools import cache
from typing import Literal

import pytest

from helpers.book import params, run
from helpers.book.params import ParameterError

STEMS = list(run.notebook_paths())


def bad_values(field) -> list:
    """Values that break ``field``'s own rule: past each bound, outside the choices, of the wrong type."""
    kind = field.annotation
    bad = ["10"] if kind in (int, float) else [3] if kind is str else ["yes"] if kind is bool else ["[1, 2]"]
    for rule in field.metadata:
        for attr, step in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            bound = getattr(rule, attr, None)
            if bound is not None:
                bad.append(type(bound)(bound + step) if kind is not float else float(bound + step))
        if getattr(rule, "min_length", None):
            bad.append([])
    if getattr(kind, "__origin__", None) is Literal:
        bad.append("not-a-choice")
    return bad


CASES = [
    (stem, name, value)
    for stem in STEMS
    for name, field in params.schema(stem).model_fields.items()
    if name != "notebook"
    for value in bad_values(field)
]


def test_every_chapter_declares_its_parameters_once_and_its_defaults_and_profiles_are_valid(tmp_path):
    for stem, path in run.notebook_paths().items():
        declared = run.notebook_defaults(path)
        assert set(params.schema(stem).model_fields) - {"notebook"} == set(declared), stem
        params.check(stem, declared)
        for profile in ("ci", "cpu", "gpu"):
            [p] = run.plan(profile, [stem], [], tmp_path)
            params.check(stem, {**p.defaults, **p.parameters})


def test_the_type_in_a_parameters_cell_is_the_type_of_its_rule():
    """``epochs: int`` in the cell and ``epochs`` an int in PARAMETERS: the two cannot drift apart."""
    import papermill

    for stem, path in run.notebook_paths().items():
        for name, spec in papermill.inspect_notebook(str(path)).items():
            rule = params.schema(stem).model_fields[name].annotation
            base = getattr(rule, "__origin__", rule)
            expected = {Literal: "str"}.get(base, getattr(base, "__name__", str(base)))
            assert spec["inferred_type_name"] == expected, (
                f"{stem}.{name}: cell says {spec['inferred_type_name']}, rule {rule}"
            )


@cache
def declared(stem: str) -> dict:
    return run.notebook_defaults(run.notebook_paths()[stem])


@pytest.mark.parametrize("stem, name, value", CASES, ids=[f"{s}-{n}-{v!r}" for s, n, v in CASES])
def test_a_bad_value_is_refused_naming_the_parameter_and_the_fix(stem, name, value):
    with pytest.raises(ParameterError) as info:
        params.validate(stem, {**declared(stem), name: value})
    message = str(info.value)
    assert f"parameter '{name}' = {value!r}" in message
    assert f"python -m helpers.book.run --only {stem}" in message  # and says how to fix it


@pytest.mark.parametrize("stem", STEMS)
def test_the_runner_refuses_a_bad_value_before_any_compute(stem, tmp_path):
    name, value = next((n, v) for s, n, v in CASES if s == stem)
    with pytest.raises(ParameterError, match=f"parameter '{name}'"):
        run.plan("ci", [stem], [(name, value)], tmp_path)
    assert not list(tmp_path.iterdir()), "nothing may be executed or written"


#: values that pass one by one but not together (each chapter's RULES), with the words that say why
TOGETHER = [
    ("cifar10_cnn", {"train_size": 1000, "val_size": 600}, "val_size (600) must be less than half"),
    ("deep_learning_steps", {"epochs": 1}, "at least 2"),
    ("servitization", {"n_items": 100, "n_tasks": 200}, "n_tasks (200) cannot exceed n_items"),
    ("learning_maths", {"quadratic_rates": [0.1, 0.5, 0.9, 0.95]}, "the last above 1 (unstable)"),
    ("learning_maths", {"rosenbrock_rates": [0.5, 0.1, 1.2]}, "increasing fractions"),
    ("learning_maths", {"batch_size": 8192, "train_size": 1000}, "must not exceed train_size"),
    ("stronger_cnn", {"ladder_val_size": 15_000, "ladder_train_size": 20_000}, "ladder_val_size"),
    ("serving", {"concurrency_levels": [4, 1]}, "increasing integers"),
    ("serving", {"port": 80}, "at least 1024"),
    ("distributed_serving", {"models": ["article"]}, 'must list "served"'),
    ("distributed_serving", {"kill_after_s": 30.0, "failover_seconds": 15.0}, "must fall within failover_seconds"),
    ("language_model", {"d_model": 30, "n_heads": 4}, "a multiple of the heads"),
    ("language_model", {"warmup_steps": 50, "steps": 40}, "less than steps"),
    ("decoding", {"temperatures": [0.0]}, "must lie in (0, 2]"),
    ("llm_serving", {"concurrency_levels": [1, 1]}, "increasing integers"),
    ("trends_challenges", {"widths": [1.0, 0.5, 2.0]}, "strictly increasing"),
    ("trends_challenges", {"fl_train_size": 100, "n_clients": 20}, "at least 10 images"),
    ("faq", {"time_backends": ["jax", "jax"]}, "lists a backend twice"),
    ("conclusion", {"chapters": ["Four!"]}, "not chapter names"),
]


@pytest.mark.parametrize("stem, values, words", TOGETHER, ids=[f"{s}-{w[:20]}" for s, _, w in TOGETHER])
def test_values_that_do_not_fit_together_are_refused(stem, values, words, tmp_path):
    with pytest.raises(ParameterError) as info:
        run.plan("ci", [stem], list(values.items()), tmp_path)
    assert words in str(info.value)


def test_a_parameter_without_a_rule_is_a_clear_error():
    with pytest.raises(TypeError, match="no rule in helpers/book/params.py PARAMETERS"):
        params.schema("cifar10_cnn", ("epochs", "mystery_knob"))


def test_the_article_trains_for_ten_epochs():
    assert params.check("cifar10_cnn", run.notebook_defaults(run.notebook_paths()["cifar10_cnn"])).epochs == 10


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
