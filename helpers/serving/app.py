"""The model service's ASGI app (FastAPI; :class:`PredictFastPath` for ``POST :predict``); :func:`serve` runs it."""

from __future__ import annotations

import contextlib
import json
import logging.config
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from helpers import processes
from helpers.data import IMAGE_SHAPE
from helpers.serving import protocol
from helpers.serving.batcher import Batcher
from helpers.serving.model import Predictor

DEFAULT_MAX_CONNECTIONS = 1024  # more open connections at once get 503 (the load tests open a few hundred at most)
DESCRIPTION = "Serve an image classifier over HTTP with TensorFlow Serving's REST API and dynamic batching."


@dataclass
class ServiceOptions:
    name: str = protocol.DEFAULT_NAME
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    max_body_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES
    max_instances: int = protocol.DEFAULT_MAX_INSTANCES
    fast_path: bool = True  # answer POST :predict in PredictFastPath, not through FastAPI's router
    body_timeout_s: float = protocol.BODY_TIMEOUT_S  # a body not all arrived by then: 408
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open connections beyond it get 503 (uvicorn's limit_concurrency)


def signature_metadata(name: str, n_outputs: int) -> dict:
    """TensorFlow Serving's ``/metadata`` reply: one signature, uint8 images in, ``n_outputs`` logits out."""

    def tensor(dtype: str, *sizes) -> dict:
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(size)} for size in (-1, *sizes)]}}

    inputs, outputs = {"image": tensor("DT_UINT8", *IMAGE_SHAPE)}, {"logits": tensor("DT_FLOAT", n_outputs)}
    signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
    return {
        "model_spec": {"name": name, "signature_name": "", "version": "1"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    }


def check_model_name(name: str, served: str) -> None:
    if name != served:
        raise HTTPException(404, protocol.unknown_model(name, served))


def create_app(predictor: Predictor, options: ServiceOptions):
    """The FastAPI application serving ``predictor`` under ``/v1/models/<options.name>``."""

    class PredictRequest(BaseModel):
        instances: list = Field(
            description="images: each a 32x32x3 nested list of integers 0..255 "
            '(raw uint8 pixels, row-major), or {"b64": base64 of its 3,072 bytes}'
        )
        signature_name: str = Field("serving_default", description="the only signature")

    class PredictResponse(BaseModel):
        predictions: list[list[float]] = Field(description="one row of 10 logits per image, in order")

    class ErrorResponse(BaseModel):
        error: str

    batcher = Batcher(predictor.predict, options.max_batch_size, options.max_wait_ms / 1000, options.batching)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        fields = {"model": options.name, "kind": predictor.kind, "batching": options.batching}
        fields |= {"max_batch_size": options.max_batch_size, "max_wait_ms": options.max_wait_ms}
        protocol.log.info("ready", extra={"fields": {"event": "ready", **fields}})
        yield
        await batcher.stop()
        protocol.log.info("stopped", extra={"fields": {"event": "stopped", **batcher.stats.as_dict()}})

    title = "CIFAR-10 classifier (TensorFlow Serving REST API)"
    app = FastAPI(title=title, version="1", description=DESCRIPTION, lifespan=lifespan)
    errors = {code: {"model": ErrorResponse} for code in (400, 404, 405, 413)}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        reply = protocol.refusal(request.url.path, exc.status_code, str(exc.detail))
        return Response(reply, status_code=exc.status_code, media_type="application/json")

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz():
        return {"status": "ok", "model": options.name}

    @app.get("/stats", summary="Requests, batches and images served since start")
    async def stats():
        return batcher.stats.as_dict() | {"batching": options.batching}

    @app.get("/v1/models/{name}", summary="Model version status (TensorFlow Serving)", responses=errors)
    async def model_status(name: str):
        if name.endswith(":predict"):  # GET /v1/models/<name>:predict
            raise HTTPException(405, protocol.NEEDS_POST)
        check_model_name(name, options.name)
        return {"model_version_status": [protocol.MODEL_VERSION_STATUS]}

    @app.get("/v1/models/{name}/metadata", summary="Model signature (TensorFlow Serving)", responses=errors)
    async def model_metadata(name: str):
        check_model_name(name, options.name)
        return signature_metadata(options.name, predictor.n_outputs)

    async def answer_predict(body: bytes, path: str) -> tuple[int, bytes]:
        return await protocol.predict_reply(batcher.submit, options.max_instances, body, path)

    limits = options.max_body_bytes, options.body_timeout_s
    body_schema = {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}

    @app.post(
        "/v1/models/{name}:predict",
        summary="Predict (TensorFlow Serving row or columnar format)",
        response_model=PredictResponse,
        responses=errors,
        openapi_extra={"requestBody": body_schema},
    )
    async def predict(name: str, http: Request):  # documents the endpoint; answers it without PredictFastPath
        check_model_name(name, options.name)
        answer = await protocol.answer_request(http.scope, http.receive, answer_predict, http.url.path, *limits)
        if answer is None:
            return Response(status_code=499)  # nobody to answer ("client closed request")
        return Response(answer[1], status_code=answer[0], media_type="application/json")

    if not options.fast_path:
        return app
    return PredictFastPath(app, f"/v1/models/{options.name}:predict", answer_predict, limits)


class PredictFastPath:
    """ASGI: ``POST <path>`` straight to the handler, every other request to the FastAPI ``app``: with batching,
    FastAPI's CPU per request on the event loop, not the model, can set the throughput (``--through-fastapi``)."""

    def __init__(self, app, path: str, answer, limits: tuple[int, float]):  # limits: body bytes, body timeout (s)
        self.app, self.path, self.answer, self.limits = app, path, answer, limits

    def __getattr__(self, name):  # app.openapi(), app.routes, ... for code that inspects the app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if (answer := await protocol.answer_request(scope, receive, self.answer, scope["path"], *self.limits)) is None:
            return
        status, reply = answer
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name}
        entry |= {"message": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", protocol.LOGGER)
    },
}


class GracefulServer(uvicorn.Server):
    """uvicorn's server, exiting with status 0 after a graceful shutdown on SIGTERM or SIGINT (uvicorn re-raises
    the signal, ending "killed by SIGTERM" with every request answered); a second signal forces the exit."""

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_server(app, host: str, port: int, logger, fields: dict, *, started: float, **options):
    """Bind ``host:port`` (0: a free port), log ``listening`` with ``fields`` and the seconds since ``started``,
    serve ``app`` until SIGTERM/SIGINT or the parent is gone (both services)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    options |= {"log_config": LOG_CONFIG, "access_log": False, "server_header": False}
    server = GracefulServer(uvicorn.Config(app, timeout_graceful_shutdown=30, **options))

    def parent_gone():  # never outlive the notebook or test that started the service
        logger.warning("parent gone", extra={"fields": {"event": "parent_gone"}})
        server.should_exit = True

    processes.exit_with_parent(parent_gone)
    fields = {"event": "listening", "host": host, "port": sock.getsockname()[1], **fields}
    fields |= {"load_seconds": round(time.perf_counter() - started, 3), "pid": os.getpid()}
    logger.info("listening", extra={"fields": fields})
    server.run(sockets=[sock])


def serve(model: Path | str, host: str = "127.0.0.1", port: int = 8501, options: ServiceOptions | None = None) -> None:
    """Load the model, listen on ``host:port`` (0: a free port) and serve until SIGTERM/SIGINT."""
    logging.config.dictConfig(LOG_CONFIG)
    options = options or ServiceOptions()
    start = time.perf_counter()
    app = create_app(Predictor(model), options)
    server = {"backlog": 2048, "timeout_keep_alive": 30, "limit_concurrency": options.max_connections}
    run_server(app, host, port, protocol.log, {"model": str(model)}, started=start, **server)
