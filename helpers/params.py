"""Parameter schemas for every notebook, and the check that runs before any compute.

Each notebook keeps its defaults, typed and commented, in its cell tagged ``parameters`` (so
``papermill --help-notebook`` documents them). The schema here holds the rules those values must
obey: types, ranges, choices. The notebook checks its own values in its second cell, and the
runner (:mod:`helpers.run`) checks profile values and ``-p`` overrides before it starts a kernel,
so a bad value stops with a message naming the parameter before anything is computed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


#: notebook stem -> schema, filled as the schema classes below are defined; the runner looks here.
SCHEMAS: dict[str, type["NotebookParams"]] = {}


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
        if not stem and cls.__name__.startswith("_"):
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
            f"\nFix the value(s), e.g. `python -m helpers.run --only {notebook} -p NAME=VALUE`, "
            "or edit the notebook's parameters cell.") from None


Backend = Literal["tensorflow", "jax", "torch"]


class _HoldsOutValidation(NotebookParams):
    """Shared rule for schemas with ``train_size`` and ``val_size``: the hold-out must fit."""

    @model_validator(mode="after")
    def _validation_fits(self):
        if self.val_size >= self.train_size // 2:
            raise ValueError(f"val_size ({self.val_size}) must be less than half of "
                             f"train_size ({self.train_size})")
        return self


class Cifar10CnnParams(_HoldsOutValidation):
    """Parameters of ``notebooks/04_cifar10_cnn.ipynb``."""

    notebook: str = "04_cifar10_cnn"
    keras_backend: Backend
    seed: int = Field(ge=0)
    train_size: int = Field(ge=100, le=50_000)
    test_size: int = Field(ge=100, le=10_000)
    val_size: int = Field(ge=50, le=10_000)
    epochs: int = Field(ge=1, le=500)
    batch_size: int = Field(ge=1, le=8192)
    learning_rate: float = Field(gt=0, le=1)
    demo_epochs: int = Field(ge=1, le=500)
    corrected_epochs: int = Field(ge=1, le=500)
    corrected_batch_size: int = Field(ge=1, le=8192)
    augment: bool
    patience: int = Field(ge=1)



Precision = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]
TrainingRecipe = Literal["fp32", "mixed-fp16", "mixed-bf16", "bf16"]


class LargeModelsParams(NotebookParams):
    """Parameters of ``notebooks/01_large_models.ipynb``."""

    notebook: str = "01_large_models"
    keras_backend: Backend
    seed: int = Field(ge=0)
    fit_from_year: int = Field(ge=1990, le=2022)
    cnn_epochs: int = Field(ge=1, le=1000)
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
    accelerator_tflops: float = Field(gt=0, le=1_000_000)
    accelerator_bandwidth_gb_s: float = Field(gt=0, le=1_000_000)
    n_accelerators: int = Field(ge=1, le=10_000_000)
    utilization: float = Field(gt=0, le=1)


class ServitizationParams(NotebookParams):
    """Parameters of ``notebooks/02_servitization.ipynb``."""

    notebook: str = "02_servitization"
    keras_backend: Backend
    seed: int = Field(ge=0)
    n_items: int = Field(ge=100, le=100_000_000)
    serial_items: int = Field(ge=0, le=100_000_000)
    n_tasks: int = Field(ge=1, le=10_000)
    max_workers: int = Field(ge=1, le=64)
    repeats: int = Field(ge=1, le=100)
    request_timeout: float = Field(gt=0, le=3600)
    max_batch: int = Field(ge=1, le=8192)
    batch_images: int = Field(ge=1, le=100_000)

    @model_validator(mode="after")
    def _tasks_fit(self):
        if self.n_tasks > self.n_items:
            raise ValueError(f"n_tasks ({self.n_tasks}) cannot exceed n_items ({self.n_items})")
        return self


class DeepLearningStepsParams(_HoldsOutValidation):
    """Parameters of ``notebooks/03_deep_learning_steps.ipynb``."""

    notebook: str = "03_deep_learning_steps"
    keras_backend: Backend
    seed: int = Field(ge=0)
    train_size: int = Field(ge=100, le=50_000)
    val_size: int = Field(ge=50, le=10_000)
    test_size: int = Field(ge=100, le=10_000)
    epochs: int = Field(ge=2, le=500)
    batch_size: int = Field(ge=1, le=8192)
    learning_rate: float = Field(gt=0, le=1)


OptimizerName = Literal["sgd", "momentum", "adam"]


class LearningMathsParams(NotebookParams):
    """Parameters of ``notebooks/03_learning_maths.ipynb``."""

    notebook: str = "03_learning_maths"
    keras_backend: Backend
    seed: int = Field(ge=0)
    condition_number: float = Field(ge=1, le=1000)
    quadratic_rates: list[float] = Field(min_length=4, max_length=4)
    quadratic_steps: int = Field(ge=1, le=10_000)
    rosenbrock_rates: list[float] = Field(min_length=3, max_length=3)
    rosenbrock_steps: int = Field(ge=1, le=100_000)
    sweep_points: int = Field(ge=5, le=200)
    momentum: float = Field(ge=0, lt=1)
    noise_draws: int = Field(ge=10, le=10_000)
    train_size: int = Field(ge=100, le=50_000)
    test_size: int = Field(ge=100, le=10_000)
    epochs: int = Field(ge=1, le=200)
    batch_size: int = Field(ge=1, le=8192)
    optimizer: OptimizerName
    learning_rate: float = Field(gt=0, le=10)
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
