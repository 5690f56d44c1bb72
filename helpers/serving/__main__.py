"""``python -m helpers.serving --model FILE --port N``: serve a CIFAR-10 classifier over HTTP
(:mod:`helpers.serving` shows how to call it; ``--help`` lists the options)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from helpers.serving.app import DEFAULT_MAX_CONNECTIONS, DESCRIPTION, ServiceOptions, serve
from helpers.serving.protocol import (
    BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_NAME,
    ServingError,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.serving", description=DESCRIPTION)
    add = parser.add_argument
    add("--model", required=True, help="a .keras file or a SavedModel folder (uint8 images in, logits out)")
    add("--name", default=DEFAULT_NAME, help=f"model name in the URLs (default {DEFAULT_NAME})")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    add("--port", type=int, default=8501, help="port (default 8501, TensorFlow Serving's REST port; 0: any free port)")
    add("--max-batch-size", type=int, default=64, help="most images in one model call (default 64)")
    add("--max-wait-ms", type=float, default=5.0, help="batching window in milliseconds (default 5)")
    add("--no-batching", dest="batching", action="store_false", help="run every request alone")
    add("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="request size limit")
    add("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most images in one request")
    add(
        "--through-fastapi",
        dest="fast_path",
        action="store_false",
        help="answer :predict through FastAPI's router too (slower)",
    )
    add(
        "--body-timeout",
        dest="body_timeout_s",
        type=float,
        default=BODY_TIMEOUT_S,
        help="seconds a request body may take to arrive",
    )
    add("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, help="open connections beyond this get 503")
    add("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), help="Keras backend")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend  # (TF_CPP_MIN_LOG_LEVEL is set by importing helpers)
    options = ServiceOptions(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ServiceOptions)})
    try:
        serve(args.model, args.host, args.port, options)
    except (ServingError, OSError) as exc:  # no model, port taken, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
