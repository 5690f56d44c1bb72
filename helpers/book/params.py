"""Every notebook parameter's rules, once (:data:`PARAMETERS` by name, :data:`RULES` by chapter), and the check
that runs before any compute: chapters call ``params.check("cifar10_cnn", globals())``, the runner :func:`validate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator


class ParameterError(ValueError):
    """One or more notebook parameters are invalid; the message names each one and the fix."""


def _range(kind: type, lo=None, hi=None, *, gt=None, lt=None):
    return Annotated[kind, Field(ge=lo, le=hi, gt=gt, lt=lt)]


def _list(item, lo: int, hi: int):
    return Annotated[list[item], Field(min_length=lo, max_length=hi)]


Backend = Literal["tensorflow", "jax", "torch"]
Encoding = Literal["json", "b64"]

#: type and bounds -> the parameters (of any chapter) they hold for; a name means the same everywhere
_KINDS: list[tuple[Any, str]] = [
    (Backend, "keras_backend"),
    (_list(Backend, 1, 3), "time_backends"),
    (bool, "augment mixed_precision batching"),
    (Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"], "precision"),
    (Literal["fp32", "mixed-fp16", "mixed-bf16", "bf16"], "training_recipe"),
    (Literal["sgd", "momentum", "adam"], "optimizer"),
    (Encoding, "encoding"),
    (_list(Encoding, 1, 2), "encodings"),
    (_list(Literal["served", "article"], 1, 2), "models"),
    (Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], "model_name"),
    (_list(str, 0, 30), "chapters"),
    # integers; sizes of CIFAR-10 subsets (50,000 training and 10,000 test images)
    (_range(int, 0), "seed"),
    (_range(int, 1), "patience"),
    (_range(int, 100, 50_000), "train_size fl_train_size"),
    (_range(int, 500, 50_000), "ladder_train_size final_train_size"),
    (_range(int, 256, 50_000), "resume_train_size parallel_train_size"),
    (_range(int, 100, 10_000), "test_size ladder_val_size"),
    (_range(int, 50, 10_000), "val_size"),
    (_range(int, 1, 500), "epochs cnn_epochs demo_epochs corrected_epochs local_epochs transfer_epochs timing_epochs"),
    (_range(int, 2, 50), "resume_epochs parallel_epochs"),
    (_range(int, 1, 8192), "batch_size max_batch_size corrected_batch_size"),  # items in one step or model call
    (_range(int, 8, 8192), "ladder_batch_size final_batch_size d_model"),
    (_range(int, 0, 65_535), "port"),
    (_range(int, 1990, 2022), "fit_from_year"),
    (_range(int, 1, 20), "ratio_repeats retries explain_images"),
    (_range(int, 2, 20), "seed_runs"),
    (_range(int, 1, 64), "max_workers"),
    (_range(int, 1, 100), "repeats"),
    (_range(int, 1, 128), "n_heads"),
    (_range(int, 1, 256), "sweep_clients failover_clients"),
    (_range(int, 1, 1000), "n_layers n_clients rounds min_count requests_per_stream"),
    (_range(int, 1, 1024), "n_kv_heads step_clients streams"),
    (_range(int, 1, 4096), "head_dim"),
    (_range(int, 48, 4096), "seq_len"),
    (_range(int, 1, 10_000), "n_tasks quadratic_steps"),
    (_range(int, 10, 10_000), "noise_draws form_samples"),
    (_range(int, 5, 5000), "transfer_per_class"),
    (_range(int, 1, 100_000), "concurrent_requests max_ongoing_requests rosenbrock_steps eval_every"),
    (_range(int, 0, 100_000), "warmup_steps"),
    (_range(int, 1, 1_000_000), "timing_images"),
    (_range(int, 10, 1_000_000), "requests_per_level steps"),
    (_range(int, 5, 1_000_000), "scaling_steps"),
    (_range(int, 0, 1_000_000), "max_poems val_rows"),
    (_range(int, 1, 10_000_000), "prompt_tokens output_tokens n_accelerators"),
    (_range(int, 100, 100_000_000), "n_items"),
    (_range(int, 0, 100_000_000), "serial_items"),
    (_range(int, 5, 200), "sweep_points"),
    (_range(int, 0, 16), "parallel_devices"),
    # real numbers
    (_range(float, gt=0), "time_budget_minutes"),
    (_range(float, gt=0, hi=0.2), "accuracy_tolerance"),
    (_range(float, gt=0, hi=1), "accelerator_utilization client_fraction"),
    (_range(float, gt=0, lt=1), "accuracy_target"),
    (_range(float, 0, lt=1), "momentum"),
    (_range(float, gt=0, hi=2), "form_temperature"),
    (_range(float, 1, 3), "pue"),
    (_range(float, gt=0, hi=4), "ladder_width final_width"),
    (_range(float, gt=0, hi=10), "learning_rate"),
    (_range(float, gt=0, hi=200), "ladder_epochs final_epochs"),
    (_range(float, gt=0, hi=600), "failover_seconds kill_after_s"),
    (_range(float, 0, 600), "upscale_delay_s"),
    (_range(float, 0, 1000), "max_wait_ms"),
    (_range(float, 1, 1000), "condition_number"),
    (_range(float, gt=0, hi=1024), "node_cpus"),
    (_range(float, gt=0, hi=3600), "request_timeout"),
    (_range(float, 0, 3600), "downscale_delay_s"),
    (_range(float, gt=0, hi=10_000), "target_ongoing_requests cpu_watts accelerator_watts"),
    (_range(float, gt=0, hi=100_000), "params_billion accelerator_memory_gb"),
    (_range(float, gt=0, hi=1_000_000), "tokens_billion accelerator_tflops accelerator_bandwidth_gb_s dirichlet_alpha"),
    # lists
    (_list(int, 1, 12), "concurrency_levels lm_streams client_batch_sizes"),  # increasing: see _VALUE_RULES
    (_list(int, 2, 2), "paged_streams"),
    (_list(int, 3, 3), "compute_size"),
    (_list(int, 3, 12), "compute_steps"),
    (_list(int, 1, 8), "decode_lengths"),
    (_list(int, 3, 8), "train_sizes"),
    (_list(float, 3, 8), "widths"),
    (_list(float, 1, 6), "temperatures"),
    (_list(float, 4, 4), "quadratic_rates"),
    (_list(float, 3, 3), "rosenbrock_rates step_seconds"),
    (_list(_list(int, 3, 3), 4, 12), "scaling_sizes"),  # [d_model, n_layers, n_heads] triples
]


def _increasing(values: list, lo=float("-inf"), hi=float("inf")) -> bool:
    return all(a < b for a, b in zip(values, values[1:])) and all(lo <= v <= hi for v in values)


def _rates(stable: int) -> tuple[Callable, str]:
    """Fractions of the bound 2/L: the text reads the first runs as "below the bound", the rest "above it"."""
    test = lambda r: _increasing(r) and 0 < r[0] and r[-1] <= 2 and r[stable - 1] < 1 < r[stable]
    return (
        test,
        f"must be increasing fractions of the bound 2/L in (0, 2], the first {stable} below 1 (stable) and the last above 1 (unstable)",
    )


_LEVELS = (lambda v: _increasing(v, 1, 1024), "must be increasing integers from 1 to 1024")
#: parameters -> what their values must also be, beyond their type and bounds: (test, the words if it fails)
_VALUE_RULES: dict[str, tuple[Callable, str]] = {
    "port": (lambda port: not 0 < port < 1024, "must be 0 (any free port) or at least 1024"),
    "concurrency_levels lm_streams client_batch_sizes paged_streams": _LEVELS,
    "compute_steps": (_increasing, "must be strictly increasing"),
    "train_sizes": (lambda v: _increasing(v, 100, 50_000), "must be strictly increasing, from 100 to 50000"),
    "widths": (lambda v: _increasing(v) and 0 < v[0] and v[-1] <= 8, "must be strictly increasing, in (0, 8]"),
    "temperatures": (lambda v: all(0 < t <= 2 for t in v), "must lie in (0, 2]"),
    "decode_lengths": (
        lambda v: min(v) >= 2,
        "must be at least 2 (and below the model's context, checked on loading it)",
    ),
    "step_seconds": (lambda v: all(0 < t <= 600 for t in v), "must be three durations in (0, 600] s"),
    "quadratic_rates": _rates(3),
    "rosenbrock_rates": _rates(2),
    "encodings": (lambda v: len(set(v)) == len(v), "lists an encoding twice"),
    "time_backends": (lambda v: len(set(v)) == len(v), "lists a backend twice"),
    "models": (
        lambda v: len(set(v)) == len(v) and "served" in v,
        'must list "served" (the chapter\'s model) and a model once',
    ),
    "chapters": (
        lambda v: all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in v),
        "holds names that are not chapter names like 'cifar10_cnn'",
    ),
}


def _checked(kind, test: Callable, words: str):
    def check(value):
        if not test(value):
            raise ValueError(words)
        return value

    return Annotated[kind, AfterValidator(check)]


#: every parameter of the course: its type and bounds
PARAMETERS: dict[str, Any] = {name: kind for kind, names in _KINDS for name in names.split()}
PARAMETERS |= {n: _checked(PARAMETERS[n], *rule) for names, rule in _VALUE_RULES.items() for n in names.split()}


def _shapes_fit(p) -> bool:
    shapes = [(p.d_model, p.n_layers, p.n_heads), p.compute_size, *p.scaling_sizes]
    return all(min(d, layers, heads) >= 1 and d % heads == 0 for d, layers, heads in shapes)


_HOLDS_OUT = (
    lambda p: p.val_size < p.train_size // 2,
    "val_size ({val_size}) must be less than half of train_size ({train_size})",
)
#: chapter -> what its values must satisfy together: (test, the words if it fails, with ``{name}`` for a value)
RULES: dict[str, list[tuple[Callable, str]]] = {
    "servitization": [(lambda p: p.n_tasks <= p.n_items, "n_tasks ({n_tasks}) cannot exceed n_items ({n_items})")],
    "deep_learning_steps": [
        _HOLDS_OUT,
        (lambda p: p.epochs >= 2, "epochs ({epochs}) must be at least 2: the chapter reads its learning curves"),
    ],
    "learning_maths": [
        (lambda p: p.batch_size <= p.train_size, "batch_size ({batch_size}) must not exceed train_size ({train_size})")
    ],
    "cifar10_cnn": [_HOLDS_OUT],
    "stronger_cnn": [
        (
            lambda p: p.ladder_val_size < p.ladder_train_size // 2,
            "ladder_val_size ({ladder_val_size}) must be less than half of ladder_train_size ({ladder_train_size})",
        ),
        (
            lambda p: p.ladder_batch_size <= p.ladder_train_size - p.ladder_val_size,
            "ladder_batch_size ({ladder_batch_size}) exceeds the ladder's training images",
        ),
        (
            lambda p: p.final_batch_size <= p.final_train_size,
            "final_batch_size ({final_batch_size}) exceeds final_train_size ({final_train_size})",
        ),
    ],
    "language_model": [
        (
            _shapes_fit,
            "in d_model/n_layers/n_heads, compute_size and scaling_sizes each width must be a multiple of the heads",
        ),
        (lambda p: p.warmup_steps < p.steps, "warmup_steps ({warmup_steps}) must be less than steps ({steps})"),
    ],
    "distributed_serving": [
        (
            lambda p: p.kill_after_s < p.failover_seconds,
            "kill_after_s ({kill_after_s}) must fall within failover_seconds ({failover_seconds}): the node is lost under load",
        )
    ],
    "trends_challenges": [
        (
            lambda p: p.transfer_per_class <= max(p.train_sizes) // 10,
            "transfer_per_class ({transfer_per_class}) exceeds the images of one class in the largest of train_sizes",
        ),
        (
            lambda p: p.fl_train_size >= 10 * p.n_clients,
            "fl_train_size ({fl_train_size}) must give each of the n_clients ({n_clients}) at least 10 images",
        ),
    ],
}


class NotebookParams(BaseModel):
    """Every chapter's schema: strict types (no silent "10" -> 10), no unknown names, then the chapter's RULES."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    notebook: str = ""  # the chapter's id

    @model_validator(mode="after")
    def _chapter_rules(self):
        for test, words in RULES.get(self.notebook, ()):
            if not test(self):
                raise ValueError(words.format(**dict(self)))
        return self


@cache
def schema(stem: str, names: tuple[str, ...] | None = None) -> type[NotebookParams]:
    """Chapter ``stem``'s schema: the names of its parameters cell (or ``names``), typed by :data:`PARAMETERS`."""
    if names is None:
        from helpers.book import run

        paths = run.notebook_paths()
        if stem not in paths:
            raise ParameterError(f"no chapter {stem!r}; chapters: {list(paths)}")
        names = tuple(run.notebook_defaults(paths[stem]))
    if unknown := [n for n in names if n not in PARAMETERS]:
        raise TypeError(f"{stem}'s parameters {unknown} have no rule in helpers/book/params.py PARAMETERS (_KINDS)")
    title = "".join(part.title() for part in stem.split("_")) + "Params"
    return create_model(
        title, __base__=NotebookParams, notebook=(str, stem), **{n: (PARAMETERS[n], ...) for n in names}
    )


def validate(stem: str, values: dict, names: tuple[str, ...] | None = None) -> NotebookParams:
    """Chapter ``stem``'s ``values`` checked, or :class:`ParameterError` naming every bad one and the fix."""
    try:
        return schema(stem, names)(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "(parameters)"
            given = f" = {err['input']!r}" if name in values else ""
            lines.append(f"  - parameter '{name}'{given}: {err['msg']}")
        raise ParameterError(
            f"invalid parameters for {stem}:\n"
            + "\n".join(lines)
            + f"\nFix the value(s), e.g. `python -m helpers.book.run --only {stem} -p NAME=VALUE`, "
            "or edit the notebook's parameters cell."
        ) from None


def check(stem: str, namespace: dict) -> NotebookParams:
    """Check chapter ``stem``'s parameters in ``namespace`` (its ``globals()``, in the cell after its parameters)."""
    return validate(
        stem, {name: namespace[name] for name in schema(stem).model_fields if name in namespace and name != "notebook"}
    )
