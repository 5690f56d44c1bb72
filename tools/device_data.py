"""Carry CIFAR-10 to a machine that cannot download it, in chunks small enough to travel.

The lent GPU machine reaches no network and takes at most 64 MiB of untracked files per call, so
the six verified binary batches (176 MB) go over in xz-compressed chunks, one call per chunk,
each call staging its chunk into a folder that stays on the machine while it is warm:

    python tools/device_data.py pack .devicedata            # here: .devicedata/1/, 2/, ... (git-ignored)
    # on the device, one call per chunk (carry: [".devicedata/1"], then 2, ...):
    python tools/device_data.py stage .devicedata /root/cifar
    # then train with MAAS_CACHE_DIR=/root/cifar: the files are checked against their MD5s on load

``stage`` unpacks every chunk folder it finds, verifies each file it knows (size and MD5) and
names what is still missing, so a session can see how many calls remain.
"""

from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import data  # noqa: E402

CHUNK_LIMIT = 60 * 2**20  # bytes of compressed files per chunk: under the device's 64 MiB


def pack(
    out_dir: Path, source_dir: Path | None = None, limit: int = CHUNK_LIMIT, names=tuple(data.BIN_MD5)
) -> list[Path]:
    """Compress each file into ``out_dir/<k>/<name>.xz``, starting a new chunk ``k`` when ``limit`` would be passed."""
    source_dir = Path(source_dir or data.data_dir())
    chunks: list[Path] = []
    size = limit + 1
    for name in names:
        path = source_dir / name
        if name in data.BIN_MD5 and (problem := data.file_problem(path, data.BIN_MD5[name])):
            raise data.DataError(f"{path}: {problem}. " + data.FIX_HINT.format(dir=source_dir))
        packed = lzma.compress(path.read_bytes(), preset=6)
        if size + len(packed) > limit:
            chunks.append(Path(out_dir) / str(len(chunks) + 1))
            chunks[-1].mkdir(parents=True, exist_ok=True)
            size = 0
        (chunks[-1] / f"{name}.xz").write_bytes(packed)
        size += len(packed)
    return chunks


def stage(chunks_dir: Path, cache_dir: Path, names=tuple(data.BIN_MD5)) -> list[str]:
    """Unpack every ``chunks_dir/*/<name>.xz`` into ``cache_dir/cifar-10-batches-bin``; return the names still missing."""
    dest = Path(cache_dir) / "cifar-10-batches-bin"
    dest.mkdir(parents=True, exist_ok=True)
    for packed in sorted(Path(chunks_dir).glob("*/*.xz")):
        target = dest / packed.name[:-3]
        target.write_bytes(lzma.decompress(packed.read_bytes()))
        md5 = data.BIN_MD5.get(target.name)
        if md5 and (problem := data.file_problem(target, md5)):
            target.unlink()
            raise data.DataError(f"{packed}: {problem} after unpacking; pack it again")
    return [name for name in names if not (dest / name).exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="compress the verified batches into chunk folders")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--limit-mib", type=float, default=CHUNK_LIMIT / 2**20)
    s = commands.add_parser("stage", help="unpack the chunk folders present into CACHE_DIR/cifar-10-batches-bin")
    s.add_argument("chunks_dir", type=Path)
    s.add_argument("cache_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            for chunk in pack(args.out_dir, limit=int(args.limit_mib * 2**20)):
                mib = sum(f.stat().st_size for f in chunk.iterdir()) / 2**20
                print(f"{chunk}: {', '.join(sorted(f.name for f in chunk.iterdir()))} ({mib:.1f} MiB)")
        else:
            missing = stage(args.chunks_dir, args.cache_dir)
            print(
                "still missing:", ", ".join(missing) if missing else "nothing: all six files are in place and verified"
            )
    except data.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
