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


class Cifar10CnnParams(NotebookParams):
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

    @model_validator(mode="after")
    def _validation_fits(self):
        if self.val_size >= self.train_size // 2:
            raise ValueError(f"val_size ({self.val_size}) must be less than half of "
                             f"train_size ({self.train_size})")
        return self

