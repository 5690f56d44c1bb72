"""Each site's execution-status page, written by :func:`helpers.book.site.assemble` from the runner's
``summary.json``: each chapter's status, time and parameters (those set by a profile or ``-p`` in bold),
and the run's profile, hardware and versions."""

from __future__ import annotations

import json
from pathlib import Path

#: the page's words: key -> (English, Chinese)
WORDS = {
    "title": ("Execution status", "执行状态"),
    "none": (
        "No run summary was found: this site was built without `python -m helpers.book.run`.",
        "未找到运行摘要：本网站构建时没有运行 `python -m helpers.book.run`。",
    ),
    "intro": (
        "Every number and figure in this edition comes from the chapters as last executed, with the **{profile}** "
        "parameter profile, on the machine described below. Parameters in **bold** were set by the profile "
        "or on the command line; the others are the chapter's defaults. Re-run with `python -m helpers.book.run "
        "--profile {name}` (see the README).",
        "本版中的每一个数字和图表都来自最近一次执行的各章，使用 **{profile}** 参数配置，运行在下文所述的机器上。"
        "**粗体**参数由参数配置或命令行设定，其余为该章的默认值。"
        "可用 `python -m helpers.book.run --profile {name}` 重新运行（见 README）。",
    ),
    "started": ("Started: ", "开始："),
    "finished": ("Finished: ", "结束："),
    "chapters": ("Chapters", "各章"),
    "header": ("| Chapter | Status | Wall time | Parameters |", "| 章 | 状态 | 耗时 | 参数 |"),
    "ok": ("ran", "已运行"),
    "failed": ("failed", "失败"),
    "machine": ("Hardware and software", "硬件与软件"),
    "item": ("| Item | Value |", "| 项目 | 值 |"),
    "no_gpu": ("none", "无"),
}
#: the machine table's rows: the runner's key, and its name in each language
MACHINE = {
    "cpu": ("Processor", "处理器"),
    "cpu_cores": ("CPU cores", "CPU 核数"),
    "gpus": ("GPUs", "GPU"),
    "hostname_platform": ("Platform", "平台"),
    "versions": ("Versions", "版本"),
}
SECONDS = {"en": "{:.1f} s", "zh": "{:.1f} 秒"}


def _cell(text: object) -> str:
    """Text safe inside a MyST table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    return f"`{_cell(text).replace('`', chr(39))}`"


def _parameters(record: dict) -> str:
    overrides = record.get("overrides") or {}
    parts = [
        f"**{_code(f'{k}={v!r}')}**" if k in overrides else _code(f"{k}={v!r}")
        for k, v in (record.get("parameters") or {}).items()
    ]
    return ", ".join(parts) or "—"


def render(summary: dict | None, lang: str, chapters: list[str]) -> str:
    """The page in ``lang``; ``chapters`` (ids, in order) are the chapters the site has pages for."""
    w = {key: words[lang == "zh"] for key, words in WORDS.items()}
    lines = ["(build-status)=", f"# {w['title']}", ""]
    if not summary:
        return "\n".join([*lines, w["none"], ""])
    profile = summary.get("profile", "?")
    # (the command's profile is plain text inside its own inline code: a code span in a code span breaks)
    lines += [
        w["intro"].format(profile=_code(profile), name=_cell(profile).replace("`", "'")),
        "",
        f"- {w['started']}{summary.get('started', '—')}",
        f"- {w['finished']}{summary.get('finished', '—')}",
        "",
        f"## {w['chapters']}",
        "",
        w["header"],
        "|---|---|---|---|",
    ]
    records = summary.get("notebooks") or {}
    for chapter in [c for c in chapters if c in records] + sorted(set(records) - set(chapters)):
        record = records[chapter]
        status = w.get(record.get("status"), _cell(record.get("status", "?")))
        if record.get("error"):
            status += f" ({_cell(record['error'])[:120]})"
        seconds = record.get("seconds")
        wall = SECONDS[lang].format(seconds) if isinstance(seconds, (int, float)) else "—"
        link = f"{{doc}}`{chapter}`" if chapter in chapters else _code(chapter)
        lines.append(f"| {link} | {status} | {wall} | {_parameters(record)} |")
    machine = {"cpu": "—", "cpu_cores": "—", "hostname_platform": "—", **(summary.get("machine") or {})}
    machine["gpus"] = ", ".join(machine.get("gpus") or []) or w["no_gpu"]
    versions = ", ".join(_code(f"{k} {v}") for k, v in (machine.get("versions") or {}).items() if v) or "—"
    lines += ["", f"## {w['machine']}", "", w["item"], "|---|---|"]
    lines += [
        f"| {words[lang == 'zh']} | {_cell(machine[key])} |" for key, words in MACHINE.items() if key != "versions"
    ]
    return "\n".join([*lines, f"| {MACHINE['versions'][lang == 'zh']} | {versions} |", ""])


def write(executed_dir: Path | str, target: Path | str, lang: str, chapters: list[str]) -> Path:
    """Write the page for ``executed_dir/summary.json`` to ``target``; return it."""
    summary_path = Path(executed_dir) / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None
    target = Path(target)
    target.write_text(render(summary, lang, chapters), encoding="utf-8")
    return target
