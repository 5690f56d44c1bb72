"""Pre-train the poem model as large models are trained (AdamW, warm-up and cosine decay), at laptop size, in
segments each ending with a validation loss and a checkpoint; step ``s``'s batch depends on ``(seed, s)`` only, so a
resumed run gives the same numbers. Losses are nats per predicted token (characters, punctuation, ``<eos>``)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
from keras import ops

from helpers.lm import compiled
from helpers.lm.data import CharTokenizer, Corpus, Packed, pack, regulated
from helpers.lm.model import ModelConfig, PoetLM, build_model, parameter_counts


@dataclass(frozen=True)
class TrainConfig:
    """How to train: budgets, batch, optimiser and schedule."""

    steps: int = 600
    batch_size: int = 32
    segment_steps: int = 50  # validation, learning-curve point and checkpoint after every segment
    learning_rate: float = 3e-3  # peak
    warmup_steps: int = 40
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta_2: float = 0.95
    clipnorm: float = 1.0
    seed: int = 0
    val_rows: int = 256  # validation rows scored for the learning curve (0: all)
    xla: bool = False  # compile the training step with XLA: faster steps after a compilation of seconds

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.segment_steps < 1:
            raise ValueError(f"steps, batch_size and segment_steps must be positive: {self}")
        if not 0 <= self.warmup_steps < self.steps + 1:
            raise ValueError(f"warmup_steps must be in [0, steps], got {self.warmup_steps}")


@dataclass
class LMData:
    """Everything the model sees: the tokenizer and the packed rows of each split."""

    tokenizer: CharTokenizer
    train: Packed
    validation: Packed
    test: Packed
    seq_len: int

    def facts(self) -> dict:
        return {
            "vocab_size": self.tokenizer.vocab_size,
            "seq_len": self.seq_len,
            **{f"{s}_poems": getattr(self, s).poems for s in ("train", "validation", "test")},
            **{f"{s}_tokens": getattr(self, s).tokens for s in ("train", "validation", "test")},
            **{f"{s}_rows": len(getattr(self, s).rows) for s in ("train", "validation", "test")},
            "dropped_too_long": sum(getattr(self, s).dropped for s in ("train", "validation", "test")),
        }


def prepare(
    corpus: Corpus, seq_len: int = 96, min_count: int = 5, max_poems: int | None = None, seed: int = 0
) -> LMData:
    """The regulated poems of each split (at most ``max_poems``): a tokenizer fitted on the training split, packed
    training rows, one poem a row for validation and test."""
    chosen = [regulated(p)[: max_poems or None] for p in (corpus.train, corpus.validation, corpus.test)]
    tokenizer = CharTokenizer.fit((p.text for p in chosen[0]), min_count=min_count)
    packed = [pack(p, tokenizer, seq_len, seed + i, one_per_row=i > 0) for i, p in enumerate(chosen)]
    return LMData(tokenizer, *packed, seq_len)


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup`` steps, then a cosine down to ``peak * min_ratio`` at ``total``."""

    def __init__(self, peak: float, warmup: int, total: int, min_ratio: float = 0.1):
        self.peak, self.warmup, self.total, self.min_ratio = float(peak), int(warmup), int(total), float(min_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(self.warmup, 1)
        progress = ops.clip((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        cosine = self.peak * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + ops.cos(math.pi * progress)))
        return ops.where(step < self.warmup, warm, cosine)


def compile_for_training(model: PoetLM, cfg: TrainConfig) -> None:
    """AdamW with the warm-up/cosine schedule; masked cross-entropy averaged over counted tokens."""
    opt = keras.optimizers.AdamW(
        learning_rate=WarmupCosine(cfg.learning_rate, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio),
        weight_decay=cfg.weight_decay,
        beta_2=cfg.beta_2,
        clipnorm=cfg.clipnorm or None,
    )
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
    )
    # Keras declines XLA under TensorFlow's op determinism; XLA's CPU code is deterministic for one program
    # (resuming gives the same numbers) and fuses a narrow transformer's small operations, for seconds of compiling
    if cfg.xla and compiled.backend() == "tensorflow":
        model._jit_compile = True
    opt.build(model.trainable_variables)


def batch_indices(n_rows: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Rows of global step ``step``: a seeded permutation per pass over the rows, cut into batches."""
    per_pass = n_rows // batch_size
    if per_pass < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {n_rows} training rows; lower it")
    epoch, k = divmod(step, per_pass)
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    return order[k * batch_size : (k + 1) * batch_size]


class Scorer:
    """Cross-entropy of a model on rows of poems, in nats per counted token (a compiled function, batched)."""

    def __init__(self, model: PoetLM, batch_size: int = 32):
        self.batch_size = batch_size

        def nll(tokens, targets):
            return ops.sparse_categorical_crossentropy(targets, model(tokens), from_logits=True)

        self._nll = compiled.compile_function(nll)

    def nll(self, packed: Packed) -> np.ndarray:
        """Nats of every target of ``packed``, shaped like its targets, 0 where not counted."""
        rows, out = packed.rows, []
        for start in range(0, len(rows), self.batch_size):
            n = min(self.batch_size, len(rows) - start)
            part = np.pad(rows[start : start + n], ((0, self.batch_size - n), (0, 0)))  # one shape: padding rows
            nll = compiled.to_numpy(self._nll(part[:, :-1], part[:, 1:])).astype(np.float64)[:n]
            out.append(nll * Packed(part[:n], 0, 0).mask)
        return np.concatenate(out) if out else np.zeros((0, rows.shape[1] - 1))

    def __call__(self, packed: Packed, max_rows: int = 0) -> float:
        """Nats per counted target of the first ``max_rows`` rows (all: 0)."""
        rows = Packed(packed.rows[:max_rows] if max_rows else packed.rows, 0, 0)
        return float(self.nll(rows).sum() / rows.tokens)


@contextlib.contextmanager
def quiet_keras_numpy_notice():
    """Silence Keras 3.15's NumPy 2 DeprecationWarning about ``__array__`` (once per variable saved or loaded)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
        yield


class Checkpoint:
    """A run's directory: ``config.json``, ``tokenizer.json``, ``model.weights.h5``, ``optimizer.npz``, ``state.json``,
    each replaced atomically, the state (naming the step) last; another run's directory is an error."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)

    def load_state(self, identity: dict) -> dict | None:
        """The saved state (None: no checkpoint yet), after checking that it is of the run ``identity`` names."""
        if not (self.dir / "state.json").is_file():
            return None
        found = json.loads((self.dir / "config.json").read_text())
        if any(found[k] != identity[k] for k in ("model", "train", "data")):
            raise ValueError(
                f"{self.dir} holds a checkpoint of a different run (other model, training "
                "settings or data); delete it or choose another checkpoint directory"
            )
        return json.loads((self.dir / "state.json").read_text())

    def _replace(self, name: str, write) -> None:
        tmp = self.dir / f".tmp.{name}"
        write(tmp)
        os.replace(tmp, self.dir / name)

    def save(self, model: PoetLM, tokenizer: CharTokenizer, identity: dict, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._replace("config.json", lambda p: p.write_text(json.dumps(identity, indent=1)))
        self._replace("tokenizer.json", lambda p: p.write_text(tokenizer.to_json(), encoding="utf-8"))
        with quiet_keras_numpy_notice():  # Keras wants the .weights.h5 suffix, which the temporary name keeps
            self._replace("model.weights.h5", lambda p: model.save_weights(str(p)))
        arrays = {f"v{i}": compiled.to_numpy(v) for i, v in enumerate(model.optimizer.variables)}
        self._replace("optimizer.npz", lambda p: np.savez(open(p, "wb"), **arrays))
        self._replace("state.json", lambda p: p.write_text(json.dumps(state, indent=1)))

    def restore(self, model: PoetLM) -> None:
        """Load the weights and, if the model is compiled, the optimiser state."""
        with quiet_keras_numpy_notice():
            model.load_weights(str(self.dir / "model.weights.h5"))
        if getattr(model, "optimizer", None) is not None:  # (an uncompiled model has none)
            with np.load(self.dir / "optimizer.npz") as saved:
                values = [saved[f"v{i}"] for i in range(len(saved.files))]
            variables = model.optimizer.variables
            if len(values) != len(variables):
                raise ValueError(
                    f"{self.dir}/optimizer.npz holds {len(values)} optimiser variables, the "
                    f"optimiser has {len(variables)}; the checkpoint is of another model"
                )
            for var, value in zip(variables, values):
                var.assign(value)


def load_model(directory: Path | str) -> tuple[PoetLM, CharTokenizer, dict]:
    """A trained model from a checkpoint directory: ``(model, tokenizer, config.json contents)``."""
    directory = Path(directory)
    missing = [n for n in ("config.json", "tokenizer.json", "model.weights.h5") if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a model checkpoint (missing {', '.join(missing)}); "
            "train one with helpers.lm.train.train(..., checkpoint_dir=DIR)"
        )
    identity = json.loads((directory / "config.json").read_text())
    tokenizer = CharTokenizer.from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
    model = PoetLM(ModelConfig(**identity["model"]), name="poet_lm")
    Checkpoint(directory).restore(model)
    return model, tokenizer, identity


@dataclass
class TrainResult:
    """What a run measured. ``history`` has one point per segment (the learning curve)."""

    history: list[dict]
    steps_done: int
    tokens_seen: int
    train_seconds: float
    tokens_per_second: float
    val_loss: float
    params: dict
    resumed_from_step: int
    model: PoetLM | None = field(default=None, repr=False)


def train(
    data: LMData,
    model_config: ModelConfig,
    cfg: TrainConfig,
    checkpoint_dir: Path | str | None = None,
    stop_after_segment: int | None = None,
    fresh: bool = False,
) -> TrainResult:
    """Train (or resume) one model; a :class:`TrainResult` with the model attached (``train_seconds``: the steps only).
    ``stop_after_segment`` ends the call as an interruption would; ``fresh`` deletes an earlier checkpoint first."""
    if fresh and checkpoint_dir and Path(checkpoint_dir).is_dir():
        shutil.rmtree(checkpoint_dir)
    model_config = replace(model_config, vocab_size=data.tokenizer.vocab_size)
    if model_config.max_len < data.seq_len:
        raise ValueError(
            f"max_len={model_config.max_len} is shorter than the training rows ({data.seq_len}); "
            "raise max_len or lower seq_len"
        )
    model = build_model(model_config, cfg.seed)
    compile_for_training(model, cfg)
    ckpt = Checkpoint(checkpoint_dir) if checkpoint_dir else None
    identity = {"model": asdict(model_config), "train": asdict(cfg), "data": data.facts()}
    state = ckpt and ckpt.load_state(identity)
    if state:
        ckpt.restore(model)
    state = state or {"steps_done": 0, "tokens_seen": 0, "train_seconds": 0.0, "history": []}
    resumed_from, segments_run = state["steps_done"], 0
    scorer = Scorer(model, batch_size=cfg.batch_size)
    while state["steps_done"] < cfg.steps and (stop_after_segment is None or segments_run < stop_after_segment):
        _segment(model, data, cfg, state, scorer)
        if ckpt:
            ckpt.save(model, data.tokenizer, identity, state)
        segments_run += 1
    history = state["history"]
    return TrainResult(
        **{k: state[k] for k in ("history", "steps_done", "tokens_seen", "train_seconds")},
        tokens_per_second=state["tokens_seen"] / max(state["train_seconds"], 1e-9),
        val_loss=history[-1]["val_loss"] if history else float("nan"),
        params=parameter_counts(model),
        resumed_from_step=resumed_from,
        model=model,
    )


def _segment(model: PoetLM, data: LMData, cfg: TrainConfig, state: dict, scorer: Scorer) -> None:
    """Train the steps of the next segment and add its learning-curve point to ``state``."""
    first, rows = state["steps_done"], data.train.rows
    last = min(cfg.steps, first + cfg.segment_steps)
    index = np.concatenate([batch_indices(len(rows), cfg.batch_size, s, cfg.seed) for s in range(first, last)])
    part = Packed(rows[index], 0, 0)
    start = time.perf_counter()
    fit = model.fit(
        part.inputs, part.targets, sample_weight=part.mask, batch_size=cfg.batch_size, shuffle=False, verbose=0
    )
    state["train_seconds"] += time.perf_counter() - start
    state["steps_done"], state["tokens_seen"] = last, state["tokens_seen"] + part.tokens
    state["history"].append(
        {
            "step": last,
            "tokens": state["tokens_seen"],
            "train_loss": float(fit.history["loss"][-1]),
            "val_loss": scorer(data.validation, cfg.val_rows),
            "learning_rate": float(compiled.to_numpy(model.optimizer.learning_rate)),
            "seconds": round(state["train_seconds"], 3),
        }
    )
