"""Tests for the OpenAI-compatible service (helpers.lm.server, helpers.lm.serve) on the toy model.

In-process tests drive the ASGI application directly, some with the engine stepped by hand so
that queueing and disconnects are checked without depending on timing. Subprocess tests start
``python -m helpers.lm.serve`` and talk to it with the official ``openai`` client and httpx.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import env

env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), 0)

import lm_toy as toy  # noqa: E402

from helpers.lm.engine import Engine  # noqa: E402
from helpers.lm.serve import Service  # noqa: E402
from helpers.lm.server import ServerOptions, create_app  # noqa: E402
from helpers.lm.train import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tang-poet"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("toy-serve")
    toy.toy_checkpoint(directory, steps=40)
    return directory


@pytest.fixture(scope="module")
def loaded(checkpoint):
    model, tokenizer, _ = load_model(checkpoint)
    return model, tokenizer


@pytest.fixture(scope="module")
def fns(loaded):
    """Compiled functions for one and two slots, shared by the tests that build such an engine (one at a time)."""
    from helpers.lm.engine import DecodeFunctions

    return {n: DecodeFunctions(loaded[0], n) for n in (1, 2)}


@pytest.fixture(scope="module")
def client(loaded):
    """An in-process client of the app, its engine running in a thread (started by the app's lifespan)."""
    from starlette.testclient import TestClient

    engine = Engine(*loaded, slots=4, max_waiting=16)
    with TestClient(create_app(engine, ServerOptions(name=MODEL))) as c:
        yield c


def completion(**kw) -> dict:
    return {"model": MODEL, "prompt": "春", "max_tokens": 8, "seed": 1, **kw}


# ---- refusals -------------------------------------------------------------------------------


BAD = [
    ("/v1/completions", b"{not json", 400, None),
    ("/v1/completions", b"", 400, None),
    ("/v1/completions", b"[1, 2]", 400, None),
    ("/v1/completions", completion(model="gpt-4"), 404, "model"),
    ("/v1/completions", completion(temperature=3.0), 400, "temperature"),
    ("/v1/completions", completion(top_p=0), 400, "top_p"),
    ("/v1/completions", completion(top_k=-5), 400, "top_k"),
    ("/v1/completions", completion(max_tokens=0), 400, "max_tokens"),
    ("/v1/completions", completion(max_tokens="8"), 400, "max_tokens"),
    ("/v1/completions", completion(seed="x"), 400, "seed"),
    ("/v1/completions", completion(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ("/v1/completions", completion(n=2), 400, "n"),
    ("/v1/completions", completion(stream_options={"include_usage": True}), 400, "stream_options"),
    ("/v1/completions", completion(stream=False, stream_options={"include_usage": True}), 400, "stream_options"),
    ("/v1/completions", completion(logprobs=5), 400, "logprobs"),
    ("/v1/completions", completion(frobnicate=1), 400, "frobnicate"),
    ("/v1/completions", completion(prompt=""), 400, "prompt"),
    ("/v1/completions", completion(prompt=[1, 2, 3]), 400, "prompt"),
    ("/v1/completions", completion(prompt="春" * 100), 400, "prompt"),  # longer than the context
    ("/v1/completions", completion(prompt="hello 春"), 400, "prompt"),  # characters outside the vocabulary
    ("/v1/completions", completion(max_tokens=63), 400, "max_tokens"),  # 2 + 63 > 64
    ("/v1/chat/completions", {"model": MODEL, "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": ""}]}, 400, "messages"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "robot", "content": "春"}]}, 400, "messages"),
]


@pytest.mark.unit
@pytest.mark.parametrize("path, body, status, param", BAD)
def test_bad_requests_get_openai_errors_and_the_service_goes_on(client, path, body, status, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    ok = client.post("/v1/completions", json=completion())
    assert ok.status_code == 200 and ok.json()["choices"][0]["text"] is not None


@pytest.mark.unit
def test_a_body_over_the_limit_is_refused_with_413_and_the_service_goes_on(loaded, fns):
    """Read by the serving package's size-limited reader: told by Content-Length, or counted as it streams in."""
    from starlette.testclient import TestClient

    engine = Engine(*loaded, slots=1, functions=fns[1])
    with TestClient(create_app(engine, ServerOptions(name=MODEL, max_body_bytes=256))) as c:
        big = json.dumps(completion(prompt="春" * 200)).encode()
        for content in (big, iter([big[:200], big[200:]])):  # with a Content-Length, then chunked
            r = c.post("/v1/completions", content=content, headers={"content-type": "application/json"})
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "body_too_large" and "256" in r.json()["error"]["message"]
        assert c.post("/v1/completions", json=completion()).status_code == 200


@pytest.mark.unit
def test_unknown_characters_are_named_in_the_refusal(client):
    r = client.post("/v1/completions", json=completion(prompt="春xy"))
    assert r.json()["error"]["code"] == "unknown_characters" and "'xy'" in r.json()["error"]["message"]


@pytest.mark.unit
def test_models_usage_and_stop(client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == MODEL and models["data"][0]["max_model_len"] == 64
    r = client.post("/v1/completions", json=completion(max_tokens=20, ignore_eos=True)).json()
    assert r["object"] == "text_completion" and r["choices"][0]["finish_reason"] == "length"
    assert r["usage"] == {"prompt_tokens": 2, "completion_tokens": 20, "total_tokens": 22}
    text = r["choices"][0]["text"]
    stop = text[3:5]
    cut = client.post("/v1/completions", json=completion(max_tokens=20, ignore_eos=True, stop=stop)).json()
    assert cut["choices"][0]["text"] == text[: text.find(stop)] and cut["choices"][0]["finish_reason"] == "stop"


@pytest.mark.unit
def test_streams_are_server_sent_events_ending_with_done(client):
    body = completion(max_tokens=12, stream=True, ignore_eos=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 12
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    alone = client.post("/v1/completions", json=completion(max_tokens=12, ignore_eos=True)).json()
    assert text == alone["choices"][0]["text"]


# ---- queueing and disconnects, with the engine stepped by hand --------------------------------


def _scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


class AsgiCall:
    """One request to the app through raw ASGI messages; the client can disconnect at will."""

    def __init__(self, app, path: str, body: dict):
        self.body = json.dumps(body).encode()
        self.messages: list[dict] = []
        self.gone = asyncio.Event()
        self._sent = False
        self.task = asyncio.create_task(app(_scope(path), self.receive, self.send))

    async def receive(self):
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        self.messages.append(message)

    @property
    def status(self):
        return next((m["status"] for m in self.messages if m["type"] == "http.response.start"), None)

    @property
    def body_text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body").decode()


async def _until(condition):
    """Yield to the event loop until ``condition()`` holds (no clock involved)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_a_client_that_disconnects_mid_stream_frees_its_slot_at_the_next_step(loaded, fns):
    engine = Engine(*loaded, slots=2, functions=fns[2])
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False))

    async def scenario():
        call = AsgiCall(app, "/v1/completions", completion(max_tokens=40, stream=True, ignore_eos=True))
        await _until(lambda: engine.load()["waiting"] == 1)
        engine.step()  # prefill (first token) and one decode step (second token)
        await _until(lambda: "data: " in call.body_text)
        running = next(r for r in engine.active if r is not None)
        assert engine.load()["running"] == 1 and len(running.output_ids) == 2
        call.gone.set()  # the client goes away
        await _until(lambda: running.cancelled)
        engine.step()
        assert engine.load()["running"] == 0 and running.finish_reason == "abort"
        assert len(running.output_ids) == 2 and engine.stats["finished_abort"] == 1
        await call.task
        assert "[DONE]" not in call.body_text

    asyncio.run(scenario())


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_a_client_that_leaves_a_whole_reply_frees_its_slot_at_the_next_step(loaded, fns):
    engine = Engine(*loaded, slots=2, functions=fns[2])
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False))

    async def scenario():
        call = AsgiCall(app, "/v1/completions", completion(max_tokens=40, ignore_eos=True))
        await _until(lambda: engine.load()["waiting"] == 1)
        engine.step()
        running = next(r for r in engine.active if r is not None)
        assert engine.load()["running"] == 1 and len(running.output_ids) == 2
        call.gone.set()  # the client goes away before its reply
        await _until(lambda: running.cancelled)
        engine.step()
        assert engine.load()["running"] == 0 and running.finish_reason == "abort"
        assert len(running.output_ids) == 2 < running.params.max_tokens
        await call.task
        assert call.status == 499 and engine.stats["finished_abort"] == 1

    asyncio.run(scenario())


@pytest.mark.unit
@pytest.mark.timeout(120)
@pytest.mark.parametrize("stream", [False, True])
def test_a_request_past_its_deadline_is_cancelled_and_answered_504(loaded, fns, stream):
    """The engine never steps (nobody drives it): at the server's request timeout the request is
    cancelled (its slot freed at the next step) and the client told so: 504, or on a stream an
    error event and [DONE]."""
    engine = Engine(*loaded, slots=2, functions=fns[2])
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False, request_timeout_s=0.2))

    async def scenario():
        call = AsgiCall(app, "/v1/completions", completion(max_tokens=40, stream=stream))
        await _until(lambda: engine.load()["waiting"] == 1)
        await call.task  # returns at the deadline, with nothing generated
        [request] = list(engine.waiting) or [r for r in engine.active if r is not None]
        assert request.cancelled
        engine.step()
        assert engine.load() | {"running": 0, "waiting": 0} == engine.load() and request.finish_reason == "abort"
        if stream:
            assert call.status == 200 and '"code":"timeout"' in call.body_text.replace(" ", "")
            assert call.body_text.rstrip().endswith("data: [DONE]")
        else:
            assert call.status == 504 and json.loads(call.body_text)["error"]["code"] == "timeout"

    asyncio.run(scenario())


@pytest.mark.unit
def test_a_body_that_never_arrives_gets_408(loaded):
    """The headers promise a body that never comes: 408 after the server's body timeout."""
    engine = Engine(*loaded, slots=1)
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False, body_timeout_s=0.1))
    sent = []

    async def receive():
        await asyncio.Event().wait()  # nothing, ever

    async def send(message):
        sent.append(message)

    scope = _scope("/v1/completions") | {
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"50")]
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    assert sent[0]["status"] == 408
    error = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert error["code"] == "timeout" and "did not arrive within 0.1 s" in error["message"]


@pytest.mark.unit
def test_a_model_is_retrieved_by_its_id_and_others_are_not_found(client):
    r = client.get(f"/v1/models/{MODEL}")
    assert r.status_code == 200 and r.json()["id"] == MODEL and r.json()["object"] == "model"
    for path in ("/v1/models/gpt-4", "/v1/models/org/model"):
        r = client.get(path)
        assert r.status_code == 404
        error = r.json()["error"]
        assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "model", "model_not_found")
    r = client.post("/v1/completions", json=completion(model="gpt-4"))
    assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["error"]["code"] == "model_not_found"


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_an_engine_failure_answers_5xx_and_turns_health_to_503(loaded, fns, monkeypatch):
    """The engine's step raises: the request in flight gets 500, /health and new requests 503."""
    from starlette.testclient import TestClient

    engine = Engine(*loaded, slots=2, functions=fns[2])
    monkeypatch.setattr(engine, "_step", lambda: 1 / 0)  # the step raises
    with TestClient(create_app(engine, ServerOptions(name=MODEL))) as c:
        assert c.get("/health").status_code == 200
        r = c.post("/v1/completions", json=completion())  # returns once the engine has failed it
        assert r.status_code == 500 and engine.failure is not None
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "engine_failed") and "ZeroDivision" in error[
            "message"
        ]
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        for body in (completion(), completion(stream=True)):
            r = c.post("/v1/completions", json=body)
            assert r.status_code == 503 and r.json()["error"]["code"] == "engine_failed"


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_a_stream_whose_engine_fails_ends_with_an_error_event(loaded, fns):
    engine = Engine(*loaded, slots=2, functions=fns[2])
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False))

    async def scenario():
        call = AsgiCall(app, "/v1/completions", completion(max_tokens=40, stream=True, ignore_eos=True))
        await _until(lambda: engine.load()["waiting"] == 1)
        engine.step()
        engine._fail(RuntimeError("device lost"))  # what the engine's thread does when a step raises
        await call.task
        lines = [line for line in call.body_text.split("\n") if line]
        assert lines[-1] == "data: [DONE]" and json.loads(lines[-2][6:])["error"]["code"] == "engine_failed"

    asyncio.run(scenario())


@pytest.mark.unit
def test_an_api_key_guards_v1_and_leaves_health_open(loaded, fns, client):
    from starlette.testclient import TestClient

    engine = Engine(*loaded, slots=2, functions=fns[2])
    with TestClient(create_app(engine, ServerOptions(name=MODEL, api_key="s3cret"))) as c:
        assert c.get("/health").status_code == 200
        for headers, code in (({}, None), ({"Authorization": "Bearer wrong"}, "invalid_api_key")):
            for r in (
                c.get("/v1/models", headers=headers),
                c.post("/v1/completions", json=completion(), headers=headers),
            ):
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
                assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["error"]["code"] == code
        good = {"Authorization": "Bearer s3cret"}
        assert c.get("/v1/models", headers=good).status_code == 200
        assert c.post("/v1/completions", json=completion(), headers=good).status_code == 200
    assert client.get("/v1/models").status_code == 200  # no key set: none needed


@pytest.mark.unit
def test_the_command_line_passes_the_api_key_and_the_limits_on(monkeypatch):
    from helpers.lm import serve

    seen = {}
    monkeypatch.setattr(serve, "serve", lambda *args, **kw: seen.update(kw))
    argv = ["--checkpoint", "ckpt", "--api-key", "s3cret", "--body-timeout", "2", "--request-timeout", "30"]
    assert serve.main([*argv, "--max-connections", "7"]) == 0
    options = seen["options"]
    assert (options.api_key, options.body_timeout_s, options.request_timeout_s) == ("s3cret", 2.0, 30.0)
    assert seen["max_connections"] == 7
    assert serve.main(["--checkpoint", "ckpt"]) == 0 and seen["options"] == ServerOptions()


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_a_full_queue_answers_429_with_retry_after(loaded, fns):
    engine = Engine(*loaded, slots=1, max_waiting=1, functions=fns[1])
    app = create_app(engine, ServerOptions(name=MODEL, start_engine=False))

    async def scenario():
        first = AsgiCall(app, "/v1/completions", completion())
        await _until(lambda: engine.load()["waiting"] == 1)
        second = AsgiCall(app, "/v1/completions", completion())
        await second.task
        assert second.status == 429
        headers = dict(next(m for m in second.messages if m["type"] == "http.response.start")["headers"])
        assert headers[b"retry-after"] == b"1"
        assert json.loads(second.body_text)["error"]["type"] == "rate_limit_error"
        engine.run_until_idle()  # the first is served
        await first.task
        assert first.status == 200 and json.loads(first.body_text)["usage"]["completion_tokens"] >= 1

    asyncio.run(scenario())


# ---- the service as a subprocess ------------------------------------------------------------


@pytest.fixture(scope="module")
def service(checkpoint):
    s = Service(checkpoint, name=MODEL, slots=8)  # on 127.0.0.1, a free port
    try:
        yield s.wait_until_ready(180.0)
    finally:
        s.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_official_openai_client_works_unchanged(service):
    from openai import BadRequestError, NotFoundError, OpenAI

    client = OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(NotFoundError):
        client.models.retrieve("gpt-4")
    c = client.completions.create(model=MODEL, prompt="春", max_tokens=10, seed=3, temperature=0.8)
    assert c.choices[0].finish_reason in ("stop", "length") and c.usage.prompt_tokens == 2
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(
            model=MODEL, prompt="春", max_tokens=10, seed=3, temperature=0.8, stream=True
        )
        if chunk.choices
    )
    assert streamed == c.choices[0].text

    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "月"}]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, seed=5, top_p=0.9)
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens >= 1
    parts = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=10, seed=5, top_p=0.9, stream=True
        )
        if chunk.choices
    ]
    assert "".join(parts) == chat.choices[0].message.content

    with pytest.raises(NotFoundError):
        client.completions.create(model="gpt-4", prompt="春", max_tokens=4)
    with pytest.raises(BadRequestError):
        client.completions.create(model=MODEL, prompt="春", max_tokens=4, temperature=5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_concurrent_streams_match_what_each_seed_gives_alone(service):
    import httpx

    def stream(seed: int) -> str:
        body = completion(max_tokens=30, seed=seed, stream=True, temperature=1.0)
        text, last = [], None
        with httpx.stream("POST", f"{service.url}/v1/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line:
                    last = line
                if line.startswith("data: ") and line != "data: [DONE]":
                    text.append(json.loads(line[6:])["choices"][0]["text"])
        assert last == "data: [DONE]"
        return "".join(text)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(stream, range(24)))
    alone = [
        httpx.post(
            f"{service.url}/v1/completions", json=completion(max_tokens=30, seed=s, temperature=1.0), timeout=60
        ).json()["choices"][0]["text"]
        for s in range(24)
    ]
    assert together == alone
    stats = httpx.get(f"{service.url}/stats").json()
    assert stats["running"] == 0 and stats["waiting"] == 0 and stats.get("rejected", 0) == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_load_benchmark_over_http_counts_every_token(service, loaded):
    from helpers.lm import bench

    work = bench.make_workload(toy.toy_corpus(40).test, 6, seed=0, output_range=(3, 8))
    m = bench.run_load_http(service.url, MODEL, work, concurrency=3)
    assert m["completed"] == 6 and m["failed"] == 0
    assert m["output_tokens"] == sum(w.output_tokens for w in work)  # ignore_eos: exact lengths, from usage
    assert m["mean_ttft_ms"] > 0 and m["p99_e2el_ms"] >= m["p50_ttft_ms"]


@pytest.mark.unit
def test_the_service_uses_the_course_process_and_logging_machinery():
    from helpers.lm import serve
    from helpers.processes import Child
    from helpers.serving.app import JsonFormatter

    assert issubclass(serve.Service, Child)
    assert serve.LOG_CONFIG["formatters"]["json"]["()"] is JsonFormatter
    assert serve.LOGGER in serve.LOG_CONFIG["loggers"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_sigterm_stops_the_service_cleanly(service):
    """Last of the subprocess tests: it stops the shared service."""
    assert service.stop() == 0  # one SIGTERM, a graceful exit with status 0
    assert any(e.get("event") == "listening" and e.get("pid") == service.process.pid for e in service.logs)
    assert any(e.get("event") == "stopped" for e in service.logs)


@pytest.mark.slow
def test_command_line_help():
    result = subprocess.run(
        [sys.executable, "-m", "helpers.lm.serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0
    for option in ("--checkpoint", "--port", "--slots", "--scheduler", "--max-waiting", "--api-key", "127.0.0.1"):
        assert option in result.stdout
