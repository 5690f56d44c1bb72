"""The OpenAI-compatible HTTP API, as vLLM exposes it, over :class:`helpers.lm.engine.Engine`.

``POST /v1/completions`` and ``/v1/chat/completions`` (the ``user`` and ``assistant`` messages in order), whole
or streamed as server-sent events; ``GET /v1/models[/{id}]``, ``/health``, ``/stats``. Refusals are 4xx with
OpenAI's error body (:mod:`helpers.lm.openai_api`); unknown characters are refused by name, not mapped to
``<unk>``. A full queue gets 429, a slow body 408, a request over ``request_timeout_s`` 504; a client that goes
away has its request cancelled. If the engine fails, its requests get 500, new ones and ``/health`` 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid

import orjson
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from helpers.lm import openai_api as oa
from helpers.lm.engine import ContextTooLong, Engine, EngineFailed, QueueFull, Request
from helpers.lm.openai_api import ApiError, ServerOptions, log
from helpers.lm.sampling import SamplingParams
from helpers.serving.protocol import BadRequest, ClientGone, json_object, receive_body

RETRY_AFTER_S = 1


class ApiKeyCheck:
    """ASGI middleware (plain, so ``receive`` reaches the routes untouched): ``/v1`` needs ``Bearer <key>``, else 401."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            given = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if not given or scheme.lower() != b"bearer":
                message, code = "You didn't provide an API key: send it as `Authorization: Bearer <key>`", None
            elif not hmac.compare_digest(token.strip(), self.key):
                message, code = "Incorrect API key provided", "invalid_api_key"
            else:
                return await self.app(scope, receive, send)
            refusal = ApiError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})
            return await refusal.response()(scope, receive, send)
        return await self.app(scope, receive, send)


class EventStream(Response):
    """Server-sent events from an async iterator of ``bytes``; ``on_disconnect()`` when the client leaves (ASGI's
    ``http.disconnect`` or a failed send), noticed even while no token is being sent."""

    media_type = "text/event-stream"

    def __init__(self, events, on_disconnect):
        super().__init__(None, 200, {"cache-control": "no-cache", "x-accel-buffering": "no"}, self.media_type)
        self.events, self.on_disconnect = events, on_disconnect
        # a stream has no length: drop the "content-length: 0" Response adds for an empty body
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]

    async def __call__(self, scope, receive, send):
        gone = asyncio.Event()

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            self.on_disconnect()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.events:
                if gone.is_set():
                    return
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError:
                    self.on_disconnect()
                    return
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def no_such_model(model: str, served: str) -> ApiError:
    return ApiError(
        404, f"The model `{model}` does not exist; this server serves `{served}`", param="model", code="model_not_found"
    )


def sse(obj) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else orjson.dumps(obj)) + b"\n\n"


class _Completions:
    """What both endpoints do: check a request, submit it to the engine, answer whole or streamed."""

    def __init__(self, engine: Engine, options: ServerOptions):
        self.engine, self.options = engine, options
        self.tokenizer, self.max_len = engine.tokenizer, engine.max_len

    def _check_model(self, data: dict) -> None:
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model is required: a string naming the model (GET /v1/models)", param="model")
        if model != self.options.name:
            raise no_such_model(model, self.options.name)

    def _prompt_ids(self, prompt: str, param: str) -> list[int]:
        if not prompt:
            raise ApiError(400, "the prompt is empty: give the opening of a poem (at least one character)", param=param)
        if unknown := self.tokenizer.unknown(prompt):
            message = (
                f"{len(unknown)} character(s) of the prompt are not in the model's vocabulary: "
                f"{''.join(unknown[:20])!r}. It knows {self.tokenizer.vocab_size - 4} traditional Chinese "
                "characters and punctuation from the Tang poems; write the prompt with those"
            )
            raise ApiError(400, message, param=param, code="unknown_characters")
        ids = self.tokenizer.encode(prompt)
        if len(ids) >= self.max_len:
            message = f"the prompt is {len(ids)} tokens (with <bos>); this model's maximum context length is "
            message += f"{self.max_len}, which leaves no room for a completion"
            raise ApiError(400, message, param=param, code="context_length_exceeded")
        return ids

    def _max_tokens(self, data: dict, chat: bool, prompt_tokens: int) -> int:
        keys = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
        max_tokens = next((data[k] for k in keys if data.get(k) is not None), None)
        if max_tokens is None:  # chat: up to the context; completions: OpenAI's default of 16
            return self.max_len - prompt_tokens if chat else 16
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise ApiError(400, f"max_tokens must be an integer, got {max_tokens!r}", param="max_tokens")
        return max_tokens

    def prepare(self, data: dict, chat: bool) -> tuple[list[int], SamplingParams]:
        """The request's prompt ids and sampling parameters, or ApiError (4xx) naming what is wrong."""
        oa.check_fields(data, oa.CHAT_FIELDS if chat else oa.COMPLETION_FIELDS)
        prompt = oa.chat_prompt(data) if chat else oa.completion_prompt(data)
        self._check_model(data)
        ids = self._prompt_ids(prompt, "messages" if chat else "prompt")
        params = oa.sampling_from(data, self._max_tokens(data, chat, len(ids)))
        if data.get("stream_options") is not None and not oa.typed(data, "stream", (bool,), False):
            raise ApiError(400, "stream_options is only allowed when stream is true", param="stream_options")
        try:
            self.engine.validate(ids, params)
        except ContextTooLong as exc:
            raise ApiError(400, str(exc), param="max_tokens", code="context_length_exceeded") from None
        return ids, params

    def submit(self, ids: list[int], params: SamplingParams, chat: bool) -> tuple[Request, asyncio.Queue]:
        """Queue the request on the engine; its events arrive on the returned queue (429 when full)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def on_event(request, text, finished):  # engine thread
            loop.call_soon_threadsafe(queue.put_nowait, (text, finished))

        request_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        request = Request(ids, params, request_id=request_id, on_event=on_event)
        try:
            self.engine.submit(request)
        except QueueFull as exc:
            message = f"the server is busy: {exc}; retry after {RETRY_AFTER_S} s"
            raise ApiError(429, message, code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except EngineFailed:
            raise self.unavailable() from None
        return request, queue

    def unavailable(self) -> ApiError:
        """503: the engine has failed (:attr:`Engine.failure`); the process needs a restart."""
        message = f"the inference engine has failed ({self.engine.failure!r}) and accepts no more requests; "
        return ApiError(503, message + "the service must be restarted", code="engine_failed")

    def failed(self) -> ApiError:
        """500: this request was running or waiting when the engine failed."""
        message = f"the inference engine failed while serving this request: {self.engine.failure!r}"
        return ApiError(500, message, code="engine_failed")

    async def next_event(self, request: Request, queue: asyncio.Queue, deadline: float) -> tuple[str, bool | None]:
        """The request's next ``(text, finished)`` event; at ``deadline`` (the event loop's clock) the
        request is cancelled and ApiError 504 raised."""
        try:
            return await asyncio.wait_for(queue.get(), max(0.0, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            if not request.finished:
                self.engine.cancel(request)
            message = f"the request did not finish within the server's limit of {self.options.request_timeout_s:g} s"
            raise ApiError(504, message, code="timeout") from None

    async def finished(self, http: HttpRequest, request: Request, queue: asyncio.Queue, deadline: float) -> bool:
        """Wait until the request has finished (True), or cancel it when the client disconnects first
        (False) or at ``deadline`` (ApiError 504)."""

        async def watch():  # the body has been read: the next message is the client's disconnect
            while (await http.receive())["type"] != "http.disconnect":
                pass
            self.gone(request, queue)

        watcher = asyncio.create_task(watch())
        try:
            while True:
                _, done = await self.next_event(request, queue, deadline)
                if done is not False:  # True: finished; None: the client went away
                    return bool(done)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def gone(self, request: Request, queue: asyncio.Queue) -> None:
        """The client went away: cancel its request, and wake whoever waits for its events."""
        if not request.finished:
            self.engine.cancel(request)
        queue.put_nowait(("", None))

    @staticmethod
    def usage(request: Request) -> dict:
        p, c = len(request.prompt_ids), len(request.output_ids)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def logged(self, request: Request) -> None:
        first = request.token_times[0] - request.arrival if request.token_times else None
        fields = {"event": "finished", "id": request.request_id, "finish_reason": request.finish_reason}
        fields |= {**self.usage(request), "ttft_ms": round(first * 1000, 3) if first is not None else None}
        log.info("finished", extra={"fields": fields})

    async def answer(self, chat: bool, http: HttpRequest) -> Response:
        try:  # the serving package's reader: a body over the limit is refused before it is all read
            limits = self.options.max_body_bytes, self.options.body_timeout_s
            body = await receive_body(http.scope, http.receive, *limits)
        except BadRequest as exc:
            code = {413: "body_too_large", 408: "timeout"}.get(exc.status)
            raise ApiError(exc.status, exc.message, code=code) from None
        except ClientGone:
            return Response(status_code=499)  # nobody to answer ("client closed request")
        if self.engine.failure is not None:
            raise self.unavailable()
        data = json_object(body, ApiError)  # the serving package's parser, raising this API's errors
        ids, params = self.prepare(data, chat)
        stream = oa.typed(data, "stream", (bool,), False)
        include_usage = bool((oa.typed(data, "stream_options", (dict,), {}) or {}).get("include_usage", False))
        request, queue = self.submit(ids, params, chat)
        deadline = asyncio.get_running_loop().time() + self.options.request_timeout_s
        head = {"id": request.request_id, "created": int(time.time()), "model": self.options.name}
        if stream:
            return self.streamed(chat, head, request, queue, include_usage, deadline)
        if not await self.finished(http, request, queue, deadline):
            return Response(status_code=499)  # cancelled: nobody to answer ("client closed request")
        self.logged(request)
        if request.finish_reason == "error":
            raise self.failed()
        choice = {"index": 0, "finish_reason": request.finish_reason, "logprobs": None}
        choice |= {"message": {"role": "assistant", "content": request.text}} if chat else {"text": request.text}
        body = {**head, "object": "chat.completion" if chat else "text_completion", "choices": [choice]}
        return Response(orjson.dumps({**body, "usage": self.usage(request)}), media_type="application/json")

    def streamed(self, chat: bool, head: dict, request: Request, queue: asyncio.Queue, include_usage: bool, deadline):
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(text: str, finish: str | None, first: bool = False) -> bytes:
            if chat:
                delta = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            return sse({**head, "object": obj, "choices": [choice]})

        def error_event(error: ApiError) -> bytes:  # as vLLM does: an error event, then [DONE]
            return sse({"error": {"message": error.message, "type": error.kind, "param": None, "code": error.code}})

        async def events():
            if chat:
                yield chunk("", None, first=True)
            while True:
                try:
                    text, finished = await self.next_event(request, queue, deadline)
                except ApiError as timeout:
                    yield error_event(timeout) + sse(b"[DONE]")
                    return
                if finished is None:  # the client went away
                    return
                if finished:
                    break
                yield chunk(text, None)
            self.logged(request)
            if request.finish_reason == "error":
                yield error_event(self.failed()) + sse(b"[DONE]")
                return
            yield chunk(text, request.finish_reason)
            if include_usage:
                yield sse({**head, "object": obj, "choices": [], "usage": self.usage(request)})
            yield sse(b"[DONE]")

        return EventStream(events(), lambda: self.gone(request, queue))


def create_app(engine: Engine, options: ServerOptions | None = None) -> FastAPI:
    """The FastAPI application serving ``engine``."""
    options = options or ServerOptions()
    api, created = _Completions(engine, options), int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        """The engine's thread started (unless ``options.start_engine`` is False) and stopped."""
        if options.start_engine:
            engine.start()
        ready = {"event": "ready", "model": options.name, "slots": engine.slots, "scheduler": engine.scheduler}
        log.info("ready", extra={"fields": {**ready, "max_len": engine.max_len}})
        yield
        if options.start_engine:
            engine.stop()
        log.info("stopped", extra={"fields": {"event": "stopped", **engine.load()}})

    app = FastAPI(title="Tang poems: an OpenAI-compatible completion service", version="1", lifespan=lifespan)
    if options.api_key:
        app.add_middleware(ApiKeyCheck, key=options.api_key)

    @app.exception_handler(ApiError)
    async def api_error(request: HttpRequest, exc: ApiError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: HttpRequest, exc: StarletteHTTPException):
        return ApiError(exc.status_code, str(exc.detail)).response()

    @app.get("/health", summary="Liveness: 200, or 503 once the engine has failed")
    async def health():
        if engine.failure is not None:
            body = {"status": "unhealthy", "error": f"the inference engine failed: {engine.failure!r}"}
            return Response(orjson.dumps(body), status_code=503, media_type="application/json")
        return {"status": "ok"}

    @app.get("/stats", summary="Engine load: running and waiting requests, counters")
    async def stats():
        return engine.load()

    model = {"id": options.name, "object": "model", "created": created, "owned_by": "maas-course"}
    model["max_model_len"] = engine.max_len

    @app.get("/v1/models", summary="The served model (OpenAI list format)")
    async def models():
        return {"object": "list", "data": [model]}

    @app.get("/v1/models/{model_id:path}", summary="One model by its id (404 for any other than the served one)")
    async def model_by_id(model_id: str):
        if model_id != options.name:
            raise no_such_model(model_id, options.name)
        return model

    @app.post("/v1/completions", summary="Continue a poem (OpenAI completions API)")
    async def completions(http: HttpRequest):
        return await api.answer(False, http)

    @app.post("/v1/chat/completions", summary="Continue a poem in a chat (OpenAI chat completions API)")
    async def chat_completions(http: HttpRequest):
        return await api.answer(True, http)

    return app
