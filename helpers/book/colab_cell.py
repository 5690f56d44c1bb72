"""The Colab bootstrap cell before every generated notebook's parameters cell: in Colab it clones the repository
(``repository`` in ``_config.yml``), installs what Colab lacks and moves into ``notebooks/``; elsewhere it does nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import yaml

from helpers import show
from helpers.paths import ROOT

TAG = "colab-bootstrap"
#: what the notebooks import that Colab may not ship (Keras, TensorFlow, pandas, pydantic... it
#: does); pip leaves those already installed alone
COLAB_PACKAGES = ("myst-nb", "fastapi", "uvicorn", "httpx")

#: the cell's comments in each edition's language (None: the bilingual notebook papermill runs)
WORDS = {
    "en": {
        "colab": "Google Colab only: fetch and install this course when it is missing (does nothing elsewhere).",
        "lang": "results are shown in this edition's language",
        "glue": "the numbers in the text appear once the cells that compute them have run",
    },
    "zh": {
        "colab": "仅在 Google Colab 中：缺少本课程时获取并安装它（在其他环境中什么也不做）。",
        "lang": "结果以本版的语言显示",
        "glue": "正文中的数字在计算它们的单元运行之后显示",
    },
}

TEMPLATE = """\
{edition}# {colab}
import sys

if "google.colab" in sys.modules:
    import importlib.util
    import os
    import subprocess

    if importlib.util.find_spec("helpers") is None:
        if not os.path.isdir("/content/maas-course"):
            subprocess.run(["git", "clone", "--depth", "1", "--branch", {branch},
                            {url}, "/content/maas-course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", {packages}], check=True)
        sys.path.insert(0, "/content/maas-course")
        os.chdir({folder})"""


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """The public repository's URL and branch, from ``_config.yml``."""
    repo = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("repository") or {}
    url = str(repo.get("url") or "").rstrip("/")
    if not url.startswith("https://"):
        raise ValueError(f"{config.name}: repository.url must be the public https URL of the repository, got {url!r}")
    return url, str(repo.get("branch") or "main")


def cell_source(config: Path = ROOT / "_config.yml", lang: str | None = None) -> str:
    """The cell's code; ``lang``: for the readers' edition in ``notebooks/<lang>/``."""
    url, branch = repository(config)
    words = WORDS[lang or "en"]
    source = TEMPLATE.format(
        url=json.dumps(url + ".git"),
        branch=json.dumps(branch),
        packages=", ".join(json.dumps(p) for p in COLAB_PACKAGES),
        folder=json.dumps("/content/maas-course/notebooks" + (f"/{lang}" if lang else "")),
        edition=f"import os\n\nos.environ[{json.dumps(show.ENV)}] = {json.dumps(lang)}  # {words['lang']}\n\n"
        if lang
        else "",
        colab=words["colab"],
    )
    return source + (f"\n\nfrom helpers.book.glue import glued  # noqa: E402,F401 - {words['glue']}" if lang else "")


def is_current(nb, source: str | None = None) -> bool:
    """True when the notebook's first code cell is the current bootstrap cell."""
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    source = source if source is not None else cell_source()
    return (
        cell is not None
        and cell.source == source
        and TAG in cell.metadata.get("tags", [])
        and not cell.get("outputs")
        and not cell.get("execution_count")
    )


def apply(nb, source: str | None = None) -> bool:
    """Put the current cell before the first other code cell, replacing an older one; return True if ``nb`` changed."""
    source = source if source is not None else cell_source()
    if is_current(nb, source) and sum(TAG in c.metadata.get("tags", []) for c in nb.cells) == 1:
        return False
    nb.cells = [c for c in nb.cells if TAG not in c.metadata.get("tags", [])]
    index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(index, nbformat.v4.new_code_cell(source, metadata={"tags": [TAG, "remove-cell"]}))
    return True
