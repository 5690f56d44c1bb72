"""The poem model's OpenAI-compatible service as a Ray Serve application: each replica runs the
continuous-batching engine of :mod:`helpers.lm.engine` behind the same API as
:mod:`helpers.lm.server`, and Serve's proxy streams its server-sent events to the client.

    from helpers.lm.on_ray import application
    serve.run(application(checkpoint, num_replicas=2), name="poet", route_prefix="/")
    OpenAI(base_url=f"{serve_url}/v1", api_key="unused")     # the official client, unchanged

A request lives on one replica from its first token to its last: the sequence's KV cache is in
that replica's engine, so a stream cannot move when its replica's node is lost. The client that
retries the whole request with the same seed gets the same text from the replica that is left.
``check_health`` turns an engine failure (:attr:`Engine.failure`) into a failed health check, so
that Serve replaces the replica, which is what the standalone service asks of its supervisor.
"""

from __future__ import annotations

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
    def __init__(self, checkpoint: str, slots: int = 32, max_waiting: int = 256, name: str = DEFAULT_MODEL_NAME):
        self.engine = build_engine(checkpoint, slots, "continuous", max_waiting)
        self.options = ServerOptions(name=name)

    def __serve_build_asgi_app__(self):
        from helpers.lm.server import create_app

        return create_app(self.engine, self.options)  # its lifespan starts and stops the engine's thread

    def check_health(self):
        if self.engine.failure is not None:
            raise RuntimeError(f"the inference engine failed: {self.engine.failure!r}")

    def node(self) -> str:
        """The Ray node this replica runs on (through a handle: where the replicas were placed)."""
        import ray

        return ray.get_runtime_context().get_node_id()


def application(
    checkpoint, *, num_replicas: int = 1, slots: int = 32, max_waiting: int = 256, name: str = DEFAULT_MODEL_NAME
):
    """The application: ``num_replicas`` replicas of :class:`PoetService`, at most one per node
    (a node's loss then takes one replica), each taking one CPU slot of Ray's."""
    deployment = PoetService.options(
        num_replicas=num_replicas, max_replicas_per_node=1, ray_actor_options={"num_cpus": 1}
    )
    return deployment.bind(str(checkpoint), slots, max_waiting, name)
