"""What makes a model "large": a cited table of landmark models, growth rates, and estimates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import words

TABLE = Path(__file__).with_name("tables") / "landmark_models.csv"
COLUMNS = tuple(
    "model year domain architecture parameters training_flops training_data data_unit source bib_key note".split()
)

BYTES_PER_VALUE = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
PRECISIONS = tuple(BYTES_PER_VALUE)

#: bytes per parameter while training with Adam: (weights, gradients, fp32 master copy, Adam moments)
#: mixed precision as in ZeRO (Rajbhandari et al., 2020): 2 + 2 + 4 + 8 = 16 bytes; bf16: updated in place, as Gopher
TRAINING_RECIPES = {
    "fp32": (4.0, 4.0, 0.0, 8.0),
    "mixed-fp16": (2.0, 2.0, 4.0, 8.0),
    "mixed-bf16": (2.0, 2.0, 4.0, 8.0),
    "bf16": (2.0, 2.0, 0.0, 8.0),
}
RECIPES = tuple(TRAINING_RECIPES)
#: the training recipes, as a reader reads them (in Chinese: the vocabulary's ``large_models`` section)
RECIPE_NAMES = dict(zip(RECIPES, ("fp32", "mixed precision, fp16", "mixed precision, bf16", "bf16 throughout")))

GB = 1e9
TIB = 2.0**40


def bytes_per_value(precision: str) -> float:
    """Bytes one number takes at ``precision`` (fp32, fp16, bf16, fp8, int8 or int4)."""
    try:
        return BYTES_PER_VALUE[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}") from None


def _positive(**values) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def load_models(path: Path | str = TABLE) -> pd.DataFrame:
    """The landmark-model table, checked: one row per model, sorted by year then parameters."""
    table = pd.read_csv(
        path,
        dtype={"model": str, "source": str, "bib_key": str, "note": str},
        keep_default_na=False,
        na_values={c: [""] for c in ("parameters", "training_flops", "training_data")},
    )
    if tuple(table.columns) != COLUMNS:
        raise ValueError(f"{path}: expected columns {COLUMNS}, found {tuple(table.columns)}")
    for column in ("parameters", "training_flops", "training_data"):
        table[column] = pd.to_numeric(table[column], errors="raise").astype(float)
    table["year"] = table["year"].astype(int)
    problems = []
    for i, row in table.iterrows():
        rules = {
            "every row needs a source and a bib_key": row["source"].strip() and row["bib_key"].strip(),
            "parameters must be published and positive": row["parameters"] > 0,
            "training_flops must be empty or positive": np.isnan(row["training_flops"]) or row["training_flops"] > 0,
            "training_data must be empty or positive": np.isnan(row["training_data"]) or row["training_data"] > 0,
            "training_data needs a data_unit": np.isnan(row["training_data"]) or row["data_unit"],
        }
        problems += [f"row {i + 2} ({row['model']}): {rule}" for rule, ok in rules.items() if not ok]
    if table["model"].duplicated().any():
        problems.append(f"duplicate models: {sorted(table['model'][table['model'].duplicated()])}")
    if problems:
        raise ValueError(f"{path}:\n  " + "\n  ".join(problems))
    return table.sort_values(["year", "parameters"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class DoublingFit:
    """A straight line through log2(value) against year: ``log2 v = intercept + slope * year``."""

    slope: float  # doublings per year
    intercept: float
    slope_stderr: float  # standard error of the slope (nan with two points)
    r2: float
    n: int
    first_year: int
    last_year: int

    @property
    def doubling_months(self) -> float:
        return 12.0 / self.slope

    @property
    def factor_per_year(self) -> float:
        return 2.0**self.slope

    def doubling_months_range(self) -> tuple[float, float]:
        """Doubling time (months) at slope ± one standard error (shorter, longer)."""
        high, low = self.slope + self.slope_stderr, self.slope - self.slope_stderr
        return 12.0 / high, (12.0 / low if low > 0 else math.inf)

    def predict(self, years) -> np.ndarray:
        return 2.0 ** (self.intercept + self.slope * np.asarray(years, dtype=float))


def fit_doubling(years, values) -> DoublingFit:
    """Least-squares fit of log2(values) on years; values must be positive and years not all equal."""
    x, y = np.asarray(years, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("years and values must be one-dimensional and of the same length")
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError(f"need at least two different years to fit a doubling time, got {x.size} value(s)")
    if np.any(y <= 0):
        raise ValueError("values must be positive to take their logarithm")
    log2y = np.log2(y)
    slope, intercept = np.polyfit(x, log2y, 1)
    residuals = log2y - (intercept + slope * x)
    total = np.sum((log2y - log2y.mean()) ** 2)
    r2 = 1.0 - np.sum(residuals**2) / total if total > 0 else 1.0
    stderr = math.sqrt(np.sum(residuals**2) / (x.size - 2) / np.sum((x - x.mean()) ** 2)) if x.size > 2 else math.nan
    if slope <= 0:
        raise ValueError(f"the values do not grow over time (slope {slope:.3g} doublings per year)")
    return DoublingFit(float(slope), float(intercept), float(stderr), float(r2), x.size, int(x.min()), int(x.max()))


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute of a dense transformer, ``6·N·D`` FLOPs (Kaplan et al., 2020)."""
    _positive(n_params=n_params, n_tokens=n_tokens)
    return 6.0 * float(n_params) * float(n_tokens)


def forward_flops(model) -> float:
    """FLOPs of one forward pass of a Keras model, counted from its Conv2D and Dense layers."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            macs += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            n_in, n_out = layer.kernel.shape
            macs += n_in * n_out
    return 2.0 * float(macs)


def training_memory(n_params: float, recipe: str) -> dict[str, float]:
    """Bytes for weights, gradients, master weights and Adam state (activations not included)."""
    _positive(n_params=n_params)
    if recipe not in TRAINING_RECIPES:
        raise ValueError(f"unknown training recipe {recipe!r}; choose one of {list(RECIPES)}")
    parts = ("weights", "gradients", "master weights", "Adam moments")
    memory = {part: float(n_params) * b for part, b in zip(parts, TRAINING_RECIPES[recipe])}
    return {**memory, "total": sum(memory.values())}


def training_days(flops: float, n_accelerators: int, peak_flops: float, utilization: float) -> float:
    """Days of training at ``utilization`` (0..1] of ``n_accelerators`` × ``peak_flops`` FLOP/s."""
    _positive(flops=flops, n_accelerators=n_accelerators, peak_flops=peak_flops, utilization=utilization)
    if utilization > 1:
        raise ValueError(f"utilization is a share of peak and cannot exceed 1, got {utilization}")
    return flops / (n_accelerators * peak_flops * utilization) / 86_400


def weight_bytes(n_params: float, precision: str) -> float:
    _positive(n_params=n_params)
    return float(n_params) * bytes_per_value(precision)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, tokens: int, precision: str, batch: int = 1) -> float:
    """Attention key/value cache: a key and a value vector per layer, KV head and token held."""
    _positive(n_layers=n_layers, n_kv_heads=n_kv_heads, head_dim=head_dim, tokens=tokens, batch=batch)
    return 2.0 * n_layers * n_kv_heads * head_dim * tokens * batch * bytes_per_value(precision)


def accelerators_needed(total_bytes: float, memory_per_accelerator: float) -> int:
    """Fewest accelerators whose memory together holds ``total_bytes`` (no room for anything else)."""
    _positive(total_bytes=total_bytes, memory_per_accelerator=memory_per_accelerator)
    return max(1, math.ceil(total_bytes / memory_per_accelerator))


@dataclass(frozen=True)
class ServingEstimate:
    """Memory and time for one batch of requests on the fewest accelerators that hold it."""

    weights: float  # bytes
    kv_cache: float  # bytes
    accelerators: int
    prefill_seconds: float  # processing the prompts
    seconds_per_token: float  # each further token
    request_seconds: float  # prompt plus all output tokens
    decode_bound: str  # "memory" or "compute"

    @property
    def tokens_per_second(self) -> float:
        return 1.0 / self.seconds_per_token


def serving_estimate(
    n_params: float,
    precision: str,
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    prompt_tokens: int,
    output_tokens: int,
    batch: int,
    memory_per_accelerator: float,
    peak_flops: float,
    bandwidth: float,
    utilization: float,
) -> ServingEstimate:
    """A first-order estimate for serving ``batch`` requests together."""
    _positive(prompt_tokens=prompt_tokens, output_tokens=output_tokens, peak_flops=peak_flops, bandwidth=bandwidth)
    _positive(utilization=utilization)
    weights = weight_bytes(n_params, precision)
    context = prompt_tokens + output_tokens
    kv = kv_cache_bytes(n_layers, n_kv_heads, head_dim, context, precision, batch)
    k = accelerators_needed(weights + kv, memory_per_accelerator)
    prefill = 2.0 * n_params * prompt_tokens * batch / (k * peak_flops * utilization)
    memory_time = (weights + kv) / (k * bandwidth)
    compute_time = 2.0 * n_params * batch / (k * peak_flops * utilization)
    per_token = max(memory_time, compute_time)
    bound = "memory" if memory_time >= compute_time else "compute"
    return ServingEstimate(weights, kv, k, prefill, per_token, prefill + output_tokens * per_token, bound)


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def sci(x: float, digits: int = 3) -> str:
    """``x`` in scientific notation for prose in any language: ``3.14 × 10²³``."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return str(x)
    exponent = math.floor(math.log10(abs(x)))
    mantissa = round(x / 10**exponent, digits - 1)
    if abs(mantissa) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    text = f"{mantissa:.{digits - 1}f}".rstrip("0").rstrip(".") if digits > 1 else f"{mantissa:.0f}"
    return f"{text} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def short(n: float, lang: str = "en") -> str:
    """A count with a unit suffix: ``60k``, ``1.54B``, ``1.57T``; in Chinese (``lang="zh"``) with
    万, 亿 and 万亿, whole numbers from 100 up: ``6 万``, ``15.4 亿``, ``1.57 万亿`` (empty for a missing value)."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    en, zh = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")), ((1e12, " 万亿"), (1e8, " 亿"), (1e4, " 万"))
    size, suffix = next(((s, x) for s, x in words.pick(lang, en, zh) if abs(n) >= s), (1, ""))
    scaled = n / size
    return f"{scaled:.0f}{suffix}" if lang == "zh" and abs(scaled) >= 100 else f"{scaled:.3g}{suffix}"


def landmark_table(table: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """The landmark models as a reader reads them, in ``lang``: counts by :func:`short`, compute by
    :func:`sci`, "—" where the paper publishes nothing (the chapter cites the sources in the rows' order)."""
    w = words.of(lang, "large_models")
    data = [
        w(f"{{n}} {unit}").format(n=short(n, lang)) if not np.isnan(n) else "—"
        for n, unit in zip(table["training_data"], table["data_unit"])
    ]
    return pd.DataFrame(
        {
            w("year"): table["year"].to_numpy(),
            w("parameters"): [short(n, lang) for n in table["parameters"]],
            w("training compute (FLOPs)"): [sci(v) if not np.isnan(v) else "—" for v in table["training_flops"]],
            w("training data"): data,
            w("architecture"): [w(a) for a in table["architecture"]],
        },
        index=pd.Index(table["model"].to_numpy(), name=w("model")),
    )


def plot_growth(table: pd.DataFrame, fits: dict, reference: dict, label: tuple[str, ...] = (), lang: str = "en"):
    """Two log-scale panels: parameters and training compute against year, with fitted trends."""
    from helpers.plots import plt  # pyplot in the book's figure style

    w = words.of(lang, "large_models")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    first, last = int(table["year"].min()), int(table["year"].max())
    for ax, column in zip(axes, ("parameters", "training_flops")):
        rows = table[table[column].notna()]
        for domain, marker, color in (("vision", "s", "C1"), ("language", "o", "C0")):
            for moe, face in ((False, color), (True, "none")):
                part = rows[(rows["domain"] == domain) & ((rows["architecture"] == "mixture of experts") == moe)]
                name = w("{} (mixture of experts)").format(w(domain)) if moe else w(domain)
                if not part.empty:
                    ax.scatter(
                        part["year"], part[column], marker=marker, s=28, facecolors=face, edgecolors=color, label=name
                    )
        for _, row in rows[rows["model"].isin(label)].iterrows():
            where = dict(textcoords="offset points", xytext=(4, -3), fontsize=7)
            ax.annotate(row["model"], (row["year"], row[column]), **where)
        if (fit := fits.get(column)) is not None:
            years = np.linspace(fit.first_year, fit.last_year, 50)
            trend = w("fit {first}–{last}: doubles every {months:.1f} months")
            trend = trend.format(first=fit.first_year, last=fit.last_year, months=fit.doubling_months)
            ax.plot(years, fit.predict(years), "k--", lw=1, label=trend)
        if column in reference:
            ax.axhline(reference[column], color="C3", lw=1)
            where = dict(textcoords="offset points", xytext=(0, 4), fontsize=8, color="C3")
            ax.annotate(w("the article's CIFAR-10 CNN"), (first, reference[column]), **where)
        ylabel = w({"parameters": "parameters", "training_flops": "training compute (FLOPs)"}[column])
        ax.set(yscale="log", xlim=(first - 2, last + 5), xlabel=w("year of publication"), ylabel=ylabel)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
