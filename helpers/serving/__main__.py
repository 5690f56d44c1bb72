"""``python -m helpers.serving --model FILE --port N``: serve a CIFAR-10 classifier over HTTP.

    python -m helpers.serving --model build/executed/cpu/artifacts/cifar10_served.keras --port 8501
    curl -s localhost:8501/v1/models/cifar10                     # status
    curl -s -X POST localhost:8501/v1/models/cifar10:predict -d '{"instances": [{"b64": "..."}]}'

Bound to 127.0.0.1 unless ``--host`` says otherwise; ``--help`` lists the batching options.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument(
        "--model", required=True, help="a .keras file or a SavedModel folder (uint8 images in, logits out)"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the URLs (default {DEFAULT_NAME})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument(
        "--port", type=int, default=8501, help="port (default 8501, TensorFlow Serving's REST port; 0: any free port)"
    )
    parser.add_argument("--max-batch-size", type=int, default=64, help="most images in one model call (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window in milliseconds (default 5)")
    parser.add_argument("--no-batching", action="store_true", help="run every request alone")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="request size limit")
    parser.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most images in one request")
    parser.add_argument(
        "--through-fastapi",
        action="store_true",
        help="answer :predict through FastAPI's router too (slower; to measure what the fast path saves)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_S,
        help="seconds a request body may take to arrive (408 after)",
    )
    parser.add_argument(
        "--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, help="open connections beyond this get 503"
    )
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), help="Keras backend")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = ServiceOptions(
        args.name,
        args.max_batch_size,
        args.max_wait_ms,
        not args.no_batching,
        args.max_body_bytes,
        args.max_instances,
        not args.through_fastapi,
        args.body_timeout,
        args.max_connections,
    )
    try:
        serve(args.model, args.host, args.port, options)
    except (ServingError, OSError) as exc:  # no model, port taken, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
