"""Every notebook parameter's rules, once, and the check that runs before any compute.

A chapter declares its parameters once, in its ``parameters`` cell. What a value must obey is
written here once per *name* (:data:`PARAMETERS`), plus the rules tying one chapter's values together
(:data:`RULES`); a chapter's schema is derived from the two (:func:`schema`). The chapter checks its
values (``params.check("cifar10_cnn", globals())``), and the runner checks profile values and ``-p``
overrides before it starts a kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator


class ParameterError(ValueError):
    """One or more notebook parameters are invalid; the message names each one and the fix."""


def _range(kind: type, lo=None, hi=None, *, gt=None, lt=None):
    return Annotated[kind, Field(ge=lo, le=hi, gt=gt, lt=lt)]


def _list(item, lo: int, hi: int):
    return Annotated[list[item], Field(min_length=lo, max_length=hi)]


Backend = Literal["tensorflow", "jax", "torch"]
Port = _range(int, 0, 65_535)
Levels = _list(int, 1, 12)  # numbers of concurrent clients, increasing (see _levels)
#: one bound per kind of quantity, for every parameter of that kind
Epochs = _range(int, 1, 500)
BatchSize = _range(int, 1, 8192)  # images (or rows, or items) in one step or one model call
Share = _range(float, gt=0, hi=1)
Watts = _range(float, gt=0, hi=10_000)

#: every parameter of the course: its type and bounds, once (a name means the same in every chapter)
PARAMETERS: dict[str, Any] = {
    # shared by the training chapters
    "keras_backend": Backend,
    "seed": _range(int, 0),
    "train_size": _range(int, 100, 50_000),  # CIFAR-10 has 50,000 training images
    "test_size": _range(int, 100, 10_000),  # ... and 10,000 test images
    "val_size": _range(int, 50, 10_000),
    "epochs": Epochs,
    "batch_size": BatchSize,
    "learning_rate": _range(float, gt=0, hi=10),
    "max_batch_size": BatchSize,  # most items one model call takes
    "timing_images": _range(int, 1, 1_000_000),  # images used to time one setting
    "port": Port,
    # large_models
    "fit_from_year": _range(int, 1990, 2022),
    "cnn_epochs": Epochs,
    "params_billion": _range(float, gt=0, hi=100_000),
    "tokens_billion": _range(float, gt=0, hi=1_000_000),
    "n_layers": _range(int, 1, 1000),
    "n_kv_heads": _range(int, 1, 1024),
    "head_dim": _range(int, 1, 4096),
    "precision": Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"],
    "training_recipe": Literal["fp32", "mixed-fp16", "mixed-bf16", "bf16"],
    "prompt_tokens": _range(int, 1, 10_000_000),
    "output_tokens": _range(int, 1, 10_000_000),
    "concurrent_requests": _range(int, 1, 100_000),
    "accelerator_memory_gb": _range(float, gt=0, hi=100_000),
    "accelerator_tflops": _range(float, gt=0, hi=1_000_000),
    "accelerator_bandwidth_gb_s": _range(float, gt=0, hi=1_000_000),
    "n_accelerators": _range(int, 1, 10_000_000),
    "accelerator_utilization": Share,
    # servitization
    "n_items": _range(int, 100, 100_000_000),
    "serial_items": _range(int, 0, 100_000_000),
    "n_tasks": _range(int, 1, 10_000),
    "max_workers": _range(int, 1, 64),
    "repeats": _range(int, 1, 100),
    "request_timeout": _range(float, gt=0, hi=3600),
    # learning_maths
    "condition_number": _range(float, 1, 1000),
    "quadratic_rates": _list(float, 4, 4),
    "quadratic_steps": _range(int, 1, 10_000),
    "rosenbrock_rates": _list(float, 3, 3),
    "rosenbrock_steps": _range(int, 1, 100_000),
    "sweep_points": _range(int, 5, 200),
    "momentum": _range(float, 0, lt=1),
    "noise_draws": _range(int, 10, 10_000),
    "optimizer": Literal["sgd", "momentum", "adam"],
    "accuracy_tolerance": _range(float, gt=0, hi=0.2),
    # cifar10_cnn
    "demo_epochs": Epochs,
    "corrected_epochs": Epochs,
    "corrected_batch_size": BatchSize,
    "augment": bool,
    "patience": _range(int, 1),
    # stronger_cnn
    "ladder_train_size": _range(int, 500, 50_000),
    "ladder_val_size": _range(int, 100, 10_000),
    "ladder_epochs": _range(float, gt=0, hi=200),
    "ladder_batch_size": _range(int, 8, 8192),
    "ladder_width": _range(float, gt=0, hi=4),
    "final_epochs": _range(float, gt=0, hi=200),
    "final_batch_size": _range(int, 8, 8192),
    "final_width": _range(float, gt=0, hi=4),
    "final_train_size": _range(int, 500, 50_000),
    "mixed_precision": bool,
    "time_budget_minutes": _range(float, gt=0),
    "resume_epochs": _range(int, 2, 50),
    "resume_train_size": _range(int, 256, 50_000),
    "parallel_devices": _range(int, 0, 16),
    "parallel_train_size": _range(int, 256, 50_000),
    "parallel_epochs": _range(int, 2, 50),
    # serving and distributed_serving
    "model_name": Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")],
    "max_wait_ms": _range(float, 0, 1000),
    "batching": bool,
    "concurrency_levels": Levels,
    "requests_per_level": _range(int, 10, 1_000_000),
    "ratio_repeats": _range(int, 1, 20),
    "encodings": _list(Literal["json", "b64"], 1, 2),
    "encoding": Literal["json", "b64"],
    "client_batch_sizes": _list(int, 1, 12),
    "sweep_clients": _range(int, 1, 256),
    "models": _list(Literal["served", "article"], 1, 2),
    "max_ongoing_requests": _range(int, 1, 100_000),
    "node_cpus": _range(float, gt=0, hi=1024),
    "failover_clients": _range(int, 1, 256),
    "failover_seconds": _range(float, gt=0, hi=600),
    "kill_after_s": _range(float, gt=0, hi=600),
    "retries": _range(int, 1, 20),
    "target_ongoing_requests": _range(float, gt=0, hi=10_000),
    "step_clients": _range(int, 1, 1024),
    "step_seconds": _list(float, 3, 3),
    "upscale_delay_s": _range(float, 0, 600),
    "downscale_delay_s": _range(float, 0, 3600),
    # the language-model chapters
    "max_poems": _range(int, 0, 1_000_000),
    "seq_len": _range(int, 48, 4096),
    "min_count": _range(int, 1, 1000),
    "d_model": _range(int, 8, 8192),
    "n_heads": _range(int, 1, 128),
    "steps": _range(int, 10, 1_000_000),
    "warmup_steps": _range(int, 0, 100_000),
    "eval_every": _range(int, 1, 100_000),
    "val_rows": _range(int, 0, 1_000_000),
    "form_temperature": _range(float, gt=0, hi=2),
    "form_samples": _range(int, 10, 10_000),
    "scaling_sizes": _list(list[int], 4, 12),
    "scaling_steps": _range(int, 5, 1_000_000),
    "compute_size": _list(int, 3, 3),
    "compute_steps": _list(int, 3, 12),
    "temperatures": _list(float, 1, 6),
    "decode_lengths": _list(int, 1, 8),
    "requests_per_stream": _range(int, 1, 1000),
    "streams": _range(int, 1, 1024),
    "paged_streams": _list(int, 2, 2),  # llm_serving: streams of the paged-cache comparison, increasing
    "lm_streams": Levels,  # distributed_serving: streams of the language model on Ray against one process
    # trends_challenges
    "widths": _list(float, 3, 8),
    "train_sizes": _list(int, 3, 8),
    "fl_train_size": _range(int, 100, 50_000),
    "n_clients": _range(int, 1, 1000),
    "dirichlet_alpha": _range(float, gt=0, hi=1e6),
    "rounds": _range(int, 1, 1000),
    "local_epochs": Epochs,
    "client_fraction": Share,
    "transfer_per_class": _range(int, 5, 5000),
    "transfer_epochs": Epochs,
    "explain_images": _range(int, 1, 20),
    "cpu_watts": Watts,
    "accelerator_watts": Watts,
    "pue": _range(float, 1, 3),
    # faq
    "seed_runs": _range(int, 2, 20),
    "time_backends": _list(Backend, 1, 3),
    "timing_epochs": Epochs,
    # conclusion
    "chapters": _list(str, 0, 30),
    "accuracy_target": _range(float, gt=0, lt=1),
}


# ---------------------------------------------------------------------------------------------
# the rules that tie one chapter's values together: each raises ValueError naming the values


def _levels(name: str, values: list[int], top: int = 1024) -> None:
    if any(not 1 <= v <= top for v in values) or values != sorted(set(values)):
        raise ValueError(f"{name} ({values}) must be increasing integers from 1 to {top}")


def _increasing(name: str, values: list) -> None:
    if any(a >= b for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} ({values}) must be strictly increasing")


def _port(p) -> None:
    if 0 < p.port < 1024:
        raise ValueError(f"port ({p.port}) must be 0 (any free port) or at least 1024")


def _holds_out_validation(p) -> None:
    if p.val_size >= p.train_size // 2:
        raise ValueError(f"val_size ({p.val_size}) must be less than half of train_size ({p.train_size})")


def _curve_needs_two_epochs(p) -> None:
    if p.epochs < 2:
        raise ValueError(f"epochs ({p.epochs}) must be at least 2: the chapter reads its learning curves")


def _tasks_fit(p) -> None:
    if p.n_tasks > p.n_items:
        raise ValueError(f"n_tasks ({p.n_tasks}) cannot exceed n_items ({p.n_items})")


def _rates_tell_the_story(p) -> None:
    # The text reads the runs as "below the bound 2/L" and "above it": the rates must say so.
    for name, rates, stable in (("quadratic_rates", p.quadratic_rates, 3), ("rosenbrock_rates", p.rosenbrock_rates, 2)):
        if any(not 0 < r <= 2 for r in rates) or any(a >= b for a, b in zip(rates, rates[1:])):
            raise ValueError(
                f"{name} ({rates}) must be increasing fractions of the bound 2/L, each greater than 0 and at most 2"
            )
        if not (rates[stable - 1] < 1 < rates[stable]):
            raise ValueError(
                f"{name} ({rates}): the first {stable} must be below 1 (stable) and the last above 1 (unstable)"
            )
    if p.batch_size > p.train_size:
        raise ValueError(f"batch_size ({p.batch_size}) must not exceed train_size ({p.train_size})")


def _ladder_fits(p) -> None:
    if p.ladder_val_size >= p.ladder_train_size // 2:
        raise ValueError(
            f"ladder_val_size ({p.ladder_val_size}) must be less than half of ladder_train_size ({p.ladder_train_size})"
        )
    if p.ladder_batch_size > p.ladder_train_size - p.ladder_val_size:
        raise ValueError(f"ladder_batch_size ({p.ladder_batch_size}) exceeds the ladder's training images")
    if p.final_batch_size > p.final_train_size:
        raise ValueError(f"final_batch_size ({p.final_batch_size}) exceeds final_train_size")


def _serving_lists(p) -> None:
    _levels("concurrency_levels", p.concurrency_levels)
    _levels("client_batch_sizes", p.client_batch_sizes)
    if len(set(p.encodings)) != len(p.encodings):
        raise ValueError(f"encodings ({p.encodings}) lists an encoding twice")


def _distributed_runs(p) -> None:
    _levels("concurrency_levels", p.concurrency_levels)
    _levels("lm_streams", p.lm_streams)
    if len(set(p.models)) != len(p.models) or "served" not in p.models:
        raise ValueError(f'models ({p.models}) must list "served" (the chapter\'s model) and a model once')
    if p.kill_after_s >= p.failover_seconds:
        raise ValueError(
            f"kill_after_s ({p.kill_after_s}) must fall within failover_seconds ({p.failover_seconds}): the node is lost under load"
        )
    if any(not 0 < s <= 600 for s in p.step_seconds):
        raise ValueError(f"step_seconds ({p.step_seconds}) must be three durations in (0, 600] s")


def _shapes_fit(p) -> None:
    if any(len(s) != 3 for s in p.scaling_sizes):
        raise ValueError(f"scaling_sizes ({p.scaling_sizes}) must be [d_model, n_layers, n_heads] triples")
    shapes = [("d_model/n_layers/n_heads", (p.d_model, p.n_layers, p.n_heads)), ("compute_size", tuple(p.compute_size))]
    for where, (d, layers, heads) in shapes + [
        (f"scaling_sizes[{i}]", tuple(s)) for i, s in enumerate(p.scaling_sizes)
    ]:
        if min(d, layers, heads) < 1 or d % heads:
            raise ValueError(
                f"{where} ({d}, {layers}, {heads}): width, layers and heads must be positive and the width a multiple of the heads"
            )
    _increasing("compute_steps", p.compute_steps)
    if p.warmup_steps >= p.steps:
        raise ValueError(f"warmup_steps ({p.warmup_steps}) must be less than steps ({p.steps})")


def _decoding_values(p) -> None:
    if any(t <= 0 or t > 2 for t in p.temperatures):
        raise ValueError(f"temperatures ({p.temperatures}) must lie in (0, 2]")
    if min(p.decode_lengths) < 2:
        raise ValueError(
            f"decode_lengths ({p.decode_lengths}) must be at least 2 (and below the trained model's context, which the chapter checks when it loads the model)"
        )


def _sweep_is_a_sweep(p) -> None:
    _increasing("widths", p.widths)
    _increasing("train_sizes", p.train_sizes)
    if any(not 0 < w <= 8 for w in p.widths):
        raise ValueError(f"widths ({p.widths}) must lie in (0, 8]")
    if any(not 100 <= n <= 50_000 for n in p.train_sizes):
        raise ValueError(f"train_sizes ({p.train_sizes}) must lie between 100 and 50000")
    if p.transfer_per_class > max(p.train_sizes) // 10:
        raise ValueError(
            f"transfer_per_class ({p.transfer_per_class}) exceeds the images of one class in the largest training set ({max(p.train_sizes) // 10})"
        )
    if p.fl_train_size < 10 * p.n_clients:
        raise ValueError(
            f"fl_train_size ({p.fl_train_size}) must give each of the n_clients ({p.n_clients}) at least 10 images"
        )


def _distinct_backends(p) -> None:
    if len(set(p.time_backends)) != len(p.time_backends):
        raise ValueError(f"time_backends ({p.time_backends}) lists a backend twice")


def _chapter_names(p) -> None:
    bad = [c for c in p.chapters if not re.fullmatch(r"[a-z][a-z0-9_]*", c)]
    if bad:
        raise ValueError(f"chapters {bad} are not chapter names like 'cifar10_cnn'")


#: chapter -> the rules its values must obey together (beyond each value's own type and bounds)
RULES: dict[str, tuple[Callable, ...]] = {
    "servitization": (_tasks_fit,),
    "deep_learning_steps": (_holds_out_validation, _curve_needs_two_epochs),
    "learning_maths": (_rates_tell_the_story,),
    "cifar10_cnn": (_holds_out_validation,),
    "stronger_cnn": (_ladder_fits,),
    "serving": (_serving_lists, _port),
    "language_model": (_shapes_fit,),
    "decoding": (_decoding_values,),
    "llm_serving": (
        lambda p: _levels("concurrency_levels", p.concurrency_levels),
        lambda p: _levels("paged_streams", p.paged_streams),
        _port,
    ),
    "distributed_serving": (_distributed_runs, _port),
    "trends_challenges": (_sweep_is_a_sweep,),
    "faq": (_distinct_backends,),
    "conclusion": (_chapter_names,),
}


# ---------------------------------------------------------------------------------------------
# the schema of a chapter, derived, and the check


class NotebookParams(BaseModel):
    """Base of every chapter's schema: strict types (no silent "10" -> 10), unknown names rejected, and the
    chapter's :data:`RULES` applied once every value has its type."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    notebook: str = ""  # the chapter's id

    @model_validator(mode="after")
    def _chapter_rules(self):
        for rule in RULES.get(self.notebook, ()):
            rule(self)
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
    unknown = [n for n in names if n not in PARAMETERS]
    if unknown:
        raise TypeError(f"{stem}'s parameters {unknown} have no rule in helpers/book/params.py PARAMETERS: add one")
    fields = {name: (PARAMETERS[name], ...) for name in names}
    title = "".join(part.title() for part in stem.split("_")) + "Params"
    return create_model(title, __base__=NotebookParams, notebook=(str, stem), **fields)


def validate(stem: str, values: dict, names: tuple[str, ...] | None = None) -> NotebookParams:
    """Chapter ``stem``'s ``values`` checked against :func:`schema`, or :class:`ParameterError` naming every
    bad one and the fix."""
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
