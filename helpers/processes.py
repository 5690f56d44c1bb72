"""Child processes of the course: started, watched, and always stopped.

:class:`Child` runs a command (``module(name, *args)``), reads its output lines in a thread, waits for
a ready line, and stops it with SIGTERM, then SIGKILL to its process group. :func:`exit_with_parent`,
called in the child, ends it when its parent is gone or after a lifetime. :func:`free_ports` finds free
ports on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from helpers.paths import ROOT, python_env

#: the environment variable through which a child learns its parent's pid
PARENT_PID = "MAAS_PARENT_PID"


class ChildError(RuntimeError):
    """A child process did not start, exited too early, or did not say it was ready in time."""


def exit_with_parent(
    on_exit: Callable[[], None] | None = None, lifetime: float | None = None, poll: float = 0.5
) -> None:
    """In a child: call ``on_exit`` (default: exit) once the parent (``$MAAS_PARENT_PID``) is gone or
    ``lifetime`` s have passed; checked in a daemon thread, so a busy main thread does not matter."""
    parent = int(os.environ[PARENT_PID]) if os.environ.get(PARENT_PID, "").isdigit() else None
    if parent is None and lifetime is None:
        return
    deadline = time.monotonic() + lifetime if lifetime is not None else None
    action = on_exit or (lambda: os._exit(1))

    def watch():
        while (parent is None or os.getppid() == parent) and (deadline is None or time.monotonic() < deadline):
            time.sleep(poll)
        action()

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 right now (held open together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _parse(line: str) -> dict:
    try:
        entry = json.loads(line)
    except ValueError:
        return {"message": line}
    return entry if isinstance(entry, dict) else {"message": line}


def module(name: str, *args: str, python: str | None = None) -> list[str]:
    """The command that runs ``python -m name *args`` (this interpreter unless ``python`` is given)."""
    return [python or sys.executable, "-m", name, *args]


class Child:
    """A command in a new process group, its output lines (from ``stream``: "stderr", "stdout" or "both")
    collected as dicts; a context manager, or call :meth:`stop`."""

    STREAMS = {
        "stderr": {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE},
        "stdout": {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL},
        "both": {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT},
    }

    def __init__(
        self,
        argv: list[str],
        *,
        stream: str = "stderr",
        env: dict | None = None,
        cwd: Path | str = ROOT,
        name: str | None = None,
    ):
        if stream not in self.STREAMS:
            raise ValueError(f"stream must be one of {sorted(self.STREAMS)}, not {stream!r}")
        self.name = name or " ".join(argv[1:3])
        self.lines: list[dict] = []
        self._changed = threading.Condition()
        self._ended = False
        self._terminated = False
        environment = {**python_env(), **(env or {}), PARENT_PID: str(os.getpid())}
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environment,
            cwd=str(cwd),
            start_new_session=True,
            **self.STREAMS[stream],
        )
        pipe = self.process.stderr if stream == "stderr" else self.process.stdout
        self._reader = threading.Thread(target=self._read, args=(pipe,), daemon=True, name=f"{self.name}-output")
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self, pipe) -> None:
        for line in pipe:
            entry = _parse(line.rstrip("\n"))
            with self._changed:
                self.lines.append(entry)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def tail(self, n: int = 15) -> str:
        """The last ``n`` output lines, for error messages."""
        return "\n".join(e.get("message") if set(e) == {"message"} else json.dumps(e) for e in self.lines[-n:])

    def wait_for(self, ready: Callable[[dict], bool], timeout: float) -> dict:
        """The first output line for which ``ready(line)`` is true; :class:`ChildError` (and the
        child stopped) if it exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for entry in self.lines[seen:]:
                    if ready(entry):
                        return entry
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.5))
        self.stop(timeout=5)
        why = "exited" if self._ended else f"did not get ready within {timeout:.0f} s"
        raise ChildError(f"{self.name} (pid {self.pid}) {why} (exit code {self.process.returncode}):\n{self.tail()}")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit by itself; its exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def terminate(self) -> None:
        """Send SIGTERM, once: a graceful stop (a second SIGTERM would force a service's exit)."""
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._terminated = True

    def kill(self) -> None:
        """SIGKILL to the child's whole process group (what it started goes too)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 30.0, graceful: bool = True) -> int:
        """SIGTERM once (unless not ``graceful``), wait up to ``timeout`` s, then SIGKILL; the exit code."""
        if self.process.poll() is None:
            if graceful:
                self.terminate()
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            if self.process.poll() is None:
                self.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.process.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
