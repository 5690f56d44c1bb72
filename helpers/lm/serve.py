"""Serve a trained poem model with the OpenAI API (as vLLM does), from the command line or from Python.

    python -m helpers.lm.serve --checkpoint build/lm/ckpt --port 8000     # 127.0.0.1 only; --help for options
    curl -s localhost:8000/v1/completions -H 'content-type: application/json' \\
         -d '{"model": "tang-poet", "prompt": "春眠", "max_tokens": 32, "seed": 1}'

The engine runs in a thread beside uvicorn's event loop; the process runs as every course service does
(:mod:`helpers.serving.app`: JSON log lines on stderr, a graceful stop on SIGTERM); :class:`Service` runs it in a
subprocess.
"""

from __future__ import annotations

import argparse
import copy
import logging.config
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from helpers.lm.openai_api import DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_S, LOGGER, ServerOptions, log
from helpers.processes import module
from helpers.serving.app import DEFAULT_MAX_CONNECTIONS
from helpers.serving.app import LOG_CONFIG as SERVING_LOG_CONFIG
from helpers.serving.protocol import BODY_TIMEOUT_S
from helpers.serving.service import HttpService

LOG_CONFIG = copy.deepcopy(SERVING_LOG_CONFIG)  # the serving package's JSON-lines logging, and this service's logger
LOG_CONFIG["loggers"][LOGGER] = dict(LOG_CONFIG["loggers"]["uvicorn"])


def build_engine(
    checkpoint: Path | str, slots: int = 32, scheduler: str = "continuous", max_waiting: int | None = 256, warm=True
):
    """Load a checkpoint and build its engine; with ``warm``, compile the decode step and every prefill bucket."""
    from helpers.lm.engine import Engine
    from helpers.lm.train import load_model

    model, tokenizer, _ = load_model(checkpoint)
    engine = Engine(model, tokenizer, slots=slots, scheduler=scheduler, max_waiting=max_waiting)
    if warm:
        engine.fns.warm_up()
    return engine


def serve(
    checkpoint: Path | str,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = "tang-poet",
    options: ServerOptions | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    **engine,
) -> None:
    """Load the model (``engine``: :func:`build_engine`'s options), listen on ``host:port`` (0: a free port) and
    serve until SIGTERM/SIGINT; ``options`` are the API's limits, connections beyond ``max_connections`` get 503."""
    from helpers.lm.server import create_app
    from helpers.serving.app import run_server

    logging.config.dictConfig(LOG_CONFIG)
    start = time.perf_counter()
    app = create_app(build_engine(checkpoint, **engine), replace(options or ServerOptions(), name=name))
    fields = {"model": name, "checkpoint": str(checkpoint)}
    run_server(app, host, port, log, fields, started=start, limit_concurrency=max_connections)


OPTIONS = (  # the command line's options: (flag, type, default, help)
    ("--host", str, "127.0.0.1", "address to bind (default 127.0.0.1: this machine only)"),
    ("--port", int, 8000, "port (default 8000, vLLM's; 0: any free port)"),
    ("--name", str, "tang-poet", "the model name clients send (default tang-poet)"),
    ("--slots", int, 32, "sequences decoded together: the KV-cache slots (default 32)"),
    ("--max-waiting", int, 256, "requests that may wait for a slot; beyond, 429 with Retry-After (default 256)"),
    ("--max-body-bytes", int, DEFAULT_MAX_BODY_BYTES, "a larger request body is refused with 413 (default 1 MiB)"),
    ("--body-timeout", float, BODY_TIMEOUT_S, "seconds a request body may take to arrive; 408 after"),
    ("--request-timeout", float, DEFAULT_REQUEST_TIMEOUT_S, "seconds a request may take; then cancelled, 504"),
    ("--max-connections", int, DEFAULT_MAX_CONNECTIONS, "open connections beyond this get 503"),
    ("--api-key", str, None, "require 'Authorization: Bearer <key>' on every /v1 request (401 otherwise)"),
    ("--backend", str, os.environ.get("KERAS_BACKEND", "tensorflow"), "Keras backend (default $KERAS_BACKEND)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.lm.serve",
        description="Serve a trained poem model with the OpenAI API (/v1/completions, /v1/chat/completions, "
        "/v1/models), streaming as server-sent events.",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory written by helpers.lm.train")
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument("--scheduler", choices=("continuous", "static", "single"), default="continuous")
    parser.add_argument("--no-warm-up", action="store_true", help="compile each shape on its first request")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend  # (TF_CPP_MIN_LOG_LEVEL is set by importing helpers)
    from helpers.env import native_stderr_silenced

    with native_stderr_silenced():
        import keras  # noqa: F401 - import once with the C++ start-up notices silenced
    timeouts = {"body_timeout_s": args.body_timeout, "request_timeout_s": args.request_timeout}
    options = ServerOptions(max_body_bytes=args.max_body_bytes, api_key=args.api_key, **timeouts)
    kw = {k: getattr(args, k) for k in ("host", "port", "name", "slots", "scheduler", "max_waiting")}
    try:
        serve(args.checkpoint, warm=not args.no_warm_up, options=options, max_connections=args.max_connections, **kw)
    except (FileNotFoundError, OSError, ValueError) as exc:  # no checkpoint, port taken, bad option
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class Service(HttpService):
    """The service in a subprocess (a :class:`helpers.processes.Child`): its URL and the JSON log lines it wrote."""

    health_path = "/health"

    def __init__(self, checkpoint, *, name="tang-poet", port=0, slots=8, max_waiting=256, extra_args=()):
        args = ["--checkpoint", str(checkpoint), "--name", name, "--port", str(port), "--slots", str(slots)]
        args += ["--max-waiting", str(max_waiting), *extra_args]
        super().__init__(module("helpers.lm.serve", *args), "language-model service")

    @property
    def base_url(self) -> str:
        """What the ``openai`` client takes as ``base_url``."""
        return f"{self.url}/v1"


if __name__ == "__main__":
    raise SystemExit(main())
