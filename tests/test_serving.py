"""The model service (helpers.serving) and its load generator (helpers.serving.loadtest).

The service runs as a real subprocess on a free port of 127.0.0.1, serving a small, seeded,
untrained CNN exported with its preprocessing. Nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import serving
from helpers.serving import experiments, loadtest, protocol

pytestmark = pytest.mark.timeout(120)

MAX_BODY_BYTES = 2 * 2**20
MAX_INSTANCES = 64
LIMITS = ("--max-body-bytes", str(MAX_BODY_BYTES), "--max-instances", str(MAX_INSTANCES), "--body-timeout", "1")
PLACEHOLDER = "http://127.0.0.1:1/v1/models/cifar10"
BAD_CASES = [case[0] for case in loadtest.bad_requests(PLACEHOLDER, MAX_BODY_BYTES, MAX_INSTANCES)]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def expected(exported, images):
    model, _ = exported
    return np.asarray(model.predict(images, verbose=0))


@pytest.fixture(scope="module")
def service(exported):
    _, paths = exported
    with serving.running_service(paths["saved_model"], max_batch_size=16, max_wait_ms=2, extra_args=LIMITS) as running:
        yield running


def post(service, body: bytes):
    return loadtest.send("POST", f"{service.model_url}:predict", body)


def body_never_sent(service) -> tuple[int, dict]:
    """POST :predict with headers that promise 100 bytes of body, then nothing: (status, JSON reply)."""
    host, port = service.url.removeprefix("http://").split(":")
    path = service.model_url.split(service.url, 1)[1]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[: int(re.search(rb"content-length: (\d+)", head, re.I).group(1))])


@pytest.mark.slow
def test_a_body_that_never_arrives_gets_408_and_the_service_goes_on(service, images, expected):
    status, reply = body_never_sent(service)
    assert status == 408 and "did not arrive within 1 s" in reply["error"]
    status, reply = post(service, loadtest.encode_request(images[:1]))
    assert status == 200


def test_export_writes_keras_file_and_saved_model(exported):
    _, paths = exported
    assert paths["keras"].suffix == ".keras" and paths["keras"].is_file()
    assert (paths["saved_model"] / "saved_model.pb").is_file()
    assert paths["saved_model"].name == "1"  # a numbered version folder, as TensorFlow Serving expects


def test_status_metadata_health_and_openapi(service):
    status, reply = loadtest.send("GET", service.model_url)
    assert status == 200 and reply["model_version_status"][0]["state"] == "AVAILABLE"
    status, reply = loadtest.send("GET", f"{service.model_url}/metadata")
    signature = reply["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and signature["inputs"]["image"]["dtype"] == "DT_UINT8"
    assert loadtest.send("GET", f"{service.url}/healthz") == (200, {"status": "ok", "model": "cifar10"})
    status, schema = loadtest.send("GET", f"{service.url}/openapi.json")
    assert status == 200 and "/v1/models/{name}:predict" in schema["paths"]
    assert service.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("encoding", loadtest.ENCODINGS)
def test_predictions_match_in_process(service, images, expected, encoding):
    status, reply = post(service, loadtest.encode_request(images[:20], encoding))
    assert status == 200
    np.testing.assert_allclose(np.asarray(reply["predictions"]), expected[:20], rtol=1e-4, atol=1e-5)


def test_columnar_format_answers_with_outputs(service, images, expected):
    status, reply = post(service, json.dumps({"inputs": images[:2].tolist()}).encode())
    assert status == 200
    np.testing.assert_allclose(np.asarray(reply["outputs"]), expected[:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gets_a_4xx_with_a_message_and_the_service_keeps_serving(service, images, expected, case):
    cases = {c[0]: c[1:] for c in loadtest.bad_requests(service.model_url, MAX_BODY_BYTES, MAX_INSTANCES)}
    method, url, body, expected_status = cases[case]
    status, reply = loadtest.send(method, url, body)
    assert status == expected_status, reply
    assert 400 <= status < 500 and reply["error"], reply
    status, reply = post(service, loadtest.encode_request(images[:1]))
    assert status == 200
    np.testing.assert_allclose(reply["predictions"], expected[:1], rtol=1e-4, atol=1e-5)


def test_a_chunked_body_over_the_limit_is_refused(service):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 2**16 + 2):
            yield b" " * 2**16

    import httpx

    response = httpx.post(f"{service.model_url}:predict", content=chunks(), timeout=30)
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_concurrent_clients_each_get_their_own_answers(service, images, expected):
    import httpx

    async def one(client, i):
        idx = [i % 64, (7 * i + 3) % 64][: 1 + i % 2]  # one or two images, different per client
        response = await client.post(
            f"{service.model_url}:predict", content=loadtest.encode_request(images[idx], "b64" if i % 3 else "json")
        )
        return idx, response.status_code, response.json()

    async def all_clients():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=48)) as client:
            return await asyncio.gather(*(one(client, i) for i in range(96)))

    for idx, status, reply in asyncio.run(all_clients()):
        assert status == 200
        np.testing.assert_allclose(reply["predictions"], expected[idx], rtol=1e-4, atol=1e-5)


def test_a_short_concurrent_load_finishes_without_errors(service, images):
    bodies = loadtest.request_bodies(images, 1, 300, "json")
    result = loadtest.run_load(f"{service.model_url}:predict", bodies, concurrency=16, warmup=16)
    assert result.errors == 0, result.first_error
    assert result.requests == 300 and np.all(result.latencies_ms > 0)
    row = result.row()
    assert row["p50 ms"] <= row["p95 ms"] <= row["p99 ms"]
    stats = loadtest.service_stats(service.url)
    assert stats["images"] >= 300 and stats["in_flight"] == 0


@pytest.mark.slow
def test_graceful_shutdown_answers_the_request_in_flight(exported, images, expected):
    """A lone request waits out a 3 s batching window; SIGTERM arrives meanwhile; it is still answered."""
    _, paths = exported
    service = serving.Service(paths["keras"], max_wait_ms=3000, extra_args=LIMITS)
    try:
        service.wait_until_ready()
        answer = {}

        def client():
            answer["reply"] = loadtest.send(
                "POST", f"{service.model_url}:predict", loadtest.encode_request(images[:3]), timeout=60
            )

        thread = threading.Thread(target=client)
        thread.start()
        deadline = time.monotonic() + 30
        while loadtest.service_stats(service.url)["in_flight"] == 0:  # the request is in the batcher
            assert time.monotonic() < deadline, "the request never reached the batcher"
            time.sleep(0.02)
        assert service.stop() == 0  # SIGTERM, then wait: a clean exit
        thread.join(timeout=30)
    finally:
        service.stop()
    status, reply = answer["reply"]
    assert status == 200
    np.testing.assert_allclose(reply["predictions"], expected[:3], rtol=1e-4, atol=1e-5)
    events = [entry.get("event") for entry in service.logs]
    assert events.index("listening") < events.index("ready") < events.index("stopped")
    assert all("time" in entry and "level" in entry for entry in service.logs if entry.get("event"))


@pytest.mark.slow
def test_through_fastapi_the_service_answers_alike(exported, images, expected):
    """``--through-fastapi`` (no fast path): the same predictions and the same refusals."""
    _, paths = exported
    extra = (*LIMITS, "--through-fastapi", "--max-connections", "3")
    with serving.running_service(paths["saved_model"], max_batch_size=16, max_wait_ms=2, extra_args=extra) as plain:
        for encoding in loadtest.ENCODINGS:
            status, reply = post(plain, loadtest.encode_request(images[:5], encoding))
            assert status == 200
            np.testing.assert_allclose(reply["predictions"], expected[:5], rtol=1e-4, atol=1e-5)
        good = ("POST", f"{plain.model_url}:predict", loadtest.encode_request(images[:1]))
        for row in loadtest.refusals(loadtest.bad_requests(plain.model_url, MAX_BODY_BYTES, MAX_INSTANCES), good):
            assert row["status"] == row["expected"] and row["message"] and row["next good request"] == 200, row
        status, reply = body_never_sent(plain)
        assert status == 408 and "did not arrive within 1 s" in reply["error"]
        # the connection cap: three idle connections are open, so a fourth gets 503; once they close, 200
        host, port = plain.url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        try:
            time.sleep(0.5)  # let the server accept them (an order, not a timing assertion)
            assert post(plain, loadtest.encode_request(images[:1]))[0] == 503
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 30
        while (status := post(plain, loadtest.encode_request(images[:1]))[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200


@pytest.mark.slow
def test_terminate_signals_once_so_the_shutdown_stays_graceful(exported):
    """terminate() then stop(), as the notebook does for several services: one SIGTERM, exit status 0."""
    _, paths = exported
    service = serving.Service(paths["keras"], extra_args=LIMITS)
    try:
        service.wait_until_ready()
        service.terminate()
        service.terminate()
    finally:
        code = service.stop()
    assert code == 0
    assert [e.get("event") for e in service.logs].count("stopped") == 1


@pytest.mark.slow
def test_the_command_line_refuses_a_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "helpers.serving", "--model", str(tmp_path / "nothing.keras"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "no model at" in result.stderr


# --------------------------------------------------------------------------------------------
# the batcher and the request decoder, in-process


def run_batcher(sizes, *, enabled=True, max_batch_size=64, max_wait_s=1.0):
    """Submit one request per size at once; return the batch sizes the model saw and the threads it ran on."""
    seen, threads = [], set()

    def predict(x):
        seen.append(len(x))
        threads.add(threading.get_ident())
        return x.reshape(len(x), -1)[:, :2].astype(np.float32)

    async def main():
        batcher = serving.Batcher(predict, max_batch_size, max_wait_s, enabled)
        batcher.start()
        requests = [np.full((n, 32, 32, 3), i, np.uint8) for i, n in enumerate(sizes)]
        outputs = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        for i, (request, out) in enumerate(zip(requests, outputs)):
            assert out.shape == (len(request), 2) and np.all(out == i)  # each got its own rows
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    return seen, threads, loop_thread


def test_requests_arriving_together_run_as_one_batch_off_the_event_loop():
    seen, threads, loop_thread = run_batcher([1] * 10 + [3], max_wait_s=0.2)
    assert seen == [13]
    assert loop_thread not in threads


def test_a_batch_never_exceeds_the_limit_and_requests_are_not_split():
    seen, _, _ = run_batcher([3, 3, 3, 5, 20], max_batch_size=8, max_wait_s=0.05)
    assert seen == [6, 8, 20]  # 3+3, then 3+5, then the oversized request alone


def test_without_batching_each_request_is_its_own_call():
    seen, _, _ = run_batcher([1, 2, 3], enabled=False)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{", 400, "malformed JSON"),
        (b"   ", 400, "empty"),
        (json.dumps({"instances": [[[[True] * 3] * 32] * 32]}).encode(), 400, "booleans"),
        (json.dumps({"instances": [[[[1] * 3] * 32] * 32], "extra": 1}).encode(), 400, "unknown field"),
        (
            json.dumps(
                {"instances": [{"b64": base64.b64encode(bytes(3072)).decode()}, [[[0] * 3] * 32] * 32]}
            ).encode(),
            400,
            "mixed",
        ),
        (json.dumps({"instances": [[[[2**70] * 3] * 32] * 32]}).encode(), 400, ""),
    ],
)
def test_decoder_refusals(body, status, words):
    with pytest.raises(protocol.BadRequest) as caught:
        protocol.decode_predict_request(body)
    assert caught.value.status == status and words in caught.value.message


def test_decoder_accepts_both_encodings_alike():
    image = np.arange(3072, dtype=np.int64).reshape(32, 32, 3) % 256
    as_lists, key = protocol.decode_predict_request(json.dumps({"instances": [image.tolist()]}).encode())
    as_b64, _ = protocol.decode_predict_request(loadtest.encode_request(image[None].astype(np.uint8), "b64"))
    assert key == "predictions" and as_lists.dtype == np.uint8
    np.testing.assert_array_equal(as_lists, as_b64)
    np.testing.assert_array_equal(as_lists[0], image)


def test_ratios_are_read_within_each_turn():
    import pandas as pd

    runs = pd.DataFrame(
        [
            {"repeat": r, "encoding": "b64", "service": name, "requests/s": rps}
            for r, values in ((1, {"off": 100, "on": 450}), (2, {"off": 50, "on": 200}))
            for name, rps in values.items()
        ]
    )
    gain = experiments.ratios(runs, "on", "off")
    assert list(gain.loc["b64"]) == [4.5, 4.0]  # per turn, not 650 / 150


def test_request_costs_names_every_part_and_measures_them():
    calls = []

    def predict(x):
        calls.append(len(x))
        time.sleep(0.001 + 0.0001 * len(x))
        return np.zeros((len(x), 10), np.float32)

    images = np.zeros((8, 32, 32, 3), np.uint8)
    costs = loadtest.request_costs(predict, images, batch_size=16, seconds=0.05)
    assert set(costs) == {"decode json", "decode b64", "model, 1 image", "model per image, batch of 16"}
    assert costs["model, 1 image"] >= 1.0 and 0.1 <= costs["model per image, batch of 16"] < costs["model, 1 image"]
    assert costs["decode json"] > 0 and costs["decode b64"] > 0 and set(calls) == {1, 16}
