"""The model service on Ray Serve: the same ``:predict`` contract, replicas on several nodes.

    cluster = ray_cluster.LocalCluster(nodes=2)  # two Ray nodes on this machine, 127.0.0.1 only
    url = start_serve()                          # Ray's HTTP proxy on a free port of 127.0.0.1
    deploy(application("cifar10_served/1", num_replicas=2))
    loadtest.run_load(f"{url}/v1/models/cifar10:predict", bodies, 16)   # the course's clients, unchanged
    cluster.shutdown()

:class:`Classifier` is one replica: it loads the exported model (:class:`helpers.serving.Predictor`),
batches requests with ``@serve.batch`` (at most ``max_batch_size`` images per model call, as the
hand-built service does), decodes and refuses requests with :mod:`helpers.serving.protocol`, and
replies with the same JSON. :func:`application` binds it with its deployment options
(:func:`deployment_options`, the same keys that ``deploy/ray/`` lists); :func:`build_app` is the
builder that ``serve run`` and a KubeRay ``RayService`` import; :func:`handle_latency_ms` times
calls without HTTP. The local cluster is :mod:`helpers.serving.ray_cluster`; the failover and
autoscaling experiments are in :mod:`helpers.serving.ray_experiments`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time

import numpy as np
import orjson

from helpers.serving.protocol import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_NAME,
    BadRequest,
    ClientGone,
    decode_predict_request,
    receive_body,
    refusal,
)
from helpers.serving.ray_cluster import BATCH_LOG, NAMESPACE, quiet_ray_loggers

APP_NAME = "classifier"
DEPLOYMENT_NAME = "Classifier"


def _images_in(batch: list) -> int:
    return sum(len(images) for images in batch)


def _loopback_replica_port() -> None:
    """Ray Serve 2.60 opens each replica's gRPC port for calls between deployments on every network
    interface, with no setting to change it. On a cluster whose nodes are all 127.0.0.1, open it
    there instead (called in the replica, before Serve opens the port)."""
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() != "127.0.0.1" or getattr(replica.add_port_to_grpc_server, "loopback", False):
        return
    original = replica.add_port_to_grpc_server

    def on_loopback(server, address: str):
        return original(server, address.replace("[::]", "127.0.0.1", 1))

    on_loopback.loopback = True
    replica.add_port_to_grpc_server = on_loopback


class Classifier:
    """One replica: the model, Ray Serve's dynamic batching, and the ``:predict`` contract.

    ``__call__`` answers what Ray's HTTP proxy forwards: ``POST /v1/models/<name>:predict`` as
    the hand-built service does (same decoding, limits, refusals and reply), ``GET
    /v1/models/<name>`` and ``GET /healthz``. :meth:`predict_body` is the same answer through a
    ``DeploymentHandle``, without HTTP. Requests of up to ``max_batch_size`` images in all are run
    as one model call (``@serve.batch``, counting images); a larger request runs alone.
    """

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
        from ray import serve

        from helpers.serving.batcher import BatchStats
        from helpers.serving.model import Predictor

        _loopback_replica_port()
        self.predictor = Predictor(model_path)
        self.name, self.max_batch_size = name, max_batch_size
        self.max_body_bytes, self.max_instances = max_body_bytes, max_instances
        self.predict_path = f"/v1/models/{name}:predict"
        self.stats = BatchStats()
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._batched = serve.batch(
            max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1000, batch_size_fn=_images_in
        )(self._run_batch)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.node = ray.get_runtime_context().get_node_id()
        try:
            self.log = ray.get_actor(BATCH_LOG, namespace=NAMESPACE)
        except ValueError:  # deployed without a BatchLog (serve run, a RayService)
            self.log = None
        if self.log is not None:
            self.log.register.remote(self.replica, self.node, os.getpid(), time.time())

    async def _run_batch(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        images = batch[0] if len(batch) == 1 else np.concatenate(batch)
        outputs = await self._run_model(images, len(batch))
        splits = np.cumsum([len(x) for x in batch])[:-1]
        return np.split(outputs, splits)

    async def _run_model(self, images: np.ndarray, requests: int) -> np.ndarray:
        start = time.perf_counter()
        outputs = await asyncio.get_running_loop().run_in_executor(self._model_thread, self.predictor.predict, images)
        stats = self.stats
        stats.model_seconds += time.perf_counter() - start
        stats.batches += 1
        stats.requests += requests
        stats.images += len(images)
        stats.largest_batch = max(stats.largest_batch, len(images))
        if self.log is not None:  # fire and forget: one small message per batch
            self.log.record.remote(self.replica, self.node, time.time(), requests, len(images))
        return outputs

    async def predict_images(self, images: np.ndarray) -> np.ndarray:
        if len(images) > self.max_batch_size:  # never split a request: it runs alone
            return await self._run_model(images, 1)
        return await self._batched(images)

    async def predict_body(self, body: bytes, path: str = "") -> tuple[int, bytes]:
        """The ``:predict`` reply for one request body: ``(status, JSON bytes)``, as the hand-built service answers."""
        path = path or self.predict_path
        try:
            images, key = decode_predict_request(body, self.max_instances)
        except BadRequest as exc:
            return exc.status, refusal(path, exc.status, exc.message)
        outputs = await self.predict_images(images)
        return 200, orjson.dumps({key: outputs}, option=orjson.OPT_SERIALIZE_NUMPY)

    async def __call__(self, request):
        from starlette.responses import Response

        scope = request.scope
        path, method = scope["path"], scope["method"]
        root = scope.get("root_path", "")
        if root and root != "/" and path.startswith(root):
            path = path[len(root) :]
        status, reply = await self._answer(scope, request.receive, path, method)
        return Response(reply, status_code=status, media_type="application/json")

    async def _answer(self, scope, receive, path: str, method: str) -> tuple[int, bytes]:
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            name = path[len("/v1/models/") : -len(":predict")]
            if method != "POST":
                return 405, refusal(path, 405, ":predict takes POST with a JSON body")
            if name != self.name:
                return 404, refusal(path, 404, f"unknown model {name!r}; this service serves {self.name!r}")
            try:
                body = await receive_body(scope, receive, self.max_body_bytes)
            except BadRequest as exc:
                return exc.status, refusal(path, exc.status, exc.message)
            except ClientGone:
                return 499, b""
            return await self.predict_body(body, path)
        if method == "GET" and path == f"/v1/models/{self.name}":
            state = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            return 200, orjson.dumps({"model_version_status": [state]})
        if method == "GET" and path == "/healthz":
            return 200, orjson.dumps({"status": "ok", "model": self.name})
        return 404, refusal(path, 404, f"no endpoint {method} {path}; see /v1/models/{self.name}")

    def __del__(self):  # Serve stops a replica gracefully when it scales down
        log = getattr(self, "log", None)
        if log is not None:
            log.unregister.remote(self.replica, time.time())


class HandleProbe:
    """A Ray actor that sends request bodies one at a time to the deployment through a
    ``DeploymentHandle`` from its own event loop, as Ray's proxy does, and times each call (ms)."""

    async def latencies_ms(self, bodies: list[bytes], app: str = APP_NAME) -> list[float]:
        from ray import serve

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
    """Latency (ms) of each body sent through a ``DeploymentHandle`` by a :class:`HandleProbe` on
    ``node_id`` (the proxy's node): Ray's router and the call to the replica, without HTTP."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = (
        ray.remote(HandleProbe)
        .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        .remote()
    )
    try:
        return np.asarray(ray.get(probe.latencies_ms.remote(bodies, app)))
    finally:
        ray.kill(probe)


def deployment_options(
    *,
    num_replicas: int = 1,
    max_ongoing_requests: int = 128,
    replica_cpus: float = 1.0,
    max_replicas_per_node: int | None = 1,
    autoscaling: dict | None = None,
) -> dict:
    """The options of the ``Classifier`` deployment (``deploy/ray/`` lists the same keys).

    ``max_ongoing_requests`` bounds the requests a replica holds at once: batches can never hold
    more (Ray's default is 5). With ``autoscaling`` (an ``autoscaling_config``), Serve chooses
    the number of replicas and ``num_replicas`` is ignored.
    """
    options = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": max_ongoing_requests,
        "ray_actor_options": {"num_cpus": replica_cpus},
        "health_check_period_s": 2.0,
        "health_check_timeout_s": 10.0,
        "graceful_shutdown_timeout_s": 5.0,
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
    }
    if max_replicas_per_node is not None:
        options["max_replicas_per_node"] = max_replicas_per_node
    if autoscaling:
        options["autoscaling_config"] = dict(autoscaling)
    else:
        options["num_replicas"] = num_replicas
    return options


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
    """The Serve application: :class:`Classifier` bound to a model, with :func:`deployment_options` ``(**options)``."""
    import hashlib

    from ray import serve

    args = {
        "name": name,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "max_body_bytes": max_body_bytes,
        "max_instances": max_instances,
    }
    # serve.run treats every call as new code and restarts every replica. A code version that
    # depends only on what the replicas load (what `serve deploy` does for a config file) makes a
    # change of replica count or autoscaling an update in place: running replicas stay.
    version = hashlib.sha1(repr((str(model_path), sorted(args.items()))).encode()).hexdigest()[:12]
    deployment = serve.deployment(Classifier, **deployment_options(**options)).options(version=version, _internal=True)
    return deployment.bind(str(model_path), **args)


def build_app(args: dict):
    """Application builder for ``serve run helpers.serving.ray_serve:build_app model_path=...`` and a
    ``RayService``'s ``import_path``: ``args`` are :func:`application`'s keywords (strings from a
    command line are converted); ``model_path`` is required. Options such as ``num_replicas`` or
    ``autoscaling_config`` are set in the config file, which overrides these defaults."""
    args = dict(args)
    if "model_path" not in args:
        raise ValueError("build_app needs model_path, e.g. model_path=/models/cifar10_served/1")
    model_path = args.pop("model_path")
    types = {"max_batch_size": int, "max_wait_ms": float, "max_body_bytes": int, "max_instances": int}
    kwargs = {key: types.get(key, str)(value) for key, value in args.items()}
    return application(model_path, **kwargs)


def deploy(app, *, name: str = APP_NAME, running: int | None = None, timeout: float = 180.0):
    """Deploy (or update) ``app`` at route ``/``; wait until it runs, with ``running`` replicas if
    given, for at most ``timeout`` s; its handle."""
    from ray import serve

    serve._run(app, _blocking=False, name=name, route_prefix="/")  # serve.run, without waiting forever
    deadline = time.monotonic() + timeout
    while True:
        status = serve.status().applications.get(name)
        state = str(getattr(status.status, "value", status.status)) if status else "NOT_STARTED"
        if state == "RUNNING":
            break
        if state == "DEPLOY_FAILED":
            raise RuntimeError(f"application {name!r} failed to deploy: {status.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"application {name!r} not running within {timeout:.0f} s ({state}, {replicas(name)})")
        time.sleep(0.1)
    if running is not None:
        wait_for_replicas(running, timeout=max(1.0, deadline - time.monotonic()), app=name)
    return serve.get_app_handle(name)


def start_serve(port: int = 0) -> str:
    """Start Serve with one HTTP proxy, on the head node, at 127.0.0.1:``port`` (0: a free port); its URL."""
    from ray import serve

    from helpers.processes import free_ports

    quiet_ray_loggers()
    port = port or free_ports(1)[0]
    serve.start(
        proxy_location="HeadOnly",
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"log_level": "WARNING", "enable_access_log": False},
    )
    return f"http://127.0.0.1:{port}"


def replicas(app: str = APP_NAME, deployment: str = DEPLOYMENT_NAME) -> dict[str, int]:
    """The deployment's replicas by state, e.g. ``{"RUNNING": 2, "STARTING": 1}`` ({} when not deployed)."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return {}
    return {str(getattr(k, "value", k)): int(v) for k, v in status.deployments[deployment].replica_states.items()}


def wait_for_replicas(running: int, *, timeout: float = 180.0, app: str = APP_NAME) -> float:
    """Wait until exactly ``running`` replicas run and none starts or stops; the seconds it took."""
    start = time.monotonic()
    while True:
        states = replicas(app)
        if states.get("RUNNING", 0) == running and sum(states.values()) == running:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{running} running replicas expected within {timeout:.0f} s; now {states}")
        time.sleep(0.1)
