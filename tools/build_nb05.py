"""Write notebooks/05_stronger_cnn.ipynb (the source of chapter 05) from the cells below.

    python tools/build_nb05.py

Kept in the repository so the chapter's prose and code can be edited side by side; the notebook
it writes is committed without outputs.
"""

from pathlib import Path

import nbformat as nbf

cells = []


def md(en: str, zh: str) -> None:
    cells.append(nbf.v4.new_markdown_cell(en.strip(), metadata={"tags": ["en"]}))
    cells.append(nbf.v4.new_markdown_cell(zh.strip(), metadata={"tags": ["zh"]}))


def code(src: str, *tags: str) -> None:
    meta = {"tags": list(tags)} if tags else {}
    cells.append(nbf.v4.new_code_cell(src.strip(), metadata=meta))


md(r"""
(stronger-cnn-en)=
# Beyond the article's CNN: an ablation ladder, a GPU recipe and training that survives interruption

The article's FAQ asks how to improve a model's performance and answers in one sentence. This
chapter answers with measurements. Starting from the article's network and training
({ref}`cifar10-cnn-en`), it adds one change at a time — the corrected loss, a validation split,
data augmentation, batch normalization {cite}`ioffe2015batch`, a wider and deeper VGG-style
network, a one-cycle learning-rate schedule {cite}`smith2019super`, label smoothing
{cite}`szegedy2016rethinking`, weight decay {cite}`loshchilov2019decoupled`, lookahead
{cite}`zhang2019lookahead`, test-time augmentation and, on a GPU, mixed precision
{cite}`micikevicius2018mixed` — and measures each rung's test accuracy, training time and
throughput on the same machine. The strong end of the ladder follows the design of airbench
{cite}`jordan2024airbench`, the public single-GPU CIFAR-10 speed record, ported to Keras 3's
backend-neutral API so the same code trains on TensorFlow (CPU) and JAX (GPU).

Then it trains that recipe on all 50,000 training images, shows the recorded GPU reference run,
kills and resumes a training run, checks that the same seed gives the same numbers, and trains
the same model data-parallel over several devices and processes. This page ran on
{glue:text}`device`.
""", r"""
(stronger-cnn-zh)=
# 超越原文的 CNN：消融阶梯、GPU 配方与可中断恢复的训练

原文的常见问题里问到“如何提高模型性能”，只用一句话作答。本章用测量来回答。从原文的网络与训练
（{ref}`cifar10-cnn-zh`）出发，每次只加一项改动——纠正损失、划出验证集、数据增强、批归一化
{cite}`ioffe2015batch`、更宽更深的 VGG 式网络、单周期（one-cycle）学习率调度 {cite}`smith2019super`、
标签平滑 {cite}`szegedy2016rethinking`、权重衰减 {cite}`loshchilov2019decoupled`、Lookahead
{cite}`zhang2019lookahead`、测试时增强，以及在 GPU 上的混合精度 {cite}`micikevicius2018mixed`——并在同一台机器上
测量每一级的测试准确率、训练时间和吞吐量。阶梯顶端沿用 airbench {cite}`jordan2024airbench` 的设计（公开的单 GPU
CIFAR-10 速度纪录），并移植到 Keras 3 与后端无关的 API 上，因此同一份代码既能在 TensorFlow（CPU）上训练，
也能在 JAX（GPU）上训练。

随后本章用全部 50,000 张训练图像训练这一配方，展示记录下来的 GPU 参考运行，杀掉并恢复一次训练，检查相同种子给出相同数字，
并把同一个模型在多个设备和多个进程上做数据并行训练。本页运行于 {glue:text}`device`。
""")

md(r"""
## Parameters

Every rung, the final recipe and the demonstrations are set by the parameters below (run with
`python -m helpers.run --only 05_stronger_cnn -p final_epochs=12`, for example). The `cpu`
profile keeps the whole chapter within about half an hour on two cores; the `gpu` profile trains
every rung on all the data with the JAX backend.
""", r"""
## 参数

每一级阶梯、最终配方和各个演示都由下面的参数决定（例如运行
`python -m helpers.run --only 05_stronger_cnn -p final_epochs=12`）。`cpu` 参数档让整章在两个 CPU 核上约半小时内跑完；
`gpu` 参数档用 JAX 后端在全部数据上训练每一级。
""")

code(r"""
keras_backend: str = "tensorflow"  # Keras backend, tensorflow on a CPU or jax on a GPU
seed: int = 0  # seed for subsets, splits, data order, augmentation and initial weights
test_size: int = 10_000  # test images that score every rung (a stratified subset below 10,000)
ladder_train_size: int = 20_000  # training images for each rung of the ladder
ladder_val_size: int = 2_000  # images held out of those, from the validation rung on
ladder_epochs: float = 4.0  # epochs of every rung (the same for all, so costs compare)
ladder_batch_size: int = 256  # one batch size for every rung
ladder_width: float = 0.25  # width multiplier of the fast net in the ladder (1.0 is airbench's)
final_train_size: int = 50_000  # training images for the final recipe
final_epochs: float = 8.0  # epochs of the final recipe
final_batch_size: int = 512  # batch size of the final recipe (the learning rate scales with it)
final_width: float = 0.5  # width multiplier of the final fast net
mixed_precision: bool = False  # bfloat16 compute and an extra rung, worth it on a GPU only
time_budget_minutes: float = 20.0  # the training-time budget the final run is judged against
resume_train_size: int = 2_000  # images in the interruption demonstration
resume_epochs: int = 3  # epochs in the interruption demonstration
parallel_devices: int = 2  # devices or worker processes for data-parallel training, 0 skips it
parallel_train_size: int = 10_000  # images in the data-parallel measurement
parallel_epochs: int = 3  # epochs in the data-parallel measurement, the first is not timed
""", "parameters")

code(r"""
from helpers import env
from helpers.params import StrongerCnnParams

P = StrongerCnnParams.check(globals())  # stops here, naming the parameter, if a value is invalid
hw = env.setup(keras_backend, seed=seed)  # picks the backend before Keras is imported; seeds everything
""")

code(r"""
import json
import shutil
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from helpers import artifacts, data, fastnet, plots, recipe

plots.use_style()
glue("device", env.describe(hw), display=False)
print("Running on", env.describe(hw), "with Keras", keras.__version__, "on", keras.backend.backend())
""", "nbval-ignore-output")

md(r"""
## The ladder

Each rung keeps every change above it and adds one. All rungs train on the same
{glue:text}`ladder_n` images for the same {glue:text}`ladder_epochs` epochs at batch size
{glue:text}`ladder_bs`, and are scored on the same {glue:text}`test_n` test images, so a row's
difference from the row above is the effect of that one change (at this budget: a change that
needs more epochs to pay off can look useless here). The fast net in the ladder has width
multiplier {glue:text}`ladder_width`.

- **article**: the article's model as written, with its softmax output fed to a loss told to
  expect logits ({ref}`cifar10-cnn-en` measures what that does on each backend).
- **logits**: the output layer returns logits, as `from_logits=True` assumes.
- **validation**: {glue:text}`ladder_val` training images are held out; every later choice could be
  made on them instead of on the test set. It costs a little accuracy (less training data) and
  buys an honest test figure.
- **augment**: each epoch sees every image flipped or not (alternating between epochs) and shifted
  by up to two pixels with reflection padding, prepared in NumPy on a thread while the previous
  epoch trains.
- **batchnorm**: batch normalization after each convolution {cite}`ioffe2015batch`, with momentum
  0.9 for its running statistics. Keras' default, 0.99, starts them at mean 0 and variance 1 and
  keeps a share $0.99^{t}$ of that start after $t$ steps: after the {glue:text}`ladder_steps`
  steps of a rung here that is {glue:text}`bn_stale:.0%`, which skews every normalised activation
  at test time (exercise 6).
- **fastnet**: the VGG-style network of airbench {cite}`jordan2024airbench`: a frozen 2×2 whitening
  convolution (its filters are the eigenvectors of the image patches' covariance), three blocks of
  two 3×3 convolutions with max-pooling, batch norm and GELU, partially identity-initialised.
- **schedule**: SGD with Nesterov momentum and a triangular one-cycle schedule
  {cite}`smith2019super` (biases learn 64 times faster, as in airbench), instead of Adam at a
  constant rate.
- **smoothing**: label smoothing 0.2 {cite}`szegedy2016rethinking`.
- **decay**: weight decay {cite}`loshchilov2019decoupled`.
- **lookahead**: every five steps the weights are pulled towards a slow running average
  {cite}`zhang2019lookahead`.
- **tta**: at test time, average the logits of the image, its mirror and two one-pixel shifts of
  both. It changes no training, only evaluation.
- **bf16** (only when `mixed_precision` is on): compute in bfloat16 with float32 weights
  {cite}`micikevicius2018mixed`.
""", r"""
## 消融阶梯

每一级都保留上面所有改动，并新增一项。所有级别都在相同的 {glue:text}`ladder_n` 张图像上、以批大小
{glue:text}`ladder_bs` 训练相同的 {glue:text}`ladder_epochs` 轮，并在相同的 {glue:text}`test_n` 张测试图像上评分，
所以每一行与上一行的差别就是那一项改动的效果（限于这个预算：需要更多轮次才见效的改动在这里可能显得没用）。
阶梯中快速网络的宽度倍数为 {glue:text}`ladder_width`。

- **article**：原文的模型原样训练，softmax 输出被送进一个以为输入是 logits 的损失
  （{ref}`cifar10-cnn-zh` 测量了这在各后端上的后果）。
- **logits**：输出层返回 logits，与 `from_logits=True` 的假设一致。
- **validation**：留出 {glue:text}`ladder_val` 张训练图像；之后的每个选择都可以据此而不是据测试集作出。
  它损失一点准确率（训练数据变少），换来一个诚实的测试数字。
- **augment**：每一轮中每张图像要么翻转要么不翻转（在相邻轮次间交替），并用反射填充随机平移至多两个像素；
  增强在 NumPy 中由一个线程在上一轮训练时准备好。
- **batchnorm**：每个卷积之后加批归一化 {cite}`ioffe2015batch`，其滑动统计量的动量取 0.9。Keras 的默认值 0.99
  让它们从均值 0、方差 1 起步，$t$ 步之后仍保留起始值的 $0.99^{t}$：在这里每一级的 {glue:text}`ladder_steps`
  步之后还剩 {glue:text}`bn_stale:.0%`，这会在测试时扭曲每一个归一化后的激活值（见练习 6）。
- **fastnet**：airbench {cite}`jordan2024airbench` 的 VGG 式网络：一个冻结的 2×2 白化卷积（其滤波器是图像小块协方差的特征向量），
  三个各含两个 3×3 卷积、最大池化、批归一化和 GELU 的块，部分层以恒等映射初始化。
- **schedule**：带 Nesterov 动量的 SGD 和三角形单周期学习率调度 {cite}`smith2019super`（偏置的学习率是 64 倍，与 airbench 相同），
  取代恒定学习率的 Adam。
- **smoothing**：标签平滑 0.2 {cite}`szegedy2016rethinking`。
- **decay**：权重衰减 {cite}`loshchilov2019decoupled`。
- **lookahead**：每五步把权重拉向一个缓慢更新的滑动平均 {cite}`zhang2019lookahead`。
- **tta**：测试时把原图、镜像以及两者各两个一像素平移的 logits 取平均。它不改变训练，只改变评估。
- **bf16**（仅当 `mixed_precision` 打开时）：用 bfloat16 计算、float32 保存权重 {cite}`micikevicius2018mixed`。
""")

code(r"""
cifar = data.load_cifar10(None, test_size, seed)  # all training images; the ladder takes a subset
ladder_idx = data.stratified_indices(cifar.y_train, ladder_train_size, seed) if ladder_train_size < 50_000 else np.arange(50_000)
x_ladder, y_ladder = cifar.x_train[ladder_idx], cifar.y_train[ladder_idx]
rungs = recipe.ladder(ladder_batch_size, ladder_epochs, ladder_width, ladder_val_size, mixed_precision)
glue("ladder_n", f"{ladder_train_size:,}", display=False)
glue("ladder_val", f"{ladder_val_size:,}", display=False)
glue("ladder_epochs", f"{ladder_epochs:g}", display=False)
glue("ladder_bs", ladder_batch_size, display=False)
glue("ladder_width", f"{ladder_width:g}", display=False)
ladder_steps = round(ladder_epochs * ((ladder_train_size - ladder_val_size) // ladder_batch_size))
glue("ladder_steps", ladder_steps, display=False)
glue("bn_stale", 0.99 ** ladder_steps, display=False)
glue("test_n", f"{len(cifar.y_test):,}", display=False)
print(f"{len(rungs)} rungs; ladder data {x_ladder.shape}, test {cifar.x_test.shape}")
""")

code(r"""
rows = []
for rung, change, r in rungs:
    with warnings.catch_warnings():  # the article rung's from_logits warning: chapter 04 shows and explains it
        warnings.filterwarnings("ignore", message=".*from_logits=True.*")
        res = recipe.train(r, x_ladder, y_ladder, cifar.x_test, cifar.y_test, seed=seed)
    rows.append({"rung": rung, "change": change, "test_accuracy": res.test_accuracy,
                 "val_accuracy": res.val_accuracy, "train_seconds": res.train_seconds,
                 "images_per_second": res.images_per_second, "epochs": res.epochs_done, "params": res.params})
    print(f"{rung:<11} test accuracy {res.test_accuracy:.2%}")
ladder_df = pd.DataFrame(rows)
ladder_df.to_csv(artifacts.artifact("ablation.csv"), index=False)  # read by the FAQ chapter
""")

code(r"""
acc = dict(zip(ladder_df.rung, ladder_df.test_accuracy))
for rung, value in acc.items():
    glue(f"acc_{rung}", value, display=False)
glue("ladder_gain", acc[rungs[-1][0]] - acc["article"], display=False)
glue("fastnet_gain", acc["fastnet"] - acc["batchnorm"], display=False)
glue("val_gap", float((ladder_df.val_accuracy - ladder_df.test_accuracy).abs().max()), display=False)
best_single = ladder_df.assign(gain=ladder_df.test_accuracy.diff()).iloc[1:].sort_values("gain").iloc[-1]
glue("best_step", best_single.rung, display=False)
glue("best_step_gain", float(best_single.gain), display=False)
print(f"article {acc['article']:.2%} -> top rung {acc[rungs[-1][0]]:.2%}; largest single step: {best_single.rung}")
""")

code(r"""
shown = ladder_df.assign(
    test_accuracy=ladder_df.test_accuracy.map("{:.2%}".format),
    val_accuracy=ladder_df.val_accuracy.map(lambda v: "—" if pd.isna(v) else f"{v:.2%}"),
    train_seconds=ladder_df.train_seconds.map("{:.0f}".format),
    images_per_second=ladder_df.images_per_second.map("{:,.0f}".format),
    params=ladder_df.params.map("{:,}".format),
)[["rung", "change", "test_accuracy", "val_accuracy", "train_seconds", "images_per_second", "params"]]
glue("ladder_table", shown.style.hide(axis="index"), display=False)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
ax1.barh(ladder_df.rung[::-1], ladder_df.test_accuracy[::-1] * 100)
ax1.set_xlabel("test accuracy (%) · 测试准确率")
ax1.set_xlim(max(0, ladder_df.test_accuracy.min() * 100 - 10), 100)
ax2.barh(ladder_df.rung[::-1], ladder_df.train_seconds[::-1])
ax2.set_xlabel("training time (s) · 训练时间（秒）")
fig.suptitle("Ablation ladder · 消融阶梯")
fig.tight_layout()
glue("ladder_figure", fig, display=False)
plt.close(fig)
glue("ladder_seconds", float(ladder_df.train_seconds.sum()), display=False)
secs = dict(zip(ladder_df.rung, ladder_df.train_seconds))
glue("fastnet_cost", secs["fastnet"] / secs["batchnorm"], display=False)
""", "nbval-ignore-output")

md(r"""
```{glue:figure} ladder_figure
:name: fig-ladder-en

Test accuracy and training time of each rung (same data, epochs and batch size for all).
```

```{glue:} ladder_table
```

From the article's {glue:text}`acc_article:.1%` the ladder climbs to {glue:text}`acc_tta:.1%`
with test-time augmentation (a gain of {glue:text}`ladder_gain:.1%` at the same number of
epochs). The largest single step is **{glue:text}`best_step`** (+{glue:text}`best_step_gain:.1%`).
Moving from the article-sized network to the fast net changes test accuracy by
{glue:text}`fastnet_gain:+.1%` for {glue:text}`fastnet_cost:.1f` times the training time of the rung
before it. The ladder's training took {glue:text}`ladder_seconds:.0f` seconds in all on this
machine. The validation column stays within {glue:text}`val_gap:.1%` of the test column on every
rung, which is what makes it safe to choose settings on validation data only.
""", r"""
```{glue:figure} ladder_figure
:name: fig-ladder-zh

每一级的测试准确率与训练时间（所有级别的数据、轮数和批大小都相同）。
```

```{glue:} ladder_table
```

阶梯从原文的 {glue:text}`acc_article:.1%` 升到加上测试时增强后的 {glue:text}`acc_tta:.1%`（在相同轮数下提升
{glue:text}`ladder_gain:.1%`）。单步提升最大的是 **{glue:text}`best_step`**（+{glue:text}`best_step_gain:.1%`）。
从原文规模的网络换成快速网络，测试准确率变化 {glue:text}`fastnet_gain:+.1%`，训练时间是上一级的
{glue:text}`fastnet_cost:.1f` 倍。整个阶梯在本机上共训练了 {glue:text}`ladder_seconds:.0f` 秒。每一级的验证准确率与测试准确率之差都不超过
{glue:text}`val_gap:.1%`，这正是只在验证数据上做选择也安全的原因。
""")

md(r"""
## The final recipe on all the training images

The top rung is now trained on {glue:text}`final_n` images for {glue:text}`final_epochs` epochs at
batch size {glue:text}`final_bs` with width multiplier {glue:text}`final_width`. Its hyperparameters
are airbench's published ones {cite}`jordan2024airbench`, converted to Keras' units
(`recipe.keras_sgd_settings`: Keras averages the loss over the batch where airbench sums it, and
decays weights outside momentum), so nothing here was tuned on the test set and no validation
split is needed. A checkpoint is written after every epoch: if this cell is interrupted, running
the notebook again resumes from the last finished epoch.
""", r"""
## 在全部训练图像上训练最终配方

现在用 {glue:text}`final_n` 张图像、以批大小 {glue:text}`final_bs`、宽度倍数 {glue:text}`final_width`
训练阶梯顶端的配方 {glue:text}`final_epochs` 轮。它的超参数就是 airbench 公布的那些 {cite}`jordan2024airbench`，
只换算成了 Keras 的单位（`recipe.keras_sgd_settings`：Keras 对批内损失取平均而 airbench 求和，且权重衰减不经过动量），
因此这里没有任何东西是在测试集上调出来的，也不需要验证集。每一轮结束都会写一个检查点：如果这个单元被中断，
再次运行笔记本会从最后完成的一轮继续。
""")

code(r"""
final = recipe.strong_recipe(final_batch_size, final_epochs, final_width, 0, mixed_precision)
final_idx = data.stratified_indices(cifar.y_train, final_train_size, seed) if final_train_size < 50_000 else np.arange(50_000)
ckpt_dir = artifacts.artifact("checkpoints") / "final"
result = recipe.train(final, cifar.x_train[final_idx], cifar.y_train[final_idx], cifar.x_test, cifar.y_test,
                      seed=seed, checkpoint_dir=ckpt_dir)
model = result.model
print(f"test accuracy {result.test_accuracy:.2%} (without test-time augmentation {result.test_accuracy_no_tta:.2%})")
print("loss per epoch:", [round(h["loss"], 4) for h in result.history])
""")

code(r"""
minutes = result.train_seconds / 60
met = result.test_accuracy >= 0.85 and minutes <= time_budget_minutes
glue("final_n", f"{len(final_idx):,}", display=False)
glue("final_epochs", f"{final_epochs:g}", display=False)
glue("final_bs", final_batch_size, display=False)
glue("final_width", f"{final_width:g}", display=False)
glue("final_acc", result.test_accuracy, display=False)
glue("final_acc_no_tta", result.test_accuracy_no_tta, display=False)
glue("final_params", f"{result.params:,}", display=False)
glue("final_minutes", minutes, display=False)
glue("final_ips", f"{result.images_per_second:,.0f}", display=False)
glue("final_resumed", result.resumed_from_epoch, display=False)
glue("budget", f"{time_budget_minutes:g}", display=False)
glue("target_en", "met" if met else "missed", display=False)
glue("target_zh", "达到了" if met else "没有达到", display=False)
print(f"{minutes:.1f} min of training, {result.images_per_second:,.0f} images/s; "
      f"85% within {time_budget_minutes:g} min: {'met' if met else 'missed'}")
""", "nbval-ignore-output")

code(r"""
core = fastnet.core_of(model)  # float images in [0, 1] -> logits: what chapter 06 serves
core.save(artifacts.artifact("cifar10_model.keras"))
artifacts.artifact("cifar10_model.json").write_text(json.dumps({
    "notebook": "05_stronger_cnn", "test_accuracy": result.test_accuracy_no_tta,
    "test_accuracy_tta": result.test_accuracy, "test_size": int(len(cifar.y_test)),
    "recipe": result.recipe}, indent=1))
shutil.rmtree(ckpt_dir)  # finished: a later run trains afresh instead of resuming
fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot(range(1, len(result.history) + 1), [h["loss"] for h in result.history], marker="o")
ax.set_xlabel("epoch · 轮次")
ax.set_ylabel("training loss (label-smoothed) · 训练损失")
fig.tight_layout()
glue("final_curve", fig, display=False)
plt.close(fig)
""")

md(r"""
```{glue:figure} final_curve
:name: fig-final-curve-en

Training loss per epoch of the final recipe (with label smoothing its floor is above zero).
```

The final recipe reaches **{glue:text}`final_acc:.2%`** test accuracy
({glue:text}`final_acc_no_tta:.2%` without test-time augmentation) with
{glue:text}`final_params` parameters, after {glue:text}`final_minutes:.1f` minutes of training at
{glue:text}`final_ips` images per second. The course's target for a two-core CPU, at least 85%
within {glue:text}`budget` minutes, was **{glue:text}`target_en`** on this run. The trained network
(without its uint8 rescaling) is saved for chapter 06, which serves it over HTTP.
""", r"""
```{glue:figure} final_curve
:name: fig-final-curve-zh

最终配方每一轮的训练损失（使用了标签平滑，所以下限高于零）。
```

最终配方以 {glue:text}`final_params` 个参数达到 **{glue:text}`final_acc:.2%`** 的测试准确率（不用测试时增强为
{glue:text}`final_acc_no_tta:.2%`），训练用时 {glue:text}`final_minutes:.1f` 分钟，吞吐量为每秒
{glue:text}`final_ips` 张图像。课程为双核 CPU 设定的目标——{glue:text}`budget` 分钟内至少 85%——在这次运行中
**{glue:text}`target_zh`**。训练好的网络（去掉 uint8 缩放层）已保存，供第 06 章通过 HTTP 提供服务。
""")

md(r"""
## The GPU reference run (recorded)

The `gpu` profile runs this notebook with the JAX backend. The figures below were **recorded**, not
re-executed by this build: `benchmarks/time_to_accuracy.py --preset gpu` ran on one
{glue:text}`gpu_name` with Keras {glue:text}`gpu_keras` on JAX {glue:text}`gpu_jax`, and its output
is committed in `results/gpu_runs.json`. The top recipe (width {glue:text}`gpu_width`, batch {glue:text}`gpu_bs`, bfloat16) is
timed as airbench times itself: after one run that compiles, each further run starts from fresh
weights on the already-compiled model; the time covers training (data augmentation included) and
the test-time-augmented evaluation.
""", r"""
## GPU 参考运行（记录值）

`gpu` 参数档用 JAX 后端运行本笔记本。下面的数字是**记录值**，不是本次构建重新执行的结果：
`benchmarks/time_to_accuracy.py --preset gpu` 在一块 {glue:text}`gpu_name` 上以 Keras {glue:text}`gpu_keras`、
JAX {glue:text}`gpu_jax` 运行，输出提交在 `results/gpu_runs.json` 中。顶端配方（宽度 {glue:text}`gpu_width`、批大小 {glue:text}`gpu_bs`、bfloat16）
按 airbench 的方式计时：先运行一次以完成编译，之后每次运行都在已编译的模型上从新的权重开始；计时包括训练
（含数据增强）和带测试时增强的评估。
""")

code(r"""
gpu = json.loads((artifacts.ROOT / "results" / "gpu_runs.json").read_text())
runs = gpu["runs"]
top = []
for key in ("top10", "top12", "top16", "top24"):
    if key in runs and "top_summary" in runs[key]:
        s = runs[key]["top_summary"]
        top.append({"epochs": runs[key]["config"]["epochs"], "runs": s["runs"], "mean accuracy": s["mean_accuracy"],
                    "min accuracy": s["min_accuracy"], "mean seconds": s["mean_seconds"]})
gpu_top = pd.DataFrame(top)
gpu_ladder = pd.DataFrame(runs["ladder"]["rungs"])[["rung", "test_accuracy", "train_seconds", "images_per_second"]]
AIRBENCH_SECONDS = 2.6  # airbench94's time to 94% on one A100 (jordan2024airbench), as quoted in issue 5
best = gpu_top.loc[gpu_top["mean accuracy"].idxmax()]
glue("gpu_name", gpu["gpu"].split(",")[0], display=False)
glue("gpu_keras", runs["top10"]["versions"]["keras"], display=False)
glue("gpu_jax", runs["top10"]["versions"]["jax"], display=False)
glue("gpu_acc10", float(gpu_top.iloc[0]["mean accuracy"]), display=False)
glue("gpu_epochs10", f"{gpu_top.iloc[0]['epochs']:g}", display=False)
glue("gpu_width", f"{runs['top10']['config']['width']:g}", display=False)
glue("gpu_bs", f"{runs['top10']['config']['batch_size']:,}", display=False)
glue("gpu_ladder_epochs", f"{runs['ladder']['config']['epochs']:g}", display=False)
glue("gpu_ladder_n", f"{runs['ladder']['config']['train_size'] or 50_000:,}", display=False)
glue("gpu_sec10", float(gpu_top.iloc[0]["mean seconds"]), display=False)
glue("gpu_runs10", int(gpu_top.iloc[0]["runs"]), display=False)
glue("gpu_best_acc", float(best["mean accuracy"]), display=False)
glue("gpu_best_epochs", f"{best['epochs']:g}", display=False)
glue("gpu_best_sec", float(best["mean seconds"]), display=False)
glue("gpu_ratio10", float(gpu_top.iloc[0]["mean seconds"]) / AIRBENCH_SECONDS, display=False)
glue("gpu_ips", f"{np.median([r['images_per_second'] for r in runs['top10']['repeats'] if r['warm']]):,.0f}", display=False)
glue("gpu_top_table", gpu_top.style.format({"mean accuracy": "{:.2%}", "min accuracy": "{:.2%}", "mean seconds": "{:.2f}",
                                            "epochs": "{:g}"}).hide(axis="index"), display=False)
glue("gpu_ladder_table", gpu_ladder.style.format({"test_accuracy": "{:.2%}", "train_seconds": "{:.1f}",
                                                  "images_per_second": "{:,.0f}"}).hide(axis="index"), display=False)
gpu_top
""")

md(r"""
```{glue:} gpu_top_table
```

At {glue:text}`gpu_epochs10` epochs the recipe reaches {glue:text}`gpu_acc10:.2%` (mean of {glue:text}`gpu_runs10` warm
runs) in {glue:text}`gpu_sec10:.1f` s, {glue:text}`gpu_ratio10:.1f` times airbench's 2.6 s on an
A100, at about {glue:text}`gpu_ips` training images per second. **It does not reach 94%:** the best
recorded mean is {glue:text}`gpu_best_acc:.2%` after {glue:text}`gpu_best_epochs` epochs
({glue:text}`gpu_best_sec:.1f` s). The issue's target — 94% within three times airbench's time —
is therefore not met by this port. Known differences from airbench, each a hypothesis to test
rather than a measured cause: the whitening layer has no trainable bias (airbench trains it for
three epochs); lookahead averages only trainable weights, not the batch-norm statistics; Keras
applies weight decay outside momentum; bfloat16 instead of float16; and Keras' `fit` adds
per-epoch overhead that airbench's hand-written loop does not have.

The ladder on the GPU, every rung at {glue:text}`gpu_ladder_epochs` epochs on {glue:text}`gpu_ladder_n` images (its times include each rung's
compilation). It was recorded before the batchnorm rung's momentum was changed from Keras' default
0.99 to 0.9, so that row shows the stale running statistics of exercise 6, not the fixed rung:

```{glue:} gpu_ladder_table
```
""", r"""
```{glue:} gpu_top_table
```

训练 {glue:text}`gpu_epochs10` 轮时，该配方在 {glue:text}`gpu_sec10:.1f` 秒内达到 {glue:text}`gpu_acc10:.2%`（{glue:text}`gpu_runs10`
次预热后运行的平均），是 airbench 在 A100 上 2.6 秒的 {glue:text}`gpu_ratio10:.1f` 倍，训练吞吐量约为每秒
{glue:text}`gpu_ips` 张图像。**它没有达到 94%：**记录到的最好平均值是 {glue:text}`gpu_best_epochs` 轮后的
{glue:text}`gpu_best_acc:.2%`（{glue:text}`gpu_best_sec:.1f` 秒）。因此本移植没有达到问题中的目标——在 airbench
三倍时间内达到 94%。与 airbench 已知的差异如下，每一条都是待检验的假设，而不是测得的原因：白化层没有可训练的偏置
（airbench 会训练它三轮）；Lookahead 只平均可训练权重，不平均批归一化统计量；Keras 的权重衰减不经过动量；用 bfloat16
而不是 float16；Keras 的 `fit` 每轮有额外开销，而 airbench 手写的训练循环没有。

GPU 上的阶梯，每一级都在 {glue:text}`gpu_ladder_n` 张图像上训练 {glue:text}`gpu_ladder_epochs` 轮（时间包含每一级的编译）。它记录于 batchnorm 一级的动量从 Keras 默认的
0.99 改为 0.9 之前，所以那一行反映的是练习 6 中过时的滑动统计量，而不是修正后的这一级：

```{glue:} gpu_ladder_table
```
""")

md(r"""
## Training that survives interruption

`recipe.train(..., checkpoint_dir=...)` saves the model, its optimizer state (momenta, lookahead
averages, step count) and the run's progress after every epoch, atomically (written to a temporary
file, then renamed). The data order and augmentation of epoch $e$ depend only on the seed and $e$,
so a resumed run sees exactly the batches the uninterrupted run would have seen. Below, a short run
is stopped after its first epoch (as a crash would stop it) and started again; the test suite
does the same with a real `SIGKILL` (`tests/test_recipe.py`).
""", r"""
## 能从中断中恢复的训练

`recipe.train(..., checkpoint_dir=...)` 在每一轮之后以原子方式（先写临时文件再改名）保存模型、优化器状态
（动量、Lookahead 平均值、步数）和运行进度。第 $e$ 轮的数据顺序和增强只取决于种子和 $e$，所以恢复后的运行看到的批次
与不中断时完全相同。下面让一次短训练在第一轮后停下（就像崩溃那样），再重新启动；测试套件用真正的 `SIGKILL` 做同样的事
（`tests/test_recipe.py`）。
""")

code(r"""
demo = recipe.ladder(128, resume_epochs, 0.125, 0)[-1][2]  # the top rung, small and quick
x_demo, y_demo = x_ladder[:resume_train_size], y_ladder[:resume_train_size]
demo_dir = artifacts.artifact("checkpoints") / "resume-demo"
shutil.rmtree(demo_dir, ignore_errors=True)
first = recipe.train(demo, x_demo, y_demo, cifar.x_test, cifar.y_test, seed=seed, checkpoint_dir=demo_dir, stop_after_epoch=1)
resumed = recipe.train(demo, x_demo, y_demo, cifar.x_test, cifar.y_test, seed=seed, checkpoint_dir=demo_dir)
straight = recipe.train(demo, x_demo, y_demo, cifar.x_test, cifar.y_test, seed=seed)
again = recipe.train(demo, x_demo, y_demo, cifar.x_test, cifar.y_test, seed=seed)
shutil.rmtree(demo_dir)
losses = lambda r: [round(h["loss"], 6) for h in r.history]
same_resume = losses(resumed) == losses(straight) and resumed.test_accuracy == straight.test_accuracy
same_seed = losses(again) == losses(straight) and again.test_accuracy == straight.test_accuracy
print("interrupted after epoch", first.history[-1]["epoch"], "; resumed from epoch", resumed.resumed_from_epoch)
print("resumed run  :", losses(resumed), f"{resumed.test_accuracy:.4f}")
print("uninterrupted:", losses(straight), f"{straight.test_accuracy:.4f}")
print("same seed    :", losses(again), f"{again.test_accuracy:.4f}")
glue("resume_from", resumed.resumed_from_epoch, display=False)
glue("resume_epochs", resume_epochs, display=False)
glue("resume_same_en", "identical" if same_resume else "different", display=False)
glue("resume_same_zh", "完全相同" if same_resume else "不同", display=False)
glue("seed_same_en", "identical" if same_seed else "different", display=False)
glue("seed_same_zh", "完全相同" if same_seed else "不同", display=False)
""")

md(r"""
The resumed run started at epoch {glue:text}`resume_from` of {glue:text}`resume_epochs`, and its
per-epoch losses and test accuracy are **{glue:text}`resume_same_en`** to those of the run that was
never interrupted: no epoch was lost or repeated.

## Reproducibility

Two runs with the same seed and parameters gave **{glue:text}`seed_same_en`** losses and
accuracy. What makes that so on a CPU: `env.setup(backend, seed)` calls
`keras.utils.set_random_seed` (Python, NumPy and the backend's generators) and, on TensorFlow,
`enable_op_determinism` (deterministic kernels and reductions); each epoch's order and
augmentation are drawn from `numpy.random.default_rng([seed, epoch])`, independent of how many
epochs ran before or of the thread that prepares them; every epoch has the same whole number of
batches (the remainder is dropped, as in airbench); and the notebook never reads the clock to
decide anything. On a GPU, XLA's autotuning and atomic reductions make results vary in the last
digits between runs, which is why the recorded GPU figures are means over several seeds.
""", r"""
恢复后的运行从第 {glue:text}`resume_from` 轮（共 {glue:text}`resume_epochs` 轮）开始，它每一轮的损失和测试准确率与从未中断的运行
**{glue:text}`resume_same_zh`**：没有任何一轮丢失或重复。

## 可复现性

两次使用相同种子和参数的运行给出的损失和准确率 **{glue:text}`seed_same_zh`**。在 CPU 上做到这一点靠的是：
`env.setup(backend, seed)` 调用 `keras.utils.set_random_seed`（Python、NumPy 和后端的随机数生成器），并在 TensorFlow 上
调用 `enable_op_determinism`（确定性的内核与归约）；每一轮的顺序和增强取自 `numpy.random.default_rng([seed, epoch])`，
与之前跑了多少轮、由哪个线程准备无关；每一轮都有相同的整数个批次（余数丢弃，与 airbench 相同）；笔记本从不根据时钟做决定。
在 GPU 上，XLA 的自动调优和原子归约会让结果在末几位上随运行而变，这就是记录的 GPU 数字取多个种子平均的原因。
""")

md(r"""
## Data-parallel training

Data parallelism copies the model to every device, splits each global batch among them, and
averages the gradients before every update {cite}`goyal2017accurate`. `helpers.parallel` trains
the same model three ways, each in its own process: on one device; with TensorFlow's
`MirroredStrategy` over {glue:text}`par_devices` logical CPU devices (one machine, in-process
all-reduce); and with `MultiWorkerMirroredStrategy` over {glue:text}`par_devices` worker processes
on 127.0.0.1, each with its own `TF_CONFIG` — the same code that runs on separate machines
{cite}`tensorflow2024distributed`. Keras 3's `fit` does not yet run under
`MultiWorkerMirroredStrategy` (keras-team/keras issue 20585), so that mode trains the same Keras
model and optimizer with TensorFlow's documented custom loop (`strategy.run` and
`tf.nn.compute_average_loss`). On JAX the equivalent is `keras.distribution.DataParallel` over
`jax.devices()` {cite}`keras2024distribution` (`python -m helpers.parallel --mode jax-dataparallel`).
""", r"""
## 数据并行训练

数据并行把模型复制到每个设备上，把每个全局批次分给它们，并在每次更新前对梯度取平均 {cite}`goyal2017accurate`。
`helpers.parallel` 用三种方式训练同一个模型，每种都在单独的进程中：单设备；TensorFlow 的 `MirroredStrategy`，跨
{glue:text}`par_devices` 个逻辑 CPU 设备（单机、进程内 all-reduce）；以及 `MultiWorkerMirroredStrategy`，跨 127.0.0.1 上的
{glue:text}`par_devices` 个工作进程，每个进程有自己的 `TF_CONFIG`——与在多台机器上运行的代码完全相同
{cite}`tensorflow2024distributed`。Keras 3 的 `fit` 目前还不能在 `MultiWorkerMirroredStrategy` 下运行
（keras-team/keras 第 20585 号问题），所以该模式用 TensorFlow 文档中的自定义训练循环（`strategy.run` 与
`tf.nn.compute_average_loss`）训练同一个 Keras 模型和优化器。在 JAX 上对应的是基于 `jax.devices()` 的
`keras.distribution.DataParallel` {cite}`keras2024distribution`（`python -m helpers.parallel --mode jax-dataparallel`）。
""")

code(r"""
from helpers import parallel

glue("par_devices", parallel_devices, display=False)
if parallel_devices:
    records = parallel.measure(modes=("single", "mirrored", "multiworker"), devices=parallel_devices,
                               train_size=parallel_train_size, epochs=parallel_epochs, seed=seed)
    par = pd.DataFrame(parallel.relative_table(records))
    speed = dict(zip(par["mode"], par["vs one device"]))
    glue("par_mirrored", float(speed["mirrored"]), display=False)
    glue("par_multi", float(speed["multiworker"]), display=False)
    glue("par_table", par.style.format({"images/s": "{:,.0f}", "vs one device": "{:.2f}", "s/epoch": "{:.2f}",
                                        "final loss": "{:.4f}"}).hide(axis="index"), display=False)
    print(par.to_string(index=False))
else:
    glue("par_mirrored", float("nan"), display=False)
    glue("par_multi", float("nan"), display=False)
    glue("par_table", "data-parallel measurement skipped (parallel_devices=0)", display=False)
""", "nbval-ignore-output")

md(r"""
```{glue:} par_table
```

On this machine the speed-up over one device is {glue:text}`par_mirrored:.2f`× with mirrored
devices and {glue:text}`par_multi:.2f`× with worker processes. On a two-core CPU little can be
gained: a single TensorFlow device already uses both cores, and the replicas add the gradient
all-reduce (and, across processes, traffic on the loopback) on top; on a shared machine these
figures also vary from run to run, so repeat them before reading much into a difference. The same code pays on machines with several GPUs or
several hosts, where each replica brings its own compute.

**To many machines.** Start one worker per host with `TF_CONFIG` listing every worker's
`host:port` and the host's own index; the chief (index 0) writes checkpoints and logs. The global
batch is the per-replica batch times the number of replicas, so the learning rate is usually
scaled with it and warmed up {cite}`goyal2017accurate`; each worker reads its own shard of the
data. On JAX, call `jax.distributed.initialize(coordinator_address, num_processes, process_id)` on
every host, then build a `keras.distribution.DeviceMesh` over all devices and set
`keras.distribution.DataParallel` (or `ModelParallel`, to split a model too large for one device)
{cite}`keras2024distribution`.
""", r"""
```{glue:} par_table
```

在本机上，相对于单设备的加速比：镜像设备为 {glue:text}`par_mirrored:.2f`×，多工作进程为 {glue:text}`par_multi:.2f`×。
在双核 CPU 上收益很小：单个 TensorFlow 设备已经用满两个核，多副本还要额外做梯度 all-reduce（跨进程时还有回环网络通信）；
在共享的机器上这些数字每次运行都会有波动，解读差别之前请重复测量。
同样的代码在有多块 GPU 或多台主机的机器上才有收益，因为每个副本都带来自己的算力。

**扩展到多台机器。** 在每台主机上启动一个工作进程，`TF_CONFIG` 中列出所有工作进程的 `host:port` 和本机的序号；
主进程（序号 0）负责写检查点和日志。全局批大小等于每副本批大小乘以副本数，因此学习率通常随之放大并加预热
{cite}`goyal2017accurate`；每个工作进程读取自己那一份数据。在 JAX 上，先在每台主机上调用
`jax.distributed.initialize(coordinator_address, num_processes, process_id)`，再在所有设备上建立
`keras.distribution.DeviceMesh`，并设置 `keras.distribution.DataParallel`（或 `ModelParallel`，用于切分一台设备放不下的模型）
{cite}`keras2024distribution`。
""")

md(r"""
## Exercises

1. Reorder the ladder: put the fast net first (right after the corrected loss). Does each later
   change still help by the same amount? What does that say about reading an ablation table?
2. The ladder's fast-net rungs use width {glue:text}`ladder_width`. Re-run with `ladder_width=0.5`
   and `ladder_epochs=8`. Which rungs gain most from the larger budget?
3. Test one of the hypotheses for the GPU gap: give the whitening convolution a trainable bias
   (in `helpers/fastnet.py`) and re-run `benchmarks/time_to_accuracy.py --rungs none --repeats 3`.
4. Kill `python -m helpers.recipe --rung tta --epochs 4 --checkpoint-dir /tmp/ck` with Ctrl-C
   after two epochs and start it again. Which epoch does it resume from, and why is no work lost?
5. With data parallelism over 8 GPUs and a per-GPU batch of 128, what is the global batch, and how
   would you set the learning rate if 0.1 worked for a batch of 256?
6. Build the batchnorm rung with Keras' default momentum
   (`fastnet.article_cnn(logits=True, batch_norm=True, bn_momentum=0.99)`), train it as the ladder
   does, and compare its accuracy on the training images in training mode (`model(x, training=True)`)
   and in inference mode. Then lower the momentum until the two agree.

```{dropdown} Solutions
1. The gains are not additive: changes interact. Batch norm, for instance, matters less once the
   fast net (which already has it) is in place, and augmentation matters more for a larger network
   that can overfit. An ablation table answers "what did this change add, given everything above
   it", not "what is this change worth in general".
2. The changes that fight overfitting or need many steps (augmentation, label smoothing, weight
   decay, the schedule) gain most; a short budget understates them.
3. airbench trains the whitening bias for the first three epochs and then freezes it; in Keras a
   separate bias layer (`keras.layers.Add` with a trainable vector, or a `DepthwiseConv2D` of size 1)
   after a bias-free frozen convolution does the same. Compare the mean over seeds, not one run:
   the recorded runs vary by about 0.1 to 0.2 points between seeds.
4. It resumes from the first epoch not yet checkpointed: checkpoints are written after each epoch,
   and the data of epoch $e$ depends only on $(\text{seed}, e)$, so the interrupted epoch is simply
   run again from its start with the same batches.
5. $8 \times 128 = 1024$. By the linear scaling rule {cite}`goyal2017accurate`, $0.1 \times 1024/256 = 0.4$,
   reached after a warm-up of a few epochs.
6. In training mode each batch is normalised with its own statistics, so the two modes differ only
   through the running averages. With momentum 0.99 and a few hundred steps the running variance
   still holds a large share of its starting value 1, far above the true variance of the first
   convolution's outputs, so at inference the activations are shrunk and accuracy collapses towards
   chance, while training-mode accuracy is normal. Momentum 0.9 forgets the start within a few dozen
   steps; a longer run fixes 0.99 too.
```
""", r"""
## 练习

1. 调换阶梯的顺序：把快速网络放在最前面（紧跟在纠正损失之后）。后面每项改动的收益还一样吗？这说明应当如何解读消融表？
2. 阶梯中的快速网络宽度为 {glue:text}`ladder_width`。用 `ladder_width=0.5` 和 `ladder_epochs=8` 重新运行。哪些级别从更大的预算中获益最多？
3. 检验 GPU 差距的一个假设：给白化卷积加一个可训练的偏置（在 `helpers/fastnet.py` 中），再运行
   `benchmarks/time_to_accuracy.py --rungs none --repeats 3`。
4. 运行 `python -m helpers.recipe --rung tta --epochs 4 --checkpoint-dir /tmp/ck`，两轮后按 Ctrl-C 中断，再重新启动。
   它从哪一轮继续？为什么没有损失任何工作？
5. 在 8 块 GPU 上做数据并行、每块 GPU 的批大小为 128，全局批大小是多少？如果批大小 256 时学习率 0.1 效果好，你会怎样设置学习率？
6. 用 Keras 的默认动量构建 batchnorm 一级（`fastnet.article_cnn(logits=True, batch_norm=True, bn_momentum=0.99)`），
   按阶梯的方式训练，比较它在训练图像上训练模式（`model(x, training=True)`）与推理模式下的准确率。然后逐步降低动量，直到两者一致。

```{dropdown} 参考答案
1. 收益不可相加：改动之间会相互作用。例如快速网络本身已带批归一化，放在前面后批归一化的作用就变小；而更大的网络更容易过拟合，
   数据增强的作用反而变大。消融表回答的是“在上面所有改动的基础上，这项改动增加了多少”，而不是“这项改动本身值多少”。
2. 对抗过拟合或需要很多步才见效的改动（数据增强、标签平滑、权重衰减、学习率调度）获益最多；短预算会低估它们。
3. airbench 在前三轮训练白化偏置，之后冻结；在 Keras 中，可在无偏置的冻结卷积之后加一个单独的偏置层
   （带可训练向量的 `keras.layers.Add`，或尺寸为 1 的 `DepthwiseConv2D`）实现同样效果。请比较多个种子的平均值而不是单次运行：
   记录的运行在不同种子之间相差约 0.1 到 0.2 个百分点。
4. 它从第一个尚未写入检查点的轮次继续：检查点在每一轮之后写入，而第 $e$ 轮的数据只取决于 $(\text{seed}, e)$，
   所以被中断的那一轮只是用相同的批次从头再跑一遍。
5. $8 \times 128 = 1024$。按线性缩放规则 {cite}`goyal2017accurate`，学习率为 $0.1 \times 1024/256 = 0.4$，并在最初几轮内逐步预热到该值。
6. 训练模式下每个批次用自己的统计量归一化，所以两种模式只在滑动平均上不同。动量 0.99、只有几百步时，滑动方差仍保留起始值 1
   的很大一部分，远大于第一个卷积输出的真实方差，于是推理时激活值被压缩，准确率跌向随机水平，而训练模式的准确率正常。
   动量 0.9 在几十步内就忘掉起始值；训练更久也能让 0.99 恢复正常。
```
""")

md(r"""
## References

airbench {cite}`jordan2024airbench`; batch normalization {cite}`ioffe2015batch`; label smoothing
{cite}`szegedy2016rethinking`; one-cycle schedules {cite}`smith2019super`; weight decay
{cite}`loshchilov2019decoupled`; lookahead {cite}`zhang2019lookahead`; mixed precision
{cite}`micikevicius2018mixed`; large-batch data parallelism {cite}`goyal2017accurate`;
TensorFlow's distribution strategies {cite}`tensorflow2024distributed` and Keras 3's distribution
API {cite}`keras2024distribution`. Full entries are on the [references page](../references.md).
""", r"""
## 参考文献

airbench {cite}`jordan2024airbench`；批归一化 {cite}`ioffe2015batch`；标签平滑 {cite}`szegedy2016rethinking`；
单周期调度 {cite}`smith2019super`；权重衰减 {cite}`loshchilov2019decoupled`；Lookahead {cite}`zhang2019lookahead`；
混合精度 {cite}`micikevicius2018mixed`；大批量数据并行 {cite}`goyal2017accurate`；TensorFlow 的分布式策略
{cite}`tensorflow2024distributed` 与 Keras 3 的分布式 API {cite}`keras2024distribution`。完整条目见[参考文献页](../references.md)。
""")

nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import colab_cell  # noqa: E402

colab_cell.apply(nb)  # the Colab bootstrap cell, before the parameters cell
out = Path(__file__).resolve().parent.parent / "notebooks" / "05_stronger_cnn.ipynb"
nbf.write(nb, out)
print("wrote", out)
