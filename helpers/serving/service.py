"""The model service as a subprocess (``python -m helpers.serving`` on 127.0.0.1), from a notebook or a test."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from helpers.processes import Child, ChildError, module
from helpers.serving.protocol import DEFAULT_NAME, ServingError


class HttpService(Child):
    """A subprocess that logs ``listening`` with its port, then answers ``health_path`` (or raises ServingError)."""

    health_path = "/healthz"

    def __init__(self, argv: list[str], name: str):
        self.url = ""  # known once the service listens
        super().__init__(argv, stream="stderr", env={"TF_CPP_MIN_LOG_LEVEL": "2"}, name=name)

    @property
    def logs(self) -> list[dict]:
        return self.lines

    def wait_until_ready(self, timeout: float = 120.0):
        """Wait until the service listens and answers the health check; raise ServingError if not."""
        try:
            listening = self.wait_for(lambda e: e.get("event") == "listening", timeout)
        except ChildError as exc:
            raise ServingError(str(exc)) from None
        self.url = f"http://127.0.0.1:{listening['port']}"
        import httpx

        deadline = time.monotonic() + timeout
        while True:  # listening; wait until the application has started (lifespan)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{self.health_path}", timeout=5).status_code == 200:
                    return self
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop(timeout=5)
                raise ServingError(f"the service at {self.url} never became healthy:\n{self.tail()}")
            time.sleep(0.05)


class Service(HttpService):
    """A running model service: its URL, its process, and its JSON log lines (``logs``)."""

    def __init__(
        self,
        model: Path | str,
        *,
        name: str = DEFAULT_NAME,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        batching: bool = True,
        port: int = 0,
        extra_args: tuple[str, ...] = (),
    ):
        self.model_name = name
        args = ["--model", str(model), "--name", name, "--port", str(port), "--max-batch-size", str(max_batch_size)]
        args += ["--max-wait-ms", str(max_wait_ms), *([] if batching else ["--no-batching"]), *extra_args]
        super().__init__(module("helpers.serving", *args), "model service")

    @property
    def model_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}"


@contextlib.contextmanager
def running_service(model: Path | str, *, startup_timeout: float = 120.0, **options):
    """Start the service (options as :class:`Service`), wait until it is ready, yield it; always stop it."""
    service = Service(model, **options)
    try:
        yield service.wait_until_ready(startup_timeout)
    finally:
        service.stop()
