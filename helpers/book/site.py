"""Build the course's two websites, one per language, from one run of the notebooks.

    python -m helpers.book.site --profile cpu     # build/executed/cpu -> _build/html/{en,zh}/ and _build/html/index.html

Two Jupyter Book projects, one ``language`` each, built with warnings as errors; each page links to its twin.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import yaml

from helpers.book import bilingual, glossary
from helpers.paths import BOOK, BUILD, EXECUTED, ROOT
from helpers.topics import course

LANGS = bilingual.LANGS
#: Sphinx's ``language`` for each site (the theme's translations are looked up under it)
SPHINX_LANGUAGE = {"en": "en", "zh": "zh_CN"}
#: ``<html lang>`` (BCP 47) of each site's pages
HTML_LANG = {"en": "en", "zh": "zh-CN"}
#: each language's PDF, in ``pdf/`` beside the two sites (printed by helpers.book.pdf)
PDF_NAME = "maas-course-{lang}.pdf"
TITLES = {"en": "AI Large Models as a Service", "zh": "人工智能大模型即服务"}
SEARCH_TEXT = {"en": "Search this book", "zh": "搜索本书"}
#: myst-nb's words on a collapsed cell's toggle ({type} is its part: source, outputs)
CELL_TOGGLE = {"en": ("Show code cell {type}", "Hide code cell {type}"), "zh": ("显示代码", "隐藏代码")}
#: the landing page's words: what the book is, the link to each site, the link to its PDF
LANDING = {
    "en": (
        "An executable course and report: every number was computed by a notebook you can re-run.",
        "Read the English edition",
        "The whole book as a PDF",
    ),
    "zh": ("一门可执行的课程与报告：每一个数字都由可以重新运行的笔记本计算得出。", "阅读中文版", "全书 PDF"),
}
#: where each language's site is assembled before Jupyter Book builds it
SITES = BUILD / "site"


class SiteError(RuntimeError):
    """A site did not build; the message holds the end of Jupyter Book's output."""


def caption(text: str, lang: str) -> str:
    """``"Chapters · 章节"`` -> ``"Chapters"`` (en) or ``"章节"`` (zh)."""
    parts = [p.strip() for p in text.split("·")]
    return parts[LANGS.index(lang)] if len(parts) == len(LANGS) else text


def load_yaml(path: Path | str) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def language_toc(lang: str) -> dict:
    """The table of contents of one site, from the repository's ``_toc.yml``."""
    toc = load_yaml(ROOT / "_toc.yml")
    return {**toc, "parts": [{**part, "caption": caption(part["caption"], lang)} for part in toc["parts"]]}


def chapters(root: Path = ROOT) -> list[str]:
    """Chapter ids in order: the files of the table of contents' numbered part."""
    return [
        c["file"] for part in load_yaml(root / "_toc.yml")["parts"] if part.get("numbered") for c in part["chapters"]
    ]


def language_config(lang: str) -> dict:
    """``_config.yml`` with the site's title and Sphinx language."""
    config = load_yaml(ROOT / "_config.yml")
    config["title"] = TITLES[lang]
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["language"] = SPHINX_LANGUAGE[lang]
    sphinx.setdefault("html_theme_options", {})["search_bar_text"] = SEARCH_TEXT[lang]
    sphinx["nb_code_prompt_show"], sphinx["nb_code_prompt_hide"] = CELL_TOGGLE[lang]
    return config


def assemble(lang: str, executed: Path, dest: Path) -> Path:
    """Write one language's Jupyter Book project into ``dest`` (emptied first): its hand-written pages, the
    glossary and status pages, one page per executed chapter, the bibliography, static files, config and toc."""
    names = chapters()
    if dest.exists():
        shutil.rmtree(dest)
    # not `_static`: Jupyter Book would add every .js file in a root `_static` to every page (MathJax twice)
    shutil.copytree(BOOK / "_static", dest / "static")
    shutil.copytree(BOOK / "_templates", dest / "_templates")
    if not (dest / "static" / "mathjax" / "tex-chtml.js").exists():
        raise SiteError("MathJax is missing from book/_static: run `make assets` first")
    shutil.copy(BOOK / "references.bib", dest / "references.bib")
    for page in sorted((BOOK / lang).glob("*.md")):
        shutil.copy(page, dest / page.name)
    (dest / "glossary.md").write_text(glossary.page(lang), encoding="utf-8")
    write_status(executed, dest / "status.md", lang, names)
    if missing := [chapter for chapter in names if not (executed / f"{chapter}.ipynb").exists()]:
        raise SiteError(f"no executed notebook for {missing} in {executed}: run `python -m helpers.book.run` first")
    for chapter in names:
        nb = nbformat.read(executed / f"{chapter}.ipynb", as_version=4)
        nbformat.write(bilingual.split(nb, lang, page=True, name=chapter), dest / f"{chapter}.ipynb")
    for name, data in (("_config.yml", language_config(lang)), ("_toc.yml", language_toc(lang))):
        (dest / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


def jupyter_book_build(project: Path, *extra: str) -> None:
    """``jupyter-book build`` of one site's project, warnings as errors; the PDF's build reuses its environment."""
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([jb, "build", project, "-W", "-n", "--keep-going", *extra], capture_output=True, text=True)
    if result.returncode != 0:
        tail = result.stdout[-5000:] + result.stderr[-3000:]
        raise SiteError(
            f"jupyter-book build {project.name} {' '.join(extra)} failed (warnings count as errors):\n{tail}"
        )


def build(executed: Path | str, out: Path | str = ROOT / "_build" / "html", work: Path | str = SITES) -> Path:
    """Build both sites into ``out/en`` and ``out/zh`` and the landing page ``out/index.html``."""
    executed, out, work = Path(executed), Path(out), Path(work)
    projects = {lang: assemble(lang, executed, work / lang) for lang in LANGS}
    with ThreadPoolExecutor(max_workers=len(LANGS)) as pool:  # two Sphinx processes, side by side
        list(pool.map(jupyter_book_build, projects.values()))
    if out.exists():
        shutil.rmtree(out)
    for lang, project in projects.items():  # (copytree makes ``out``)
        shutil.copytree(project / "_build" / "html", out / lang)
    write_landing(out)
    return out


def write_landing(out: Path) -> None:
    """``out/index.html``: both sites offered side by side, each with its list of chapters."""
    sections = []
    for lang in LANGS:
        blurb, enter, pdf = (html.escape(words) for words in LANDING[lang])
        titles = {c: html.escape(course.title(c, lang, number=False, full=True)) for c in chapters()}
        items = "\n".join(f'      <li><a href="{lang}/{c}.html">{title}</a></li>' for c, title in titles.items())
        sections.append(f"""  <section lang="{HTML_LANG[lang]}" aria-labelledby="title-{lang}">
    <h2 id="title-{lang}">{html.escape(TITLES[lang])}</h2>
    <p>{blurb}</p>
    <p class="enter"><a href="{lang}/index.html">{enter}</a> ·
      <a href="pdf/{PDF_NAME.format(lang=lang)}">{pdf}</a></p>
    <ol>
{items}
    </ol>
  </section>""")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLES["en"]} · {TITLES["zh"]}</title>
<style>
  body {{ font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 0; color: #1a1a1a; background: #fff; }}
  main {{ max-width: 64rem; margin: 0 auto; padding: 2rem 1rem; }}
  .editions {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 2rem; }}
  a {{ color: #0b57a4; }}
  .enter a {{ font-weight: 600; }}
</style>
</head>
<body>
<main>
<h1>{TITLES["en"]} · <span lang="zh-CN">{TITLES["zh"]}</span></h1>
<div class="editions">
{chr(10).join(sections)}
</div>
</main>
</body>
</html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")


#: the execution-status page's words: key -> (English, Chinese)
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


def status_page(summary: dict | None, lang: str, chapters: list[str]) -> str:
    """The execution-status page in ``lang``: each chapter's status, time and parameters (those set by a
    profile or ``-p`` in bold), and the run's profile, hardware and versions; ``chapters``: the site's, in order."""
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


def write_status(executed_dir: Path | str, target: Path | str, lang: str, chapters: list[str]) -> Path:
    """Write the page for ``executed_dir/summary.json`` to ``target``; return it."""
    summary_path = Path(executed_dir) / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None
    target = Path(target)
    target.write_text(status_page(summary, lang, chapters), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book.site", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--profile", required=True, help="which executed run to publish (build/executed/<profile>)")
    add("--out", type=Path, default=ROOT / "_build" / "html", help="where the sites go (default: _build/html)")
    add("--work", type=Path, default=SITES, help="where their projects are assembled (default: build/site)")
    args = parser.parse_args(argv)
    try:
        out = build(EXECUTED / args.profile, args.out, work=args.work)
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shown = os.path.relpath(out, ROOT)
    print(f"sites: {shown}/en/index.html and {shown}/zh/index.html (landing page {shown}/index.html)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
