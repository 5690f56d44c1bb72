"""``python -m helpers.serving --model FILE --port N``: serve a CIFAR-10 classifier over HTTP (``--help``: options)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from helpers.serving.app import DESCRIPTION, ServiceOptions, serve
from helpers.serving.protocol import ServingError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.serving", description=DESCRIPTION)
    add = parser.add_argument
    add("--model", required=True, help="a .keras file or a SavedModel folder (uint8 images in, logits out)")
    add("--name", help="model name in the URLs (default %(default)s)")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    add("--port", type=int, default=8501, help="port (default 8501, TensorFlow Serving's REST port; 0: any free port)")
    add("--max-batch-size", type=int, help="most images in one model call (default %(default)s)")
    add("--max-wait-ms", type=float, help="batching window in milliseconds (default %(default)g)")
    add("--no-batching", dest="batching", action="store_false", help="run every request alone")
    add("--max-body-bytes", type=int, help="request size limit")
    add("--max-instances", type=int, help="most images in one request")
    add(
        "--through-fastapi", dest="fast_path", action="store_false", help="answer :predict through FastAPI too (slower)"
    )
    add("--body-timeout", dest="body_timeout_s", type=float, help="seconds a request body may take to arrive")
    add("--max-connections", type=int, help="open connections beyond this get 503")
    add("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), help="Keras backend")
    parser.set_defaults(**dataclasses.asdict(ServiceOptions()))  # every option's default, from ServiceOptions
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
