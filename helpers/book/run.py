"""Execute the course's notebooks with papermill, by parameter profile.

    python -m helpers.book.run                      # every notebook, default profile (gpu if a GPU is visible, else cpu)
    python -m helpers.book.run --profile ci         # seconds per notebook
    python -m helpers.book.run --only cifar10_cnn -p epochs=20 -p learning_rate=3e-4
    python -m helpers.book.run --list               # notebooks, their parameters and the profiles

Executed copies go to ``build/executed/<profile>/`` with ``summary.json`` (parameters, machine, times, glued
values). Every parameter is checked before the first kernel starts; a failing cell stops the run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from helpers.artifacts import ENV_VAR
from helpers.book import params as params_mod
from helpers.paths import EXECUTED, NOTEBOOKS, PROFILES, ROOT


class RunError(RuntimeError):
    """A bad profile, notebook name or parameter; or a notebook that failed."""


def _nvidia_smi(*args: str) -> str:
    """What ``nvidia-smi *args`` prints ("" without a working nvidia-smi); imports no framework."""
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):  # none installed, or a broken one
        return ""
    return out.stdout if out.returncode == 0 else ""


def default_profile() -> str:
    return "gpu" if "GPU" in _nvidia_smi("-L") else "cpu"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load_profile(name: str) -> dict:
    path = PROFILES / f"{name}.yaml"
    if not path.exists():
        raise RunError(
            f"unknown profile {name!r}; choose one of {available_profiles()} (files in {PROFILES.relative_to(ROOT)}/)"
        )
    profile = yaml.safe_load(path.read_text()) or {}
    if unknown := set(profile) - {"description", "defaults", "notebooks"}:
        raise RunError(f"{path.name}: unknown keys {sorted(unknown)}; expected description, defaults, notebooks")
    return profile


def chapter_id(path: Path | str) -> str:
    """A chapter's name everywhere: its file name without the number (``05_cifar10_cnn.ipynb`` -> ``cifar10_cnn``)."""
    return re.sub(r"^\d+_", "", Path(path).stem)


def notebook_paths(directory: Path = NOTEBOOKS) -> dict[str, Path]:
    """Every chapter's generated notebook by :func:`chapter_id`, in chapter order."""
    return {chapter_id(p): p for p in sorted(Path(directory).glob("*.ipynb"))}


def notebook_defaults(path: Path) -> dict:
    """The values in a notebook's ``parameters`` cell, as Python objects."""
    import papermill

    return {name: ast.literal_eval(spec["default"]) for name, spec in papermill.inspect_notebook(str(path)).items()}


def parse_override(text: str) -> tuple[str, object]:
    """``name=value`` with the value read as YAML (``3``, ``1e-3``, ``true``, ``jax``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise RunError(f"-p expects name=value, got {text!r}")
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(raw)  # YAML 1.1 reads "1e-3" as a string
    return name.strip(), value


def _unknown(what: str, name: str, choices) -> RunError:
    hint = difflib.get_close_matches(name, choices, n=1)
    return RunError(f"{what}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; choices: {list(choices)}")


@dataclass
class Plan:
    """One chapter to run: ``parameters``, those the profile or ``-p`` sets (``overrides``: the ``-p`` ones, shown)."""

    name: str
    source: Path
    output: Path
    parameters: dict
    defaults: dict
    overrides: dict


def plan(
    profile_name: str,
    only: list[str] | None,
    overrides: list[tuple[str, object]],
    output_dir: Path | None = None,
    notebooks_dir: Path = NOTEBOOKS,
) -> list[Plan]:
    """Resolve notebooks and parameters, and validate everything, before anything runs."""
    profile = load_profile(profile_name)
    paths = notebook_paths(notebooks_dir)
    selected = [] if only else list(paths)
    for name in only or []:
        matches = [stem for stem in paths if stem == name] or [stem for stem in paths if name in stem]
        if not matches:
            raise _unknown(f"no notebook matches {name!r}", name, paths)
        selected += [m for m in matches if m not in selected]
    out_dir = Path(output_dir or EXECUTED / profile_name)
    plans = []
    for stem in selected:
        defaults = notebook_defaults(paths[stem])
        nb_profile = (profile.get("notebooks") or {}).get(stem) or {}
        if wrong := [key for key in nb_profile if key not in defaults]:
            raise RunError(
                f"profile {profile_name!r} sets {wrong[0]!r} for {stem}, which has no such parameter; "
                f"its parameters: {sorted(defaults)}"
            )
        cli = {key: value for key, value in overrides if key in defaults}
        shared = {k: v for k, v in (profile.get("defaults") or {}).items() if k in defaults}
        chosen = {**shared, **nb_profile, **cli}
        params_mod.validate(stem, {**defaults, **chosen}, tuple(defaults))
        plans.append(Plan(stem, paths[stem], out_dir / f"{stem}.ipynb", chosen, defaults, cli))
    known = {k for p in plans for k in p.defaults}
    for key in [key for key, _ in overrides if key not in known]:
        raise _unknown(f"parameter {key!r} belongs to none of the selected notebooks", key, sorted(known))
    return plans


def machine() -> dict:
    """Hardware and versions, gathered without importing a deep-learning framework."""
    from helpers import env

    gpus = [line.strip() for line in _nvidia_smi("--query-gpu=name", "--format=csv,noheader").splitlines()]
    return {
        "hostname_platform": platform.platform(),
        "cpu": env.cpu_name(),
        "cpu_cores": env.cpu_cores(),
        "gpus": [gpu for gpu in gpus if gpu],
        "versions": env.versions(
            ("python", "numpy", "keras", "tensorflow", "jax", "torch", "papermill", "jupyter-book", "myst-nb", "nbval")
        ),
    }


def glued_values(notebook_path: Path) -> dict:
    """Every value a notebook glued (myst-nb ``glue``), as its plain-text representation."""
    values = {}
    for cell in json.loads(notebook_path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if name := output.get("metadata", {}).get("scrapbook", {}).get("name"):
                text = next((v for k, v in output.get("data", {}).items() if k.endswith("text/plain")), None)
                values[name] = "".join(text) if isinstance(text, list) else text
    return values


def fingerprint(p: Plan) -> str:
    """What an executed copy depends on: the notebook, its parameters and the helpers' code."""
    h = hashlib.sha256(p.source.read_bytes())
    h.update(json.dumps({**p.defaults, **p.parameters}, sort_keys=True, default=str).encode())
    for module in sorted(f for ext in ("py", "mplstyle", "json") for f in (ROOT / "helpers").rglob(f"*.{ext}")):
        h.update(module.read_bytes())
    return h.hexdigest()


def execute(plans: list[Plan], profile_name: str, force: bool = False) -> dict:
    """Run the planned notebooks (skipping those up to date unless ``force``); write and return the summary."""
    import papermill

    if not plans:
        raise RunError("nothing to run")
    out_dir = plans[0].output.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = str((out_dir / "artifacts").resolve())  # kernels inherit it
    summary_path = out_dir / "summary.json"
    summary = {
        "profile": profile_name,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "notebooks": {},
    }
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):  # keep the records of notebooks not re-run
        summary["notebooks"] = json.loads(summary_path.read_text()).get("notebooks", {})
    failure = None
    width = max(len(p.name) for p in plans)
    for p in plans:
        key, shown = fingerprint(p), f"[{profile_name}] {p.name:<{width}}"
        previous = summary["notebooks"].get(p.name, {})
        if not force and previous.get("fingerprint") == key and previous.get("status") == "ok" and p.output.exists():
            print(f"{shown}  up to date, skipped (--force re-runs it)", flush=True)
            continue
        start = time.perf_counter()
        record = {
            "parameters": {**p.defaults, **p.parameters},
            "overrides": p.parameters,
            "output": os.path.relpath(p.output, ROOT),
            "fingerprint": key,
        }
        try:
            papermill.execute_notebook(
                str(p.source),
                str(p.output),
                parameters=p.parameters,
                kernel_name="python3",
                cwd=str(p.source.parent),
                progress_bar=_progress_bar(p.name, previous.get("seconds")),
                extra_arguments=KERNEL_QUIET,
            )
            record["status"] = "ok"
        except papermill.PapermillExecutionError as exc:
            record["status"] = "failed"
            record["error"] = f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"
            first_line = ((exc.source or "").strip().splitlines() or [""])[0]
            failure = (
                f"{p.name} failed in cell {exc.cell_index} (starting `{first_line[:80]}`):\n{exc.ename}: {exc.evalue}\n"
                f"The executed copy with the error is kept at {record['output']}"
            )
        record["seconds"] = round(time.perf_counter() - start, 1)
        record["metrics"] = glued_values(p.output) if p.output.exists() else {}
        summary["notebooks"][p.name] = record
        summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        partial = summary_path.with_name(summary_path.name + ".part")  # renamed whole: a reader never sees half
        partial.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        partial.replace(summary_path)
        given = "  " + " ".join(f"-p {k}={v!r}" for k, v in p.overrides.items()) if p.overrides else ""
        print(f"{shown}  {record['status']:>6}  {record['seconds']:7.1f} s{given}", flush=True)
        if failure:
            raise RunError(failure)
    print(f"summary: {os.path.relpath(summary_path, ROOT)}")
    return summary


#: the kernel logs only errors (no "Kernel is running over TCP without encryption" on every chapter),
#: and asyncio's "Task was destroyed but it is pending!" from the kernel's own shutdown is not printed
KERNEL_QUIET = [
    "--IPKernelApp.log_level=ERROR",
    "--IPKernelApp.exec_lines=import logging; logging.getLogger('asyncio').setLevel(logging.CRITICAL)",
]


def _progress_bar(name: str, last_seconds: float | None):
    """A transient per-cell progress bar on a terminal, for chapters that took 30 s or more last time."""
    quick = last_seconds is not None and last_seconds < 30
    if quick or not sys.stderr.isatty() or os.environ.get("MAAS_NO_PROGRESS") == "1":
        return False
    return {"desc": f"  {name}", "leave": False}


def describe() -> str:
    lines = ["notebooks and their parameters (defaults from each parameters cell):"]
    for stem, path in notebook_paths().items():
        lines += [f"  {stem}", *(f"    {name} = {value!r}" for name, value in notebook_defaults(path).items())]
    lines += ["profiles:", *(f"  {n}: {load_profile(n).get('description', '').strip()}" for n in available_profiles())]
    return "\n".join([*lines, f"default profile on this machine: {default_profile()}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book.run", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--profile", help="ci, cpu or gpu (default: gpu when a GPU is visible, else cpu)")
    add("--only", action="append", metavar="NOTEBOOK", help="run only this notebook (stem or part of it); repeatable")
    add("-p", "--parameter", action="append", metavar="NAME=VALUE", help="override a parameter (YAML); repeatable")
    add("--output-dir", type=Path, help="where executed copies go (default build/executed/<profile>)")
    add("--notebooks-dir", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    add("--force", action="store_true", help="re-run notebooks whose executed copy is up to date")
    add("--list", action="store_true", help="list notebooks, parameters and profiles, then exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            print(describe())
            return 0
        profile = args.profile or default_profile()
        overrides = [parse_override(text) for text in args.parameter or []]
        plans = plan(profile, args.only, overrides, args.output_dir, args.notebooks_dir)
        execute(plans, profile, args.force)
    except (RunError, params_mod.ParameterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, params_mod.ParameterError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
