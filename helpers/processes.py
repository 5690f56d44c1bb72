"""Child processes of the course: started, watched, and always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from helpers.paths import ROOT, python_env

#: the environment variable through which a child learns its parent's pid
PARENT_PID = "MAAS_PARENT_PID"


class ChildError(RuntimeError):
    """A child process did not start, exited too early, or did not say it was ready in time."""


def exit_with_parent(on_exit: Callable[[], None] | None = None, lifetime: float | None = None) -> None:
    """In a child: call ``on_exit`` (default: exit) once the parent is gone or ``lifetime`` s have passed."""
    parent = int(os.environ[PARENT_PID]) if os.environ.get(PARENT_PID, "").isdigit() else None
    if parent is None and lifetime is None:
        return
    deadline = time.monotonic() + (lifetime if lifetime is not None else float("inf"))

    def watch():
        while (parent is None or os.getppid() == parent) and time.monotonic() < deadline:
            time.sleep(0.5)
        (on_exit or (lambda: os._exit(1)))()

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 right now (held open together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_server(("127.0.0.1", 0))) for _ in range(n)]
        return [s.getsockname()[1] for s in socks]


def module(name: str, *args: str) -> list[str]:
    """The command that runs ``python -m name *args`` with this interpreter."""
    return [sys.executable, "-m", name, *args]


def _parse(line: str) -> dict:
    with contextlib.suppress(ValueError):
        if isinstance(entry := json.loads(line), dict):
            return entry
    return {"message": line}


class Child:
    """A command in a new process group, the lines of its ``stream`` collected as dicts in ``lines``."""

    def __init__(self, argv: list[str], *, stream: str = "stderr", env: dict | None = None, name: str | None = None):
        self.name = name or " ".join(argv[1:3])
        self.lines: list[dict] = []
        self._changed = threading.Condition()
        self._ended = self._terminated = False
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**python_env(), **(env or {}), PARENT_PID: str(os.getpid())},
            cwd=str(ROOT),
            start_new_session=True,
            stdout=subprocess.DEVNULL if stream == "stderr" else subprocess.PIPE,
            stderr={"stderr": subprocess.PIPE, "stdout": subprocess.DEVNULL, "both": subprocess.STDOUT}[stream],
        )
        self.pid = self.process.pid
        pipe = self.process.stderr if stream == "stderr" else self.process.stdout
        self._reader = threading.Thread(target=self._read, args=(pipe,), daemon=True, name=f"{self.name}-output")
        self._reader.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(_parse(line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def tail(self, n: int = 15) -> str:
        """The last ``n`` output lines, for error messages."""
        return "\n".join(e["message"] if set(e) == {"message"} else json.dumps(e) for e in self.lines[-n:])

    def wait_for(self, ready: Callable[[dict], bool], timeout: float) -> dict:
        """The first output line that is ``ready``; else the child stopped and :class:`ChildError`."""
        deadline, seen = time.monotonic() + timeout, 0
        with self._changed:
            while True:
                if (found := next((entry for entry in self.lines[seen:] if ready(entry)), None)) is not None:
                    return found
                seen = len(self.lines)
                if self._ended or (remaining := deadline - time.monotonic()) <= 0:
                    break
                self._changed.wait(min(remaining, 0.5))
        self.stop(timeout=5)
        why = "exited" if self._ended else f"did not get ready within {timeout:.0f} s"
        raise ChildError(f"{self.name} (pid {self.pid}) {why} (exit code {self.process.returncode}):\n{self.tail()}")

    def terminate(self) -> None:
        """Send SIGTERM, once: a graceful stop (a second SIGTERM would force a service's exit)."""
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self, timeout: float = 30.0, graceful: bool = True) -> int:
        """SIGTERM (if ``graceful``), wait up to ``timeout`` s, SIGKILL the process group; the exit code."""
        if self.process.poll() is None:
            if graceful:
                self.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=timeout)
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.process.returncode
