"""The ci run, its nbval check and the site, produced in the background while the other tests run.

The slow part of the test suite is two executions of every chapter (the runner's, and nbval's
independent one that it compares with) and the site built from them. Done one after the other
they leave a core idle; here they are pipelined, so each stage starts as soon as what it needs
exists:

- the *run lane* executes every chapter with the ci profile through the real runner
  (``python -m helpers.book.run --profile ci``, one line per chapter as it finishes), then builds
  both sites from that run (``python -m helpers.book.site``) and prints their PDFs
  (``python -m helpers.book.pdf``);
- the *nbval lane* re-executes chapter *k* under nbval as soon as the runner has finished it,
  while the runner goes on with chapter *k + 1*;
- meanwhile pytest runs the unit tests, and each notebook or site test waits (with a timeout) for
  the result it checks.

nbval re-executes chapter *k* with a copy of the run's artifacts and summary taken the moment the
runner finished *k*: what *k* reads from earlier chapters is what the runner's execution read, and
the runner's later chapters never see what the re-execution writes. Every stage has a time limit,
and each stage's lines are shown as they come, so a hang names itself instead of leaving a silent
terminal.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from helpers.book import run
from helpers.paths import ROOT

#: the longest the ci run (every chapter), the site or the PDFs may take before the lane stops it
STAGE_TIMEOUT = {"run": 1500, "site": 600, "pdf": 300}
#: nbval's limit for one cell, and for one chapter's whole re-execution
NBVAL_CELL_TIMEOUT = 300
NBVAL_TIMEOUT = 600
#: the runner's line for a chapter it finished: "[ci] serving      ok    12.3 s" or "... up to date, skipped"
CHAPTER_LINE = re.compile(r"^\[ci\] (\S+)\s+(ok|failed|up to date)")


class LaneError(RuntimeError):
    """A background stage failed or ran out of time; the message holds the end of its output."""


def _stream(
    command: list[str], timeout: float, env: dict, on_line: Callable[[str], None] | None = None
) -> tuple[int, list[str]]:
    """Run ``command`` in ``env``, each output line passed to ``on_line``; kill its process group after
    ``timeout`` s. Returns the exit code and the lines."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    expired = threading.Event()

    def stop():
        expired.set()
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, stop)
    timer.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(lines[-1])
        code = process.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        lines.append(f"(stopped: over its time limit of {timeout:.0f} s)")
    return code, lines


class CiLanes:
    """The two background lanes of one pytest session (see the module's docstring)."""

    def __init__(self, executed: Path, scratch: Path, emit: Callable[[str], None]):
        """``emit`` shows one line on the terminal; it is called from pytest's main thread only
        (:meth:`drain`), since the lanes' threads cannot write past pytest's output capture."""
        self.executed, self.scratch, self.emit = Path(executed), Path(scratch), emit
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        # the environment of the session's start: a test that changes os.environ (a monkeypatched
        # cache folder, say) while a lane starts a process must not change what that process sees
        self.env = {**os.environ, "MAAS_NO_PROGRESS": "1"}
        self.chapters = list(run.notebook_paths())
        self._ready = {stem: threading.Event() for stem in self.chapters}  # the runner finished it
        self._checked = {stem: threading.Event() for stem in self.chapters}  # nbval finished it
        self.nbval: dict[str, tuple[int, str]] = {}
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self._done = {stage: threading.Event() for stage in STAGE_TIMEOUT}
        self.html = self.scratch / "html"
        self.projects = self.scratch / "projects"
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run_lane, name="ci-run", daemon=True),
            threading.Thread(target=self._nbval_lane, name="ci-nbval", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the run lane: chapters, then the sites, then the PDFs
    def _run_lane(self) -> None:
        py = sys.executable
        stages = {
            "run": [py, "-m", "helpers.book.run", "--profile", "ci"],
            "site": [
                py,
                "-m",
                "helpers.book.site",
                "--profile",
                "ci",
                "--out",
                str(self.html),
                "--work",
                str(self.projects),
            ],
            "pdf": [py, "-m", "helpers.book.pdf", "--site", str(self.html), "--projects", str(self.projects)],
        }
        try:
            for stage, command in stages.items():  # (an exception ends the lane; the events below still fire)
                if self.errors:  # a stage that failed stops the ones that need it
                    self.errors.setdefault(stage, f"not run: {', '.join(self.errors)} failed first")
                    continue
                start = time.monotonic()
                code, lines = _stream(
                    command, STAGE_TIMEOUT[stage], self.env, self._on_run_line if stage == "run" else None
                )
                if code != 0:
                    self.errors[stage] = f"`{' '.join(command[1:])}` exited with {code}:\n" + "\n".join(lines[-60:])
                else:
                    self._say(f"[ci] {stage} stage done in {time.monotonic() - start:.0f} s")
                self._done[stage].set()
        except Exception as exc:  # noqa: BLE001  reported by the tests that wait, never a hang
            self.errors.setdefault("lane", repr(exc))
        finally:
            for event in [*self._done.values(), *self._ready.values()]:
                event.set()

    def _on_run_line(self, line: str) -> None:
        """Show the runner's line; when it says a chapter finished, hand the chapter to the nbval lane."""
        self._say(line)
        match = CHAPTER_LINE.match(line)
        if not match or match.group(1) not in self._ready:
            return
        stem, status = match.groups()
        try:
            if status != "failed":
                self._snapshot(stem)
            self.status[stem] = status
        except OSError as exc:
            self.status[stem] = "failed"
            self.errors.setdefault("snapshot", f"copying the run's artifacts for {stem}: {exc}")
        finally:
            self._ready[stem].set()

    def _snapshot(self, stem: str) -> None:
        """The run's artifacts and summary as they are now, for nbval's re-execution of ``stem``."""
        target = self.scratch / "nbval" / stem
        (target / "artifacts").mkdir(parents=True, exist_ok=True)
        if (self.executed / "artifacts").is_dir():  # (a first chapter may leave none)
            shutil.copytree(self.executed / "artifacts", target / "artifacts", dirs_exist_ok=True)
        shutil.copy(self.executed / "summary.json", target / "summary.json")

    # -- the nbval lane: each chapter as soon as the runner has it
    def _nbval_lane(self) -> None:
        for stem in self.chapters:
            self._ready[stem].wait()
            start = time.monotonic()
            try:
                if self.status.get(stem) in (None, "failed"):
                    self.nbval[stem] = (1, f"not checked: the ci run did not execute {stem} ({self.errors})")
                else:
                    self.nbval[stem] = self._nbval(stem)
                    verdict = "passed" if self.nbval[stem][0] == 0 else "FAILED"
                    self._say(f"[nbval] {stem:<20} {verdict:>6} {time.monotonic() - start:7.1f} s")
            except Exception as exc:  # noqa: BLE001  reported by the chapter's test, never a hang
                self.nbval[stem] = (1, f"nbval could not run: {exc!r}")
            finally:
                self._checked[stem].set()

    def _nbval(self, stem: str) -> tuple[int, str]:
        """nbval on one executed chapter; a pass is remembered under the copy's fingerprint (its
        notebook, parameters and the helpers' code), so an unchanged chapter is not checked twice."""
        fingerprint = json.loads((self.executed / "summary.json").read_text())["notebooks"][stem]["fingerprint"]
        marker = self.executed / ".nbval" / stem
        if marker.exists() and marker.read_text() == fingerprint:
            return 0, "passed before, unchanged since"
        snapshot = self.scratch / "nbval" / stem / "artifacts"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval",
            f"--nbval-cell-timeout={NBVAL_CELL_TIMEOUT}",
            "--nbval-sanitize-with",
            str(ROOT / "tests" / "nbval_sanitize.cfg"),
            str(self.executed / f"{stem}.ipynb"),
        ]
        code, lines = _stream(command, NBVAL_TIMEOUT, {**self.env, "MAAS_ARTIFACT_DIR": str(snapshot)})
        output = "\n".join(lines)
        if code == 0 and (" passed" not in output or " failed" in output):
            code = 1
        if code == 0:
            marker.parent.mkdir(exist_ok=True)
            marker.write_text(fingerprint)
        return code, output

    # -- what the tests wait for
    def _say(self, line: str) -> None:
        self._lines.put(f"{line}  [{time.monotonic() - self.started:.0f} s]" if line.startswith("[") else line)

    def drain(self) -> None:
        """Show the lines the lanes have said since the last call (from the main thread)."""
        while True:
            try:
                self.emit(self._lines.get_nowait())
            except queue.Empty:
                return

    def _wait(self, event: threading.Event, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not event.wait(1.0):  # the lanes' lines shown while a test waits for them
            self.drain()
            if time.monotonic() > deadline:
                raise LaneError(f"{what} was not ready after {timeout:.0f} s")
        self.drain()

    def chapter(self, stem: str, timeout: float = STAGE_TIMEOUT["run"]) -> tuple[int, str]:
        """nbval's return code and output for one chapter, once it has run."""
        self._wait(self._checked[stem], f"nbval's check of {stem}", timeout + NBVAL_TIMEOUT)
        return self.nbval[stem]

    def executed_run(self, timeout: float = STAGE_TIMEOUT["run"]) -> Path:
        self._wait(self._done["run"], "the ci run", timeout)
        self._raise("run")
        summary = json.loads((self.executed / "summary.json").read_text())
        assert summary["profile"] == "ci"
        return self.executed

    def site(self) -> Path:
        self._wait(self._done["site"], "the sites", STAGE_TIMEOUT["run"] + STAGE_TIMEOUT["site"])
        self._raise("site")
        return self.html

    def pdfs(self) -> Path:
        self._wait(self._done["pdf"], "the PDFs", sum(STAGE_TIMEOUT.values()))
        self._raise("pdf")
        return self.html / "pdf"

    def _raise(self, stage: str) -> None:
        if stage in self.errors:
            raise LaneError(f"the {stage} stage failed: {self.errors[stage]}")
