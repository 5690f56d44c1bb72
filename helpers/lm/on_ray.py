"""The poem model's OpenAI-compatible service as a Ray Serve application: each replica runs the engine
behind the same API as :mod:`helpers.lm.server`, and Serve's proxy streams its server-sent events.

A stream lives on one replica (its KV cache is there), so it cannot move when that node is lost: the
client retries with the same seed. ``check_health`` fails when the engine has, so that Serve replaces
the replica.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time

from ray import serve

from helpers.lm.openai_api import DEFAULT_MODEL_NAME, ServerOptions
from helpers.lm.serve import build_engine

APP_NAME = "poet"


@serve.deployment(
    max_ongoing_requests=512,  # streams a replica holds at once: its engine's slots and queue decide, not Serve's default 5
    health_check_period_s=2.0,
    health_check_timeout_s=10.0,
    graceful_shutdown_timeout_s=5.0,
    logging_config={"log_level": "WARNING", "enable_access_log": False},
)
@serve.ingress()  # the app is built in each replica, around that replica's engine
class PoetService:
    def __init__(self, checkpoint: str, slots: int = 32, max_waiting: int = 256):
        self.engine = build_engine(checkpoint, slots, "continuous", max_waiting)

    def __serve_build_asgi_app__(self):
        from helpers.lm.server import create_app

        return create_app(self.engine, ServerOptions())  # its lifespan starts and stops the engine's thread

    def check_health(self):
        if self.engine.failure is not None:
            raise RuntimeError(f"the inference engine failed: {self.engine.failure!r}")

    def node(self) -> str:
        """The Ray node this replica runs on (through a handle: where the replicas were placed)."""
        import ray

        return ray.get_runtime_context().get_node_id()


def application(checkpoint, *, num_replicas: int = 1, slots: int = 32, max_waiting: int = 256):
    """The application: ``num_replicas`` replicas of :class:`PoetService`, at most one per node
    (a node's loss then takes one replica), each taking one CPU slot of Ray's."""
    deployment = PoetService.options(
        num_replicas=num_replicas, max_replicas_per_node=1, ray_actor_options={"num_cpus": 1}
    )
    return deployment.bind(str(checkpoint), slots, max_waiting)


def stream_text(base_url: str, body: dict, on_text=None, timeout: float = 120.0) -> tuple[str, bool]:
    """One streamed completion (``body`` without ``stream``): the text received, and whether the
    stream ended with ``data: [DONE]``. A broken connection ends it early; ``on_text(characters)``
    is told how much text has arrived, at each event that brings some."""
    import httpx
    import orjson

    text, done = "", False
    try:
        with httpx.stream("POST", f"{base_url}/v1/completions", json={**body, "stream": True}, timeout=timeout) as r:
            for line in r.iter_lines():
                done = done or line == "data: [DONE]"
                event = orjson.loads(line[6:]) if line.startswith("data: {") else {"choices": []}
                if "error" in event:
                    break
                new = "".join(choice.get("text", "") for choice in event["choices"])
                text += new
                if new and on_text is not None:
                    on_text(len(text))
    except httpx.HTTPError:
        pass  # the connection broke: the text so far is what the client has
    return text, done


def node_loss_during_streams(cluster, base_url: str, seeds, max_tokens: int = 48, fault: str = "kill"):
    """One stream per seed, all at once; once text comes back the worker node is killed (``fault="kill"``) or
    frozen (``"freeze"``, killed after the streams end), and each stream without [DONE] is sent again, same
    seed. A pandas table, a row per seed: characters received, finished, ``ended_s`` (after the fault), and
    whether the second try finished and wrote the same text from the start."""
    import pandas as pd

    first, ended, progress = {}, {}, {seed: 0 for seed in seeds}
    body = {"model": DEFAULT_MODEL_NAME, "prompt": "春", "max_tokens": max_tokens, "ignore_eos": True}

    def one(seed):
        first[seed] = stream_text(base_url, {**body, "seed": seed}, on_text=lambda n: progress.__setitem__(seed, n))
        ended[seed] = time.monotonic()

    captured = io.StringIO()  # what Ray prints when it finds the node dead, kept out of the caller's output
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        threads = [threading.Thread(target=one, args=(seed,)) for seed in seeds]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while not any(progress.values()) and time.monotonic() < deadline:
            time.sleep(0.001)
        [worker] = cluster.workers
        fault_at = time.monotonic()
        getattr(cluster, fault)(worker)
        for thread in threads:
            thread.join(180)
        if fault == "freeze":
            cluster.kill(worker)
        rows = []
        for seed in seeds:
            text, done = first[seed]
            row = {"seed": seed, "received": len(text), "finished": done, "ended_s": ended[seed] - fault_at}
            row |= {"again_finished": None, "same_text": None}  # the second try, when the first did not finish
            if not done:
                again, row["again_finished"] = stream_text(base_url, {**body, "seed": seed})
                row["same_text"] = again.startswith(text) and len(again) > len(text)
            rows.append(row)
        deadline = time.monotonic() + 30
        while "marked dead" not in captured.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)  # until Ray has said so, here
    return pd.DataFrame(rows)
