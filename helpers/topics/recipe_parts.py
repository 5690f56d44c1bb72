"""The building blocks a training recipe switches on (:mod:`helpers.topics.recipe` assembles them)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from helpers.topics.recipe import Recipe

#: airbench's published hyperparameters (per 1,024 examples, PyTorch summed-loss units)
AIRBENCH = dict(lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0, label_smoothing=0.2, lookahead_every=5)


def epoch_data(x: np.ndarray, y: np.ndarray, epoch: int, seed: int, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (and, if asked, flipped and translated) copy of the training set for one epoch."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))
    xe, ye = x[order], y[order]
    if recipe.augment:
        base = np.random.default_rng([seed, 10_000]).random(len(x)) < 0.5
        flip = base[order] ^ bool(epoch % 2)
        xe[flip] = xe[flip, :, ::-1]
        if r := recipe.translate:
            padded = np.pad(xe, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
            shifts = rng.integers(-r, r + 1, size=(len(xe), 2))
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    m = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                    xe[m] = padded[m, r + dy : r + dy + 32, r + dx : r + dx + 32]
    return xe, ye


def build_model(recipe: Recipe, x_train: np.ndarray, seed: int = 0):
    from helpers import models

    if recipe.arch == "fast":
        return models.fast_cnn(recipe.width, x_whiten=x_train[:5000], seed=seed)
    if recipe.arch in ("article", "article_bn"):
        return models.article_cnn(logits=not recipe.softmax_head, batch_norm=recipe.arch == "article_bn")
    raise ValueError(f"unknown arch {recipe.arch!r}; choose article, article_bn or fast")


@functools.cache
def keras_classes():
    """Define (once) the schedule and optimiser classes; they need Keras, imported lazily."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="maas")
    class TriangleSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up from ``start * peak`` to ``peak`` over the first ``warmup`` of the steps, then linear decay to ``end * peak``."""

        def __init__(self, peak, total_steps, warmup=0.23, start=0.2, end=0.07):
            self.peak, self.total_steps = float(peak), int(total_steps)
            self.warmup, self.start, self.end = float(warmup), float(start), float(end)

        def __call__(self, step):
            t = ops.cast(step, "float32")
            top = max(1.0, self.warmup * self.total_steps)
            up = self.start + (1 - self.start) * t / top
            down = 1 + (self.end - 1) * (t - top) / max(1.0, self.total_steps - top)
            return self.peak * ops.where(t < top, up, ops.maximum(down, self.end))

        def get_config(self):
            return {k: getattr(self, k) for k in ("peak", "total_steps", "warmup", "start", "end")}

    @keras.saving.register_keras_serializable(package="maas")
    class LadderSGD(keras.optimizers.SGD):
        """Keras' Nesterov SGD plus airbench's two extras: a larger rate for biases and lookahead."""

        def __init__(self, bias_lr_scale=1.0, lookahead_every=0, lookahead_decay=0.95**5, total_steps=1, **kwargs):
            super().__init__(**kwargs)
            self.bias_lr_scale, self.lookahead_every = float(bias_lr_scale), int(lookahead_every)
            self.lookahead_decay, self.total_steps = float(lookahead_decay), int(total_steps)

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self._slow = []
            for v in variables if self.lookahead_every else ():
                self._slow.append(self.add_variable_from_reference(v, name="lookahead"))
                self._slow[-1].assign(ops.copy(v))  # a copy: JAX must not see one buffer twice

        def update_step(self, gradient, variable, learning_rate):
            if self.bias_lr_scale != 1.0 and variable.name in ("bias", "beta"):
                learning_rate = learning_rate * self.bias_lr_scale
            super().update_step(gradient, variable, learning_rate)
            if self.lookahead_every:
                slow_var = self._slow[self._get_variable_index(variable)]
                slow, value = ops.convert_to_tensor(slow_var), ops.convert_to_tensor(variable)
                step = ops.cast(self.iterations + 1, "float32")
                due = ops.equal(ops.mod(self.iterations + 1, self.lookahead_every), 0)
                decay = self.lookahead_decay * ops.power(ops.minimum(step / self.total_steps, 1.0), 3)
                decay = ops.cast(decay, variable.dtype)
                pulled = slow + (1 - decay) * (value - slow)
                self.assign(slow_var, ops.where(due, pulled, slow))
                self.assign(variable, ops.where(due, pulled, value))

        def get_config(self):
            extra = ("bias_lr_scale", "lookahead_every", "lookahead_decay", "total_steps")
            return {**super().get_config(), **{k: getattr(self, k) for k in extra}}

    return TriangleSchedule, LadderSGD


def compile_model(model, recipe: Recipe, total_steps: int) -> None:
    import keras

    Triangle, LadderSGD = keras_classes()
    lr = Triangle(recipe.learning_rate, total_steps) if recipe.schedule == "triangle" else recipe.learning_rate
    if recipe.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=recipe.weight_decay or None)
    elif recipe.optimizer == "sgd":
        opt = LadderSGD(
            learning_rate=lr,
            momentum=AIRBENCH["momentum"],
            nesterov=True,
            weight_decay=recipe.weight_decay or None,
            bias_lr_scale=recipe.bias_lr_scale,
            lookahead_every=AIRBENCH["lookahead_every"] if recipe.lookahead else 0,
            total_steps=total_steps,
        )
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose adam or sgd")
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=opt, loss=loss)


def reinitialise(model, fresh) -> None:
    """Give a compiled model the weights of a freshly built one and a zeroed optimiser state."""
    model.set_weights(fresh.get_weights())
    opt = model.optimizer
    opt.iterations.assign(0)
    for m in getattr(opt, "momentums", []):
        m.assign(np.zeros(m.shape, dtype="float32"))
    import keras

    for slow, v in zip(getattr(opt, "_slow", []), model.trainable_variables):
        slow.assign(keras.ops.copy(v))


def accuracy(model, x, y, tta: int = 0) -> float:
    """Accuracy of the outputs averaged over test-time augmentations (level 1: mirror; 2: also 1-pixel shifts)."""

    def run(images):
        return np.asarray(model.predict(images, batch_size=2000, verbose=0), dtype=np.float64)

    def mirrored(images):
        out = run(images)
        return out if tta < 1 else 0.5 * out + 0.5 * run(images[:, :, ::-1])

    out = mirrored(x)
    if tta >= 2:
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted = [mirrored(np.ascontiguousarray(padded[:, a : a + 32, a : a + 32])) for a in (0, 2)]
        out = 0.5 * out + 0.5 * (shifted[0] + shifted[1]) / 2
    return float(np.mean(out.argmax(axis=1) == y))
