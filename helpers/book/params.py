"""Parameter schemas for every notebook, and the check that runs before any compute.

Each notebook keeps its defaults, typed and commented, in its cell tagged ``parameters`` (so
``papermill --help-notebook`` documents them). The schema here holds the rules those values must
obey: types, ranges, choices. The notebook checks its own values in its second cell, and the
runner (:mod:`helpers.book.run`) checks profile values and ``-p`` overrides before it starts a kernel,
so a bad value stops with a message naming the parameter before anything is computed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: notebook stem -> schema, filled as the schema classes below are defined; the runner looks here.
SCHEMAS: dict[str, type["NotebookParams"]] = {}


#: schemas that are bases of others, not a notebook's own
BASES = ("ChapterParams",)


class ParameterError(ValueError):
    """One or more notebook parameters are invalid; the message names each one and the fix."""


class NotebookParams(BaseModel):
    """Base class: strict types (no silent "10" -> 10), unknown names rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: the notebook (file stem in notebooks/) these parameters belong to
    notebook: str = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs):
        """Register every schema under its notebook's name (see :data:`SCHEMAS`)."""
        super().__pydantic_init_subclass__(**kwargs)
        stem = cls.model_fields["notebook"].default
        if not stem and (cls.__name__.startswith("_") or cls.__name__ in BASES):
            return  # a shared base for several schemas, not a notebook's own
        if not stem:
            raise TypeError(f"{cls.__name__} must set a default for `notebook` (the notebook's file stem)")
        SCHEMAS[stem] = cls

    @classmethod
    def check(cls, namespace: dict) -> "NotebookParams":
        """Validate the schema's fields taken from ``namespace`` (a notebook's ``globals()``)."""
        values = {name: namespace[name] for name in cls.model_fields if name in namespace and name != "notebook"}
        return validate(cls, values)


def validate(schema: type[NotebookParams], values: dict) -> NotebookParams:
    """Build ``schema`` from ``values`` or raise :class:`ParameterError` naming every bad value."""
    try:
        return schema(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "(parameters)"
            given = f" = {err['input']!r}" if name in values else ""
            lines.append(f"  - parameter '{name}'{given}: {err['msg']}")
        notebook = schema.model_fields["notebook"].default or schema.__name__
        raise ParameterError(
            f"invalid parameters for {notebook}:\n" + "\n".join(lines) +
            f"\nFix the value(s), e.g. `python -m helpers.book.run --only {notebook} -p NAME=VALUE`, "
            "or edit the notebook's parameters cell.") from None


Backend = Literal["tensorflow", "jax", "torch"]

# ---------------------------------------------------------------------------------------------
# One type and one bound per idea: every chapter that has a parameter of one of these names uses
# the type defined here (a test checks that a name shared by several chapters means the same).

Seed = Annotated[int, Field(ge=0)]
TrainSize = Annotated[int, Field(ge=100, le=50_000)]  # CIFAR-10 has 50,000 training images
TestSize = Annotated[int, Field(ge=100, le=10_000)]  # ... and 10,000 test images
ValSize = Annotated[int, Field(ge=50, le=10_000)]
Epochs = Annotated[int, Field(ge=1, le=500)]
BatchSize = Annotated[int, Field(ge=1, le=8192)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
MaxBatchSize = Annotated[int, Field(ge=1, le=8192)]  # most items one model call takes
TimingImages = Annotated[int, Field(ge=1, le=1_000_000)]  # images used to time one setting
Watts = Annotated[float, Field(gt=0, le=10_000)]
Tflops = Annotated[float, Field(gt=0, le=1_000_000)]
Share = Annotated[float, Field(gt=0, le=1)]
Port = Annotated[int, Field(ge=0, le=65_535)]


class ChapterParams(NotebookParams):
    """What every training chapter shares: the Keras backend and the seed."""

    keras_backend: Backend
    seed: Seed


class _HoldsOutValidation(ChapterParams):
    """Shared rule for schemas with ``train_size`` and ``val_size``: the hold-out must fit."""

    @model_validator(mode="after")
    def _validation_fits(self):
        if self.val_size >= self.train_size // 2:
            raise ValueError(f"val_size ({self.val_size}) must be less than half of "
                             f"train_size ({self.train_size})")
        return self


class Cifar10CnnParams(_HoldsOutValidation):
    """Parameters of ``notebooks/05_cifar10_cnn.md``."""

    notebook: str = "cifar10_cnn"
    train_size: TrainSize
    test_size: TestSize
    val_size: ValSize
    epochs: Epochs
    learning_rate: LearningRate
    demo_epochs: Epochs
    corrected_epochs: Epochs
    corrected_batch_size: BatchSize
    augment: bool
    patience: int = Field(ge=1)


class StrongerCnnParams(ChapterParams):
    """Parameters of ``notebooks/06_stronger_cnn.md``."""

    notebook: str = "stronger_cnn"
    test_size: TestSize
    ladder_train_size: int = Field(ge=500, le=50_000)
    ladder_val_size: int = Field(ge=100, le=10_000)
    ladder_epochs: float = Field(gt=0, le=200)
    ladder_batch_size: int = Field(ge=8, le=8192)
    ladder_width: float = Field(gt=0, le=4)
    final_epochs: float = Field(gt=0, le=200)
    final_batch_size: int = Field(ge=8, le=8192)
    final_width: float = Field(gt=0, le=4)
    final_train_size: int = Field(ge=500, le=50_000)
    mixed_precision: bool
    time_budget_minutes: float = Field(gt=0)
    resume_epochs: int = Field(ge=2, le=50)
    resume_train_size: int = Field(ge=256, le=50_000)
    parallel_devices: int = Field(ge=0, le=16)
    parallel_train_size: int = Field(ge=256, le=50_000)
    parallel_epochs: int = Field(ge=2, le=50)

    @model_validator(mode="after")
    def _sizes_fit(self):
        if self.ladder_val_size >= self.ladder_train_size // 2:
            raise ValueError(f"ladder_val_size ({self.ladder_val_size}) must be less than half of "
                             f"ladder_train_size ({self.ladder_train_size})")
        if self.ladder_batch_size > self.ladder_train_size - self.ladder_val_size:
            raise ValueError(f"ladder_batch_size ({self.ladder_batch_size}) exceeds the ladder's training images")
        if self.final_batch_size > self.final_train_size:
            raise ValueError(f"final_batch_size ({self.final_batch_size}) exceeds final_train_size")
        return self


Precision = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]
TrainingRecipe = Literal["fp32", "mixed-fp16", "mixed-bf16", "bf16"]


class LargeModelsParams(ChapterParams):
    """Parameters of ``notebooks/01_large_models.md``."""

    notebook: str = "large_models"
    fit_from_year: int = Field(ge=1990, le=2022)
    cnn_epochs: Epochs
    params_billion: float = Field(gt=0, le=100_000)
    tokens_billion: float = Field(gt=0, le=1_000_000)
    n_layers: int = Field(ge=1, le=1000)
    n_kv_heads: int = Field(ge=1, le=1024)
    head_dim: int = Field(ge=1, le=4096)
    precision: Precision
    training_recipe: TrainingRecipe
    prompt_tokens: int = Field(ge=1, le=10_000_000)
    output_tokens: int = Field(ge=1, le=10_000_000)
    concurrent_requests: int = Field(ge=1, le=100_000)
    accelerator_memory_gb: float = Field(gt=0, le=100_000)
    accelerator_tflops: Tflops
    accelerator_bandwidth_gb_s: float = Field(gt=0, le=1_000_000)
    n_accelerators: int = Field(ge=1, le=10_000_000)
    accelerator_utilization: Share


class ServitizationParams(ChapterParams):
    """Parameters of ``notebooks/02_servitization.md``."""

    notebook: str = "servitization"
    n_items: int = Field(ge=100, le=100_000_000)
    serial_items: int = Field(ge=0, le=100_000_000)
    n_tasks: int = Field(ge=1, le=10_000)
    max_workers: int = Field(ge=1, le=64)
    repeats: int = Field(ge=1, le=100)
    request_timeout: float = Field(gt=0, le=3600)
    max_batch_size: MaxBatchSize
    timing_images: TimingImages

    @model_validator(mode="after")
    def _tasks_fit(self):
        if self.n_tasks > self.n_items:
            raise ValueError(f"n_tasks ({self.n_tasks}) cannot exceed n_items ({self.n_items})")
        return self


class DeepLearningStepsParams(_HoldsOutValidation):
    """Parameters of ``notebooks/03_deep_learning_steps.md``."""

    notebook: str = "deep_learning_steps"
    train_size: TrainSize
    val_size: ValSize
    test_size: TestSize
    epochs: Epochs
    batch_size: BatchSize
    learning_rate: LearningRate

    @model_validator(mode="after")
    def _a_curve_needs_two_epochs(self):
        if self.epochs < 2:
            raise ValueError(f"epochs ({self.epochs}) must be at least 2: the chapter reads its learning curves")
        return self


RequestEncoding = Literal["json", "b64"]


def _levels(name: str, values: list[int], top: int) -> None:
    if any(not 1 <= v <= top for v in values) or values != sorted(set(values)):
        raise ValueError(f"{name} ({values}) must be increasing integers from 1 to {top}")


class ServingParams(ChapterParams):
    """Parameters of ``notebooks/07_serving.md``."""

    notebook: str = "serving"
    model_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    train_size: TrainSize
    epochs: Epochs
    test_size: TestSize
    max_batch_size: MaxBatchSize
    max_wait_ms: float = Field(ge=0, le=1000)
    batching: bool
    concurrency_levels: list[int] = Field(min_length=1, max_length=12)
    requests_per_level: int = Field(ge=10, le=1_000_000)
    ratio_repeats: int = Field(ge=1, le=20)
    encodings: list[RequestEncoding] = Field(min_length=1, max_length=2)
    client_batch_sizes: list[int] = Field(min_length=1, max_length=12)
    timing_images: TimingImages
    sweep_clients: int = Field(ge=1, le=256)
    port: Port

    @model_validator(mode="after")
    def _levels_make_sense(self):
        _levels("concurrency_levels", self.concurrency_levels, 1024)
        _levels("client_batch_sizes", self.client_batch_sizes, 1024)
        if len(set(self.encodings)) != len(self.encodings):
            raise ValueError(f"encodings ({self.encodings}) lists an encoding twice")
        if 0 < self.port < 1024:
            raise ValueError(f"port ({self.port}) must be 0 (any free port) or at least 1024")
        return self


ServedModel = Literal["served", "article"]


class DistributedServingParams(ChapterParams):
    """Parameters of ``notebooks/11_distributed_serving.md`` (the names it shares with the serving
    chapter keep that chapter's types and bounds)."""

    notebook: str = "distributed_serving"
    model_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    train_size: TrainSize
    epochs: Epochs
    test_size: TestSize
    models: list[ServedModel] = Field(min_length=1, max_length=2)
    encoding: RequestEncoding
    max_batch_size: MaxBatchSize
    max_wait_ms: float = Field(ge=0, le=1000)
    max_ongoing_requests: int = Field(ge=1, le=100_000)
    concurrency_levels: list[int] = Field(min_length=1, max_length=12)
    requests_per_level: int = Field(ge=10, le=1_000_000)
    node_cpus: float = Field(gt=0, le=1024)
    failover_clients: int = Field(ge=1, le=256)
    failover_seconds: float = Field(gt=0, le=600)
    kill_after_s: float = Field(gt=0, le=600)
    retries: int = Field(ge=1, le=20)
    target_ongoing_requests: float = Field(gt=0, le=10_000)
    step_clients: int = Field(ge=1, le=1024)
    step_seconds: list[float] = Field(min_length=3, max_length=3)
    upscale_delay_s: float = Field(ge=0, le=600)
    downscale_delay_s: float = Field(ge=0, le=3600)
    port: Port

    @model_validator(mode="after")
    def _runs_make_sense(self):
        _levels("concurrency_levels", self.concurrency_levels, 1024)
        if len(set(self.models)) != len(self.models) or "served" not in self.models:
            raise ValueError(f"models ({self.models}) must list \"served\" (the chapter's model) and a model once")
        if self.kill_after_s >= self.failover_seconds:
            raise ValueError(f"kill_after_s ({self.kill_after_s}) must fall within failover_seconds "
                             f"({self.failover_seconds}): the node is lost under load")
        if any(not 0 < s <= 600 for s in self.step_seconds):
            raise ValueError(f"step_seconds ({self.step_seconds}) must be three durations in (0, 600] s")
        if 0 < self.port < 1024:
            raise ValueError(f"port ({self.port}) must be 0 (any free port) or at least 1024")
        return self


class LanguageModelParams(ChapterParams):
    """Parameters of ``notebooks/08_language_model.md``."""

    notebook: str = "language_model"
    max_poems: int = Field(ge=0, le=1_000_000)
    seq_len: int = Field(ge=48, le=4096)
    min_count: int = Field(ge=1, le=1000)
    d_model: int = Field(ge=8, le=8192)
    n_layers: int = Field(ge=1, le=1000)
    n_heads: int = Field(ge=1, le=128)
    steps: int = Field(ge=10, le=1_000_000)
    batch_size: BatchSize
    learning_rate: LearningRate
    warmup_steps: int = Field(ge=0, le=100_000)
    eval_every: int = Field(ge=1, le=100_000)
    val_rows: int = Field(ge=0, le=1_000_000)
    form_temperature: float = Field(gt=0, le=2)
    form_samples: int = Field(ge=10, le=10_000)
    scaling_sizes: list[list[int]] = Field(min_length=4, max_length=12)
    scaling_steps: int = Field(ge=5, le=1_000_000)
    compute_size: list[int] = Field(min_length=3, max_length=3)
    compute_steps: list[int] = Field(min_length=3, max_length=12)

    @model_validator(mode="after")
    def _shapes_fit(self):
        for where, (d, layers, heads) in [("d_model/n_layers/n_heads", (self.d_model, self.n_layers, self.n_heads)),
                                          ("compute_size", tuple(self.compute_size))] + [
                                              (f"scaling_sizes[{i}]", tuple(s)) for i, s in enumerate(self.scaling_sizes)]:
            if min(d, layers, heads) < 1 or d % heads:
                raise ValueError(f"{where} ({d}, {layers}, {heads}): width, layers and heads must be positive "
                                 "and the width a multiple of the heads")
        if any(len(s) != 3 for s in self.scaling_sizes):
            raise ValueError(f"scaling_sizes ({self.scaling_sizes}) must be [d_model, n_layers, n_heads] triples")
        _increasing("compute_steps", self.compute_steps)
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be less than steps ({self.steps})")
        return self


class DecodingParams(ChapterParams):
    """Parameters of ``notebooks/09_decoding.md`` (the model is the one ``language_model`` trained)."""

    notebook: str = "decoding"
    temperatures: list[float] = Field(min_length=1, max_length=6)
    form_samples: int = Field(ge=10, le=10_000)
    decode_lengths: list[int] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _values_make_sense(self):
        if any(t <= 0 or t > 2 for t in self.temperatures):
            raise ValueError(f"temperatures ({self.temperatures}) must lie in (0, 2]")
        if min(self.decode_lengths) < 2:
            raise ValueError(f"decode_lengths ({self.decode_lengths}) must be at least 2 (and below the trained "
                             "model's context, which the chapter checks when it loads the model)")
        return self


class LlmServingParams(ChapterParams):
    """Parameters of ``notebooks/10_llm_serving.md`` (the model is the one ``language_model`` trained)."""

    notebook: str = "llm_serving"
    concurrency_levels: list[int] = Field(min_length=1, max_length=12)
    requests_per_stream: int = Field(ge=1, le=1000)
    ratio_repeats: int = Field(ge=1, le=20)
    streams: int = Field(ge=1, le=1024)
    port: Port

    @model_validator(mode="after")
    def _levels_make_sense(self):
        _levels("concurrency_levels", self.concurrency_levels, 1024)
        if 0 < self.port < 1024:
            raise ValueError(f"port ({self.port}) must be 0 (any free port) or at least 1024")
        return self


OptimizerName = Literal["sgd", "momentum", "adam"]


class LearningMathsParams(ChapterParams):
    """Parameters of ``notebooks/04_learning_maths.md``."""

    notebook: str = "learning_maths"
    condition_number: float = Field(ge=1, le=1000)
    quadratic_rates: list[float] = Field(min_length=4, max_length=4)
    quadratic_steps: int = Field(ge=1, le=10_000)
    rosenbrock_rates: list[float] = Field(min_length=3, max_length=3)
    rosenbrock_steps: int = Field(ge=1, le=100_000)
    sweep_points: int = Field(ge=5, le=200)
    momentum: float = Field(ge=0, lt=1)
    noise_draws: int = Field(ge=10, le=10_000)
    train_size: TrainSize
    test_size: TestSize
    epochs: Epochs
    batch_size: BatchSize
    optimizer: OptimizerName
    learning_rate: LearningRate
    accuracy_tolerance: float = Field(gt=0, le=0.2)

    @model_validator(mode="after")
    def _rates_tell_the_story(self):
        # The text reads the runs as "below the bound 2/L" and "above it": the rates must say so.
        for name, rates, stable in (("quadratic_rates", self.quadratic_rates, 3),
                                    ("rosenbrock_rates", self.rosenbrock_rates, 2)):
            if any(not 0 < r <= 2 for r in rates) or any(a >= b for a, b in zip(rates, rates[1:])):
                raise ValueError(f"{name} ({rates}) must be increasing fractions of the bound 2/L, "
                                 "each greater than 0 and at most 2")
            if not (rates[stable - 1] < 1 < rates[stable]):
                raise ValueError(f"{name} ({rates}): the first {stable} must be below 1 (stable) and "
                                 "the last above 1 (unstable)")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed train_size ({self.train_size})")
        return self


def _increasing(name: str, values: list) -> None:
    if any(a >= b for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} ({values}) must be strictly increasing")


class TrendsChallengesParams(ChapterParams):
    """Parameters of ``notebooks/08_trends_challenges.md``."""

    notebook: str = "trends_challenges"
    widths: list[float] = Field(min_length=3, max_length=8)
    train_sizes: list[int] = Field(min_length=3, max_length=8)
    test_size: TestSize
    epochs: Epochs
    batch_size: BatchSize
    learning_rate: LearningRate
    fl_train_size: TrainSize
    n_clients: int = Field(ge=1, le=1000)
    dirichlet_alpha: float = Field(gt=0, le=1e6)
    rounds: int = Field(ge=1, le=1000)
    local_epochs: Epochs
    client_fraction: Share
    transfer_per_class: int = Field(ge=5, le=5000)
    transfer_epochs: Epochs
    explain_images: int = Field(ge=1, le=20)
    cpu_watts: Watts
    accelerator_watts: Watts
    accelerator_tflops: Tflops
    accelerator_utilization: Share
    pue: float = Field(ge=1, le=3)

    @model_validator(mode="after")
    def _sweep_is_a_sweep(self):
        _increasing("widths", self.widths)
        _increasing("train_sizes", self.train_sizes)
        if any(not 0 < w <= 8 for w in self.widths):
            raise ValueError(f"widths ({self.widths}) must lie in (0, 8]")
        if any(not 100 <= n <= 50_000 for n in self.train_sizes):
            raise ValueError(f"train_sizes ({self.train_sizes}) must lie between 100 and 50000")
        if self.transfer_per_class > max(self.train_sizes) // 10:
            raise ValueError(f"transfer_per_class ({self.transfer_per_class}) exceeds the images of one class "
                             f"in the largest training set ({max(self.train_sizes) // 10})")
        if self.fl_train_size < 10 * self.n_clients:
            raise ValueError(f"fl_train_size ({self.fl_train_size}) must give each of the "
                             f"n_clients ({self.n_clients}) at least 10 images")
        return self


class FaqParams(ChapterParams):
    """Parameters of ``notebooks/09_faq.md``."""

    notebook: str = "faq"
    train_size: TrainSize
    test_size: TestSize
    epochs: Epochs
    batch_size: BatchSize
    learning_rate: LearningRate
    seed_runs: int = Field(ge=2, le=20)
    time_backends: list[Backend] = Field(min_length=1, max_length=3)
    timing_images: TimingImages
    timing_epochs: Epochs

    @model_validator(mode="after")
    def _distinct_backends(self):
        if len(set(self.time_backends)) != len(self.time_backends):
            raise ValueError(f"time_backends ({self.time_backends}) lists a backend twice")
        return self


class ConclusionParams(NotebookParams):
    """Parameters of ``notebooks/10_conclusion.md``."""

    notebook: str = "conclusion"
    chapters: list[str] = Field(max_length=30)
    accuracy_target: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _chapter_names(self):
        import re

        bad = [c for c in self.chapters if not re.fullmatch(r"[a-z][a-z0-9_]*", c)]
        if bad:
            raise ValueError(f"chapters {bad} are not chapter names like 'cifar10_cnn'")
        return self
