"""The book's execution-status page, written at build time from the runner's ``summary.json``.

One bilingual page (``book/status.md``, generated, not committed): for each notebook of the last
run its status, wall time and parameters (those a profile or ``-p`` set are marked), and the
profile, hardware and package versions of the run. :func:`helpers.book.bilingual.publish` writes it
beside the language pages, so the page always describes the notebooks the book shows.

    python -m helpers.book.status_page build/executed/cpu book     # writes book/status.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAGE_NAME = "status.md"
STATUS_LABELS = {"ok": "✅ ok · 成功", "failed": "❌ failed · 失败"}


def _cell(text: object) -> str:
    """Text safe inside a MyST table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    text = _cell(text).replace("`", "'")
    return f"`{text}`"


def _parameters(record: dict) -> str:
    overrides = record.get("overrides") or {}
    parts = []
    for name, value in (record.get("parameters") or {}).items():
        item = _code(f"{name}={value!r}")
        parts.append(f"**{item}**" if name in overrides else item)
    return ", ".join(parts) or "—"


def _chapter(stem: str, book_dir: Path) -> str:
    """A link to the chapter's two pages when the book builds them, else the notebook's name."""
    toc_path = book_dir.parent / "_toc.yml"
    pages = [f"{book_dir.name}/{lang}/{stem}" for lang in ("en", "zh")]
    if toc_path.exists():
        import yaml

        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
        listed = {c.get("file") for part in toc.get("parts", []) for c in part.get("chapters", [])}
        built = all(page in listed for page in pages)
    else:
        built = all((book_dir / lang / f"{stem}.ipynb").exists() for lang in ("en", "zh"))
    if built:
        return f"{{doc}}`{stem} <en/{stem}>` ({{doc}}`中文 <zh/{stem}>`)"
    return _code(stem)


def render(summary: dict | None, book_dir: Path) -> str:
    lines = ["(build-status)=", "# Execution status · 执行状态", ""]
    if not summary:
        lines += ["No run summary was found: this site was built without `python -m helpers.book.run`.",
                  "", "未找到运行摘要：本网站构建时没有运行 `python -m helpers.book.run`。", ""]
        return "\n".join(lines)
    profile = summary.get("profile", "?")
    lines += [
        f"Every number and figure in this edition comes from the notebooks as last executed, with the "
        f"**{_code(profile)}** parameter profile, on the machine described below. Parameters in **bold** "
        f"were set by the profile or on the command line; the others are the notebook's defaults. "
        f"Re-run with `python -m helpers.book.run --profile {profile}` (see the README).",
        "",
        f"本版中的每一个数字和图表都来自最近一次执行的笔记本，使用 **{_code(profile)}** 参数档，运行在下文所述的机器上。"
        f"**粗体**参数由参数档或命令行设定，其余为笔记本的默认值。可用 `python -m helpers.book.run --profile {profile}` 重新运行（见 README）。",
        "",
        f"- Started · 开始: {summary.get('started', '—')}",
        f"- Finished · 结束: {summary.get('finished', '—')}",
        "",
        "## Notebooks · 笔记本",
        "",
        "| Notebook · 笔记本 | Status · 状态 | Wall time · 耗时 | Parameters · 参数 |",
        "|---|---|---|---|",
    ]
    from helpers.book.run import notebook_paths

    order = {chapter: i for i, chapter in enumerate(notebook_paths())}
    records = (summary.get("notebooks") or {}).items()
    for stem, record in sorted(records, key=lambda item: (order.get(item[0], len(order)), item[0])):
        status = STATUS_LABELS.get(record.get("status"), _cell(record.get("status", "?")))
        if record.get("error"):
            status += f" ({_cell(record['error'])[:120]})"
        seconds = record.get("seconds")
        wall = f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "—"
        lines.append(f"| {_chapter(stem, book_dir)} | {status} | {wall} | {_parameters(record)} |")
    machine = summary.get("machine") or {}
    versions = machine.get("versions") or {}
    lines += [
        "",
        "## Hardware and software · 硬件与软件",
        "",
        "| Item · 项目 | Value · 值 |",
        "|---|---|",
        f"| CPU · 处理器 | {_cell(machine.get('cpu', '—'))} |",
        f"| CPU cores · CPU 核数 | {_cell(machine.get('cpu_cores', '—'))} |",
        f"| GPUs · 图形处理器 | {_cell(', '.join(machine.get('gpus') or []) or 'none · 无')} |",
        f"| Platform · 平台 | {_cell(machine.get('hostname_platform', '—'))} |",
        f"| Versions · 版本 | {', '.join(_code(f'{k} {v}') for k, v in versions.items() if v) or '—'} |",
        "",
    ]
    return "\n".join(lines)


def write(executed_dir: Path | str, book_dir: Path | str) -> Path:
    """Write ``book_dir/status.md`` from ``executed_dir/summary.json``; return its path."""
    executed_dir, book_dir = Path(executed_dir), Path(book_dir)
    summary_path = executed_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None
    target = book_dir / PAGE_NAME
    target.write_text(render(summary, book_dir), encoding="utf-8")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the book's execution-status page.")
    parser.add_argument("executed_dir", type=Path)
    parser.add_argument("book_dir", type=Path)
    args = parser.parse_args(argv)
    print(f"wrote {write(args.executed_dir, args.book_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
