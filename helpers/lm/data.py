"""The 全唐诗 (Complete Tang Poems) from the npm package ``chinese-poetry@2.0.1``: fetch, verify, clean, split.

The cache, ``$MAAS_CACHE_DIR/chinese-poetry-2.0.1/``, holds the package's files byte for byte, each checked
against the size and SHA-256 of ``poetry_files.json`` (fetched and verified by :mod:`helpers.fetch`, as CIFAR-10
is). The doubtful records the package lists in ``quantangshi/error/`` are dropped, then records without text,
exact and near-duplicates, so that no poem is in two splits. The poems stay in traditional characters
(simplifying is many-to-one). Splits are a seeded permutation of poems (90/5/5%); the form filter
(:func:`regulated`) comes after, so a poem's split never depends on it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import fetch

#: size and SHA-256 of every file used, by path in the tarball's ``package/dist/``
FILES: dict[str, tuple[int, str]] = {
    name: tuple(entry) for name, entry in json.loads(Path(__file__).with_name("poetry_files.json").read_text()).items()
}
NPM_PACKAGE = ("chinese-poetry", "2.0.1")
NPM_INTEGRITY = "sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/EQ3lfJ//25K8p3uHNg=="
POEM_FILES = tuple(name for name in FILES if not name.startswith("quantangshi/error/"))
ERROR_FILES = tuple(name for name in FILES if name.startswith("quantangshi/error/"))
SPLITS = ("train", "validation", "test")
FIX_HINT = (
    "Run `make data` (or `python -m helpers.data`) on a machine that reaches the npm registry (it "
    "fetches and verifies chinese-poetry@2.0.1), or copy a verified cache into {dir}."
)
LINE_ENDS = "，。！？；"
_LINE_SPLIT = re.compile(f"[{LINE_ENDS}]")
_NOT_WORD = re.compile(r"\W+")  # punctuation and spaces (a Chinese character is a word character)


class PoetryDataError(RuntimeError):
    """The poems are missing or damaged and could not be (re)fetched."""


def data_dir() -> Path:
    return fetch.cache_root() / "chinese-poetry-2.0.1"


def check(directory: Path | str | None = None) -> dict[str, str]:
    """Map each damaged or missing file to its problem (empty when all are intact)."""
    directory = Path(directory or data_dir())
    return {
        name: problem
        for name, (size, digest) in FILES.items()
        if (problem := fetch.file_problem(directory / name, size, "sha256", digest))
    }


def _from_npm(directory: Path, names: list[str]) -> None:
    """Extract ``names`` from the verified npm tarball into ``directory``."""
    member, expected = lambda name: f"package/dist/{name}", lambda name: ("sha256", FILES[name][1], FILES[name][0])
    fetch.extract_npm(directory, names, NPM_PACKAGE, NPM_INTEGRITY, member, expected)


_FETCHERS = {"npm": _from_npm}


def fetch_poetry(directory: Path | str | None = None, sources: tuple[str, ...] = ("npm",)) -> Path:
    """Make sure every file in :data:`FILES` is cached and intact (:func:`helpers.fetch.ensure_verified`)."""
    kw = {"label": "chinese-poetry", "error": PoetryDataError, "fix_hint": FIX_HINT}
    return fetch.ensure_verified(directory or data_dir(), check, _FETCHERS, sources, **kw)


@dataclass(frozen=True)
class Poem:
    """One poem: its id in the package, author, title and text (its couplets joined, punctuation kept)."""

    id: str
    author: str
    title: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The cleaned poems split by poem, and what cleaning removed."""

    train: list[Poem]
    validation: list[Poem]
    test: list[Poem]
    records: int  # Tang poems in the main files
    doubtful_listed: int  # records in the package's error/ list
    doubtful_dropped: int  # of those, records that were in the main files
    duplicates_dropped: int
    seed: int
    empty_dropped: int = 0  # records without text
    near_duplicates_dropped: int = 0  # see near_duplicates

    def split(self, name: str) -> list[Poem]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose from {SPLITS}")
        return getattr(self, name)

    def facts(self) -> dict:
        """Counts for the text: records, dropped, kept, per split, characters."""
        poems = [p for s in SPLITS for p in self.split(s)]
        counts = ("records", "doubtful_listed", "doubtful_dropped", "duplicates_dropped", "near_duplicates_dropped")
        return {
            **{k: getattr(self, k) for k in (*counts, "empty_dropped")},
            "poems": len(poems),
            **{f"{s}_poems": len(self.split(s)) for s in SPLITS},
            "characters": sum(len(p.text) for p in poems),
            "regulated_share": len(regulated(poems)) / len(poems),
        }


def _read_records(directory: Path, names) -> list[dict]:
    return [r for name in names for r in json.loads((directory / name).read_text(encoding="utf-8"))]


def load_corpus(seed: int = 0, directory: Path | str | None = None) -> Corpus:
    """Fetch (if needed), clean and split the Tang poems (5% validation, 5% test)."""
    directory = fetch_poetry(directory)
    main = _read_records(directory, POEM_FILES)
    doubtful = {r["id"] for r in _read_records(directory, ERROR_FILES)}
    kept, seen, dropped = [], set(), Counter()
    for r in main:
        text = "".join(r.get("paragraphs") or []).strip()
        why = "doubtful" if r["id"] in doubtful else "empty" if not text else "duplicate" if text in seen else None
        if why:
            dropped[why] += 1
            continue
        seen.add(text)
        kept.append(Poem(r["id"], r.get("author", ""), r.get("title", ""), text))
    repeats = near_duplicates([p.text for p in kept])
    kept = [p for p, repeat in zip(kept, repeats) if not repeat]
    order = np.random.default_rng(seed).permutation(len(kept))
    n = round(0.05 * len(kept))  # validation and test poems each
    splits = [[kept[i] for i in sorted(idx)] for idx in (order[2 * n :], order[:n], order[n : 2 * n])]  # file order
    counts = (len(main), len(doubtful), dropped["doubtful"], dropped["duplicate"], seed, dropped["empty"], sum(repeats))
    return Corpus(*splits, *counts)


def near_duplicates(texts: list[str], share: float = 0.5) -> list[bool]:
    """For each text, whether it repeats a text kept before it (a repeat is not kept): the same characters once
    punctuation is removed, or at least ``share`` of its distinct lines shared with one kept text."""
    skeletons, holders, out = set(), defaultdict(list), []
    for text in texts:
        parts = set(_NOT_WORD.split(text)) - {""}
        skeleton = _NOT_WORD.sub("", text)
        shared = Counter(k for part in parts for k in holders.get(part, ()))
        repeat = skeleton in skeletons or bool(shared) and max(shared.values()) >= share * len(parts)
        out.append(repeat)
        if not repeat:
            skeletons.add(skeleton)
            for part in parts:
                holders[part].append(len(skeletons))
    return out


def poem_form(text: str) -> tuple[int, int] | None:
    """``(lines, characters per line)`` of a regulated poem (4 or 8 lines, all of 5 or all of 7 characters, the
    text ending a line), else None."""
    text = text.strip()
    parts = [line for line in _LINE_SPLIT.split(text) if line]  # its lines (句)
    sizes = {len(p) for p in parts}
    if text.endswith(tuple(LINE_ENDS)) and len(parts) in (4, 8) and len(sizes) == 1 and sizes <= {5, 7}:
        return len(parts), sizes.pop()
    return None


def regulated(poems: list[Poem]) -> list[Poem]:
    """The poems of a regulated form (see :func:`poem_form`): the chapter trains on these."""
    return [p for p in poems if poem_form(p.text) is not None]


def form_score(texts: list[str]) -> float:
    """The share of ``texts`` that are regulated poems (:func:`poem_form` is not None)."""
    if not texts:
        raise ValueError("form_score needs at least one text")
    return sum(poem_form(t) is not None for t in texts) / len(texts)


def format_poem(text: str) -> str:
    """The poem with one couplet a line (a line break after each 。！？), for display."""
    return re.sub(r"([。！？])(?=.)", r"\1\n", text.strip())


class CharTokenizer:
    """Characters to ids and back, with four special tokens: ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``; the
    vocabulary is every training character seen ``min_count`` times, most frequent first (ties by code point)."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.itos = list(self.SPECIALS) + self.chars
        self.stoi = {c: i for i, c in enumerate(self.itos) if i >= len(self.SPECIALS)}

    @classmethod
    def fit(cls, texts, min_count: int = 5) -> CharTokenizer:
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts = Counter(c for t in texts for c in t)
        ranked = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(ranked)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        ids = [self.stoi.get(c, self.UNK) for c in text]
        return ([self.BOS] if bos else []) + ids + ([self.EOS] if eos else [])

    def decode(self, ids) -> str:
        """Text of ``ids``: special tokens are dropped, ``<unk>`` becomes □."""
        return "".join("□" if i == self.UNK else self.itos[i] for i in map(int, ids) if i >= self.UNK)

    def token_text(self, i: int) -> str:
        """The text one generated token adds: its character, □ for ``<unk>``, '' for the others."""
        return self.decode([i])

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi))

    def to_json(self) -> str:
        return json.dumps({"specials": list(self.SPECIALS), "chars": "".join(self.chars)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, payload: str) -> CharTokenizer:
        data = json.loads(payload)
        if data.get("specials") != list(cls.SPECIALS):
            raise ValueError("this tokenizer file has other special tokens; it was written by another version")
        return cls(list(data["chars"]))


@dataclass(frozen=True)
class Packed:
    """Poems in rows of at most ``seq_len + 1`` token ids (inputs ``[:, :-1]``, targets ``[:, 1:]``)."""

    rows: np.ndarray  # int32 (n_rows, seq_len + 1)
    poems: int  # poems packed
    dropped: int  # poems longer than a row, left out

    @property
    def inputs(self) -> np.ndarray:
        return self.rows[:, :-1]

    @property
    def targets(self) -> np.ndarray:
        return self.rows[:, 1:]

    @property
    def mask(self) -> np.ndarray:
        """1.0 where a target counts: a character or ``<eos>`` (not padding, not the next poem's ``<bos>``)."""
        t = self.targets
        return ((t != CharTokenizer.PAD) & (t != CharTokenizer.BOS)).astype("float32")

    @property
    def tokens(self) -> int:
        """Targets that count (see :attr:`mask`)."""
        return int(self.mask.sum())


def pack(poems: list[Poem], tokenizer: CharTokenizer, seq_len: int, seed: int = 0, one_per_row: bool = False) -> Packed:
    """Whole poems (``<bos>`` text ``<eos>``), shuffled with ``seed``, packed greedily into rows, never split
    (one longer than a row is left out). ``one_per_row``: each poem alone in a row as wide as the longest, as
    held-out poems are scored (each from its own ``<bos>``, as the service writes them)."""
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    width, order = seq_len + 1, np.random.default_rng(seed).permutation(len(poems))
    encoded = [tokenizer.encode(poems[i].text, bos=True, eos=True) for i in order]
    kept, rows = [ids for ids in encoded if len(ids) <= width], []
    for ids in kept:
        if rows and not one_per_row and len(rows[-1]) + len(ids) <= width:
            rows[-1] += ids
        else:
            rows.append(ids)
    array = np.asarray([r + [CharTokenizer.PAD] * (width - len(r)) for r in rows], dtype=np.int32).reshape(-1, width)
    if one_per_row and len(array):
        array = array[:, : int((array != CharTokenizer.PAD).sum(axis=1).max())]
    return Packed(array, len(kept), len(encoded) - len(kept))


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.lm.data [--dir DIR]``: fetch and verify the poems, print the corpus' facts."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m helpers.lm.data", description=main.__doc__)
    parser.add_argument("--dir", type=Path, default=None, help=f"cache directory (default {data_dir()})")
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # what the fetch reports
    try:
        print(json.dumps(load_corpus(directory=parser.parse_args(argv).dir).facts(), indent=1))
    except PoetryDataError as exc:
        raise SystemExit(f"error: {exc}") from None  # to stderr, status 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
