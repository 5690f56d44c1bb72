"""Tests for the Tang-poem data (helpers.lm.data): verified fetch and cache, cleaning, splits, form, tokenizer, packing.

No test touches the network. Tests that need the real poems skip when they are not cached
(``python -m helpers.lm.data`` caches them). Temporary caches hold symbolic links to the real files;
a damaged file is always written as a new file after its link was removed, so the real cache is
never modified.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import real_cache, serve_npm_tarball

from helpers import fetch
from helpers.lm import data
from helpers.lm.data import CharTokenizer, Poem


@pytest.fixture(scope="module")
def real_dir() -> Path:
    """The real poem cache, found with the environment the tests were started with."""
    return real_cache(data.data_dir, data.FILES, "the Tang poems", "run `python -m helpers.lm.data` to cache them")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Point the cache at a temporary directory; the npm source fails unless a test replaces it."""
    monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MAAS_NO_PROGRESS", "1")

    def no_npm(*args, **kwargs):
        raise fetch.FetchError("npm disabled in tests")

    monkeypatch.setattr(fetch, "npm_tarball", no_npm)
    return tmp_path / "cache" / "chinese-poetry-2.0.1"


@pytest.fixture
def linked_cache(offline, real_dir) -> Path:
    """A temporary cache whose files link to the intact real ones."""
    for name in data.FILES:
        (offline / name).parent.mkdir(parents=True, exist_ok=True)
        (offline / name).symlink_to(real_dir / name)
    return offline


def _replace(path: Path, payload: bytes) -> None:
    path.unlink()
    path.write_bytes(payload)


@pytest.mark.unit
def test_intact_cache_is_used_without_fetching(linked_cache, monkeypatch):
    monkeypatch.setitem(data._FETCHERS, "npm", lambda d, n: pytest.fail("an intact cache was fetched again"))
    assert data.check(linked_cache) == {}
    assert data.fetch_poetry(linked_cache) == linked_cache


@pytest.mark.unit
def test_truncated_and_corrupted_files_are_deleted_and_refetched(linked_cache, real_dir, monkeypatch):
    truncated, corrupted = data.POEM_FILES[3], data.ERROR_FILES[1]
    payload = (real_dir / truncated).read_bytes()
    _replace(linked_cache / truncated, payload[: len(payload) // 2])
    damaged = bytearray((real_dir / corrupted).read_bytes())
    damaged[100] ^= 0xFF
    _replace(linked_cache / corrupted, bytes(damaged))

    problems = data.check(linked_cache)
    assert set(problems) == {truncated, corrupted}
    assert problems[truncated].startswith("truncated")
    assert problems[corrupted].startswith("corrupted")

    calls = []

    def copy_fetcher(directory, names):
        calls.append((list(names), [n for n in names if (directory / n).exists()]))
        for name in names:
            shutil.copyfile(real_dir / name, directory / name)

    monkeypatch.setitem(data._FETCHERS, "npm", copy_fetcher)
    data.fetch_poetry(linked_cache)
    assert calls == [(sorted([truncated, corrupted]), [])]  # damaged files were deleted before the fetch
    assert data.check(linked_cache) == {}


@pytest.mark.unit
def test_failed_refetch_names_the_problem_and_the_fix(offline):
    with pytest.raises(data.PoetryDataError) as info:
        data.fetch_poetry(offline)
    message = str(info.value)
    assert "missing" in message and "npm disabled in tests" in message
    assert "make data" in message


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.mark.unit
def test_npm_source_extracts_and_verifies_each_file(offline, real_dir, tmp_path, monkeypatch):
    names = [data.POEM_FILES[0], data.ERROR_FILES[0]]
    tgz = _tarball(tmp_path / "fake.tgz", {n: (real_dir / n).read_bytes() for n in names})
    seen = []
    serve_npm_tarball(monkeypatch, tgz, seen)
    offline.mkdir(parents=True)
    data._from_npm(offline, names)
    assert seen == [(*data.NPM_PACKAGE, data.NPM_INTEGRITY)]
    for n in names:
        assert (offline / n).read_bytes() == (real_dir / n).read_bytes()

    bad = bytearray((real_dir / names[0]).read_bytes())
    bad[10] ^= 0xFF
    serve_npm_tarball(monkeypatch, _tarball(tmp_path / "tampered.tgz", {names[0]: bytes(bad)}), seen)
    (offline / names[0]).unlink()
    with pytest.raises(fetch.FetchError, match="was not kept"):
        data._from_npm(offline, [names[0]])
    assert not (offline / names[0]).exists()
    assert not [p for p in offline.rglob("*") if p.name.endswith(".part")]


@pytest.fixture(scope="module")
def corpus(real_dir):
    return data.load_corpus(seed=0, directory=real_dir)


@pytest.mark.unit
def test_corpus_drops_the_flagged_records_and_splits_by_poem(corpus):
    facts = corpus.facts()
    assert facts["records"] == 57_607
    assert facts["doubtful_listed"] == 6_685 and facts["doubtful_dropped"] == 6_680
    dropped = ("doubtful_dropped", "duplicates_dropped", "near_duplicates_dropped", "empty_dropped")
    assert facts["poems"] == facts["records"] - sum(facts[k] for k in dropped)
    assert (
        facts["near_duplicates_dropped"] == 2_223 and facts["poems"] == 47_993
    )  # measured once; the package is pinned
    ids = [set(p.id for p in corpus.split(s)) for s in data.SPLITS]
    assert sum(len(i) for i in ids) == facts["poems"]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    texts = [set(p.text for p in corpus.split(s)) for s in data.SPLITS]
    assert not (texts[0] & texts[2]), "a poem's text is in both training and test"
    assert abs(facts["validation_poems"] - 0.05 * facts["poems"]) <= 1


@pytest.mark.unit
def test_split_is_fixed_by_the_seed(corpus, real_dir):
    again = data.load_corpus(seed=0, directory=real_dir)
    other = data.load_corpus(seed=1, directory=real_dir)
    assert [p.id for p in again.test] == [p.id for p in corpus.test]
    assert [p.id for p in other.test] != [p.id for p in corpus.test]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, form",
    [
        ("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。", (4, 5)),
        ("朝辭白帝彩雲間，千里江陵一日還。兩岸猿聲啼不住，輕舟已過萬重山。", (4, 7)),
        ("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。" * 2, (8, 5)),
        ("床前明月光，疑是地上霜。舉頭望明月，", None),  # three lines
        ("床前明月光，疑是地上霜。舉頭望明月，低頭思故。", None),  # uneven
        ("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉", None),  # unfinished line
        ("春眠不覺曉處處聞啼鳥，夜來風雨聲，花落知多少。", None),
        ("", None),
    ],
)
def test_poem_form(text, form):
    assert data.poem_form(text) == form


@pytest.mark.unit
def test_form_score_and_display():
    good = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"
    assert data.form_score([good, good[:-3] + "。", good]) == pytest.approx(2 / 3)
    assert data.format_poem(good) == "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"
    with pytest.raises(ValueError):
        data.form_score([])


@pytest.mark.unit
def test_tokenizer_vocabulary_unknowns_and_round_trip():
    tok = CharTokenizer.fit(["春風春風春", "風月"], min_count=2)
    assert tok.chars == ["春", "風"]  # 月 seen once: below min_count
    assert tok.vocab_size == 4 + 2
    ids = tok.encode("春月風", bos=True, eos=True)
    assert ids == [CharTokenizer.BOS, 4, CharTokenizer.UNK, 5, CharTokenizer.EOS]
    assert tok.decode(ids) == "春□風"
    assert tok.unknown("春月花月") == ["月", "花"]
    again = CharTokenizer.from_json(tok.to_json())
    assert again.itos == tok.itos
    with pytest.raises(ValueError, match="min_count"):
        CharTokenizer.fit(["a"], min_count=0)


@pytest.mark.unit
def test_packing_keeps_poems_whole_and_masks_padding_and_bos():
    tok = CharTokenizer.fit(["春風花月夜，"], min_count=1)
    poems = [Poem(str(i), "", "", t) for i, t in enumerate(["春風，", "花月夜，", "春" * 30, "風，"])]
    packed = data.pack(poems, tok, seq_len=9, seed=0)
    assert packed.dropped == 1 and packed.poems == 3
    assert packed.rows.shape[1] == 10
    assert np.all(packed.rows[:, 0] == CharTokenizer.BOS)
    flat = [i for row in packed.rows for i in row if i != CharTokenizer.PAD]
    assert flat.count(CharTokenizer.BOS) == 3 and flat.count(CharTokenizer.EOS) == 3
    # counted targets: every character and <eos>, never padding or a <bos>
    assert packed.tokens == sum(len(p.text) + 1 for p in poems if len(p.text) + 2 <= 10)
    assert not np.any(packed.mask[packed.targets == CharTokenizer.BOS])


@pytest.mark.unit
def test_near_duplicates_are_found_before_the_split():
    texts = [
        "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。",
        "床前明月光疑是地上霜舉頭望明月低頭思故鄉",  # the same without punctuation
        "床前看月光，疑是地上霜。舉頭望山月，低頭思故鄉。",  # a variant: 2 of its 4 lines are the first poem's
        "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。",  # another poem
        "舉頭望明月，低頭思故鄉。",  # an excerpt: both lines are the first poem's
        "春眠不覺曉，江上一孤舟。獨釣寒江雪，千山鳥飛絕。",  # 1 line of 4 shared: a poem of its own
        "床前明月光，花落知多少，江上一孤舟。",  # a third of its lines in each of three poems: its own
    ]
    assert data.near_duplicates(texts) == [False, True, True, False, True, False, False]
    assert data.near_duplicates(texts, share=0.75) == [False, True, False, False, True, False, False]


@pytest.mark.unit
def test_held_out_poems_get_a_row_each():
    tok = CharTokenizer.fit(["春風花月夜，"], min_count=1)
    poems = [Poem(str(i), "", "", t) for i, t in enumerate(["春風，", "花月夜，", "春" * 30, "風，"])]
    rows = data.pack(poems, tok, seq_len=9, seed=0, one_per_row=True)
    assert rows.poems == 3 and rows.dropped == 1 and rows.rows.shape == (3, 6)  # as wide as the longest poem kept
    assert np.all(rows.rows[:, 0] == CharTokenizer.BOS) and np.all((rows.rows == CharTokenizer.EOS).sum(axis=1) == 1)
    assert rows.tokens == (3 + 1) + (4 + 1) + (2 + 1)  # characters and <eos>
