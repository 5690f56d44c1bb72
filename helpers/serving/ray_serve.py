"""The model service on Ray Serve, replicas on several nodes: the deployment :class:`Classifier`, and :func:`build_app`
that ``serve run``/``serve deploy`` and a KubeRay ``RayService`` import (``deploy/ray/``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time

import numpy as np
import orjson
from starlette.responses import Response

from helpers.processes import free_ports
from helpers.serving import protocol
from helpers.serving.batcher import BatchStats
from helpers.serving.model import Predictor
from helpers.serving.protocol import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INSTANCES, DEFAULT_NAME
from helpers.serving.ray_cluster import NAMESPACE, REPLICA_LOG, import_serve, quiet_ray_loggers

serve = import_serve()  # `from ray import serve`, quietly in a notebook

APP_NAME = "classifier"
DEPLOYMENT_NAME = "Classifier"
QUIET_LOGS = {"log_level": "WARNING", "enable_access_log": False}  # the replicas', the proxies' and the controller's
#: the deployment's options (as ``deploy/ray/serve_config.yaml``)
OPTIONS = {
    "name": DEPLOYMENT_NAME,
    "max_ongoing_requests": 128,  # a batch never holds more (Ray's default is 5)
    "ray_actor_options": {"num_cpus": 1.0},
    "health_check_period_s": 2.0,
    "health_check_timeout_s": 10.0,
    "graceful_shutdown_timeout_s": 5.0,
    "logging_config": QUIET_LOGS,
    "max_replicas_per_node": 1,
}


@serve.deployment(**OPTIONS)
class Classifier:
    """One replica: the model, ``@serve.batch`` (counting images) and the hand-built service's answers,
    over HTTP (``__call__``) or a ``DeploymentHandle`` (:meth:`predict_body`)."""

    def __init__(
        self,
        model_path: str,
        name: str = DEFAULT_NAME,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ):
        import ray

        self.predictor = Predictor(model_path)
        self.name, self.max_batch_size = name, max_batch_size
        self.max_body_bytes, self.max_instances = max_body_bytes, max_instances
        self.predict_path = f"/v1/models/{name}:predict"
        self.stats = BatchStats()
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.predict_batch.set_max_batch_size(max_batch_size)  # the decorator's values are defaults
        self.predict_batch.set_batch_wait_timeout_s(max_wait_ms / 1000)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.node = ray.get_runtime_context().get_node_id()
        try:  # say once where this replica runs
            self.log = ray.get_actor(REPLICA_LOG, namespace=NAMESPACE)
            self.log.register.remote(self.replica, self.node, os.getpid(), time.time())
        except ValueError:  # deployed without a ReplicaLog (serve run, a RayService)
            self.log = None

    async def check_health(self) -> None:
        """Serve replaces the replica if this fails or takes over ``health_check_timeout_s``: the model must answer."""
        probe = np.zeros((1, 32, 32, 3), np.uint8)
        await asyncio.get_running_loop().run_in_executor(self._model_thread, self.predictor.predict, probe)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005, batch_size_fn=lambda batch: sum(map(len, batch)))
    async def predict_batch(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        images = batch[0] if len(batch) == 1 else np.concatenate(batch)
        outputs = await self._run_model(images, len(batch))
        return np.split(outputs, np.cumsum([len(x) for x in batch])[:-1])

    async def _run_model(self, images: np.ndarray, requests: int) -> np.ndarray:
        start = time.perf_counter()
        outputs = await asyncio.get_running_loop().run_in_executor(self._model_thread, self.predictor.predict, images)
        self.stats.record(requests, len(images), time.perf_counter() - start)
        return outputs

    async def predict_images(self, images: np.ndarray) -> np.ndarray:
        if len(images) > self.max_batch_size:  # never split a request: it runs alone
            return await self._run_model(images, 1)
        return await self.predict_batch(images)

    def counts(self) -> dict:
        return {"replica": self.replica, "node": self.node, "batches": self.stats.batches, "images": self.stats.images}

    async def predict_body(self, body: bytes, path: str = "") -> tuple[int, bytes]:
        """The ``:predict`` reply ``(status, JSON bytes)`` for one body."""
        return await protocol.predict_reply(self.predict_images, self.max_instances, body, path or self.predict_path)

    async def __call__(self, request):
        status, reply = await self._answer(request.scope, request.receive)
        return Response(reply, status_code=status, media_type="application/json")

    async def _answer(self, scope, receive) -> tuple[int, bytes]:
        path, method, root = scope["path"], scope["method"], scope.get("root_path", "")
        if root and root != "/" and path.startswith(root):
            path = path[len(root) :]
        if method == "POST" and path == self.predict_path:
            answer = await protocol.answer_request(scope, receive, self.predict_body, path, self.max_body_bytes)
            return answer or (499, b"")
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            unknown = protocol.unknown_model(path[len("/v1/models/") : -len(":predict")], self.name)
            status, message = (405, protocol.NEEDS_POST) if method != "POST" else (404, unknown)
        elif method == "GET" and path == f"/v1/models/{self.name}":
            return 200, orjson.dumps({"model_version_status": [protocol.MODEL_VERSION_STATUS]})
        elif method == "GET" and path == "/healthz":
            return 200, orjson.dumps({"status": "ok", "model": self.name})
        else:
            status, message = 404, f"no endpoint {method} {path}; see /v1/models/{self.name}"
        return status, protocol.refusal(path, status, message)

    def __del__(self):  # Serve calls it when it stops a replica gracefully (scaling down, an update)
        if getattr(self, "log", None) is not None:
            self.log.unregister.remote(self.replica, time.time())


class HandleProbe:
    """A Ray actor that sends bodies one at a time through a ``DeploymentHandle``, as Ray's proxy does; ms each."""

    async def latencies_ms(self, bodies: list[bytes], app: str = APP_NAME) -> list[float]:
        handle = serve.get_app_handle(app)
        await handle.predict_body.remote(bodies[0])  # warm
        times = []
        for body in bodies:
            start = time.perf_counter()
            status, _ = await handle.predict_body.remote(body)
            times.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"the replica answered {status} to a good request")
        return times


def handle_latency_ms(bodies: list[bytes], node_id: str, app: str = APP_NAME) -> np.ndarray:
    """Latency (ms) of each body sent by a :class:`HandleProbe` on ``node_id``: Ray's router and replica, no HTTP."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    on_node = NodeAffinitySchedulingStrategy(node_id, soft=False)
    probe = ray.remote(HandleProbe).options(num_cpus=0, scheduling_strategy=on_node).remote()
    try:
        return np.asarray(ray.get(probe.latencies_ms.remote(bodies, app)))
    finally:
        ray.kill(probe)


def deployment_options(
    *,
    num_replicas: int = 1,
    max_ongoing_requests: int = 128,
    replica_cpus: float = 1.0,
    autoscaling: dict | None = None,
) -> dict:
    """:data:`OPTIONS` with what a caller varies; ``autoscaling`` (``autoscaling_config``) replaces ``num_replicas``."""
    options = {**OPTIONS, "max_ongoing_requests": max_ongoing_requests, "ray_actor_options": {"num_cpus": replica_cpus}}
    return options | ({"autoscaling_config": dict(autoscaling)} if autoscaling else {"num_replicas": num_replicas})


def application(
    model_path,
    *,
    name: str = DEFAULT_NAME,
    max_batch_size: int = 64,
    max_wait_ms: float = 5.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    **options,
):
    """The Serve application: :class:`Classifier` with :func:`deployment_options` ``(**options)``, bound to a model."""
    limits = {"max_body_bytes": max_body_bytes, "max_instances": max_instances}
    bound = {"name": name, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, **limits}
    return Classifier.options(**deployment_options(**options)).bind(str(model_path), **bound)


def build_app(args: dict):
    """Builder for ``serve run helpers.serving.ray_serve:build_app model_path=...`` and a ``RayService``:
    :func:`application`'s keywords (command-line strings converted); the config file sets the options."""
    if "model_path" not in args:
        raise ValueError("build_app needs model_path, e.g. model_path=/models/cifar10_served/1")
    types = {"max_batch_size": int, "max_wait_ms": float, "max_body_bytes": int, "max_instances": int}
    kwargs = {key: types.get(key, str)(value) for key, value in args.items() if key != "model_path"}
    return application(args["model_path"], **kwargs)


def deploy(app, *, name: str = APP_NAME, running: int | None = None, timeout: float = 180.0):
    """``serve.run(app)`` at route ``/`` (a rolling update of a running one), then wait for ``running`` replicas."""
    handle = serve.run(app, name=name, route_prefix="/")
    if running is not None:
        wait_for_replicas(running, timeout=timeout, app=name)
    return handle


def start_serve(port: int = 0, *, proxy_location: str = "HeadOnly", host: str = "127.0.0.1") -> str:
    """Start Serve, its HTTP proxy on the head (or ``"EveryNode"``) on ``host:port`` (0: a free one); the head's URL."""
    quiet_ray_loggers()
    port = port or free_ports(1)[0]
    serve.start(proxy_location=proxy_location, http_options={"host": host, "port": port}, logging_config=QUIET_LOGS)
    return f"http://127.0.0.1:{port}"


def replicas(app: str = APP_NAME, deployment: str = DEPLOYMENT_NAME) -> dict[str, int]:
    """The deployment's replicas by state, e.g. ``{"RUNNING": 2, "STARTING": 1}`` ({} when not deployed)."""
    if (status := serve.status().applications.get(app)) is None or deployment not in status.deployments:
        return {}
    return {str(getattr(k, "value", k)): int(v) for k, v in status.deployments[deployment].replica_states.items()}


def wait_for_replicas(
    running: int, *, timeout: float = 180.0, app: str = APP_NAME, deployment: str = DEPLOYMENT_NAME
) -> float:
    """Wait until exactly ``running`` replicas run and none starts or stops; the seconds it took."""
    start = time.monotonic()
    while True:
        states = replicas(app, deployment)
        if states.get("RUNNING", 0) == running and sum(states.values()) == running:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{running} running replicas expected within {timeout:.0f} s; now {states}")
        time.sleep(0.1)


def batch_counts(app: str = APP_NAME, timeout: float = 30.0) -> dict[str, dict]:
    """:meth:`Classifier.counts` of every running replica, by id: calls go, several at once, until each answered."""
    handle = serve.get_app_handle(app)
    running = replicas(app).get("RUNNING", 0)

    def poll() -> dict[str, dict]:
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {running} replicas answered within {timeout:.0f} s")
            for response in [handle.counts.remote() for _ in range(4 * running)]:
                counts = response.result()
                seen[counts["replica"]] = counts
        return seen

    # in a thread: a response's result() refuses to wait in a thread that runs an event loop (a notebook's)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(poll).result()
