"""deploy/ray/: the files that serve the classifier on a real cluster, checked without one.

Nothing here starts Ray, Kubernetes or Docker (the image is built only where a Docker daemon
answers). The KubeRay manifest is validated against KubeRay's own CRD schema (RayService, from
the KubeRay release named in ``CRD``, kept in deploy/ray/schemas/), strictly: a key the schema
does not know is an error, as ``kubeconform -strict`` reports it (the API server would drop it
silently).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers.paths import ROOT

DEPLOY = ROOT / "deploy" / "ray"
CRD = DEPLOY / "schemas" / "ray.io_rayservices-v1.7.0.yaml.gz"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def strict(schema):
    """``schema`` with every object that lists its properties closed to other keys (what
    ``kubeconform -strict`` checks), unless it says it keeps unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: strict(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            closed["additionalProperties"] = False
    return closed


@pytest.fixture(scope="module")
def rayservice_validator():
    import jsonschema

    crd = yaml.safe_load(gzip.open(CRD))
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def test_rayservice_is_valid_under_kuberays_crd_strictly(rayservice_validator):
    service = load("rayservice.yaml")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in rayservice_validator.iter_errors(service)]
    assert not errors, errors


def test_the_strict_check_catches_a_misspelt_key_and_a_wrong_type(rayservice_validator):
    service = load("rayservice.yaml")
    cluster = service["spec"]["rayClusterConfig"]
    cluster["workerGroupSpecs"][0]["maxReplica"] = 4  # for maxReplicas
    cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # must be a string
    messages = [e.message for e in rayservice_validator.iter_errors(service)]
    assert any("maxReplica" in m for m in messages), messages
    assert any("is not of type 'string'" in m for m in messages), messages


def test_every_replica_the_autoscaler_may_ask_for_has_a_node_to_run_on():
    """One replica per node (max_replicas_per_node: 1), so max_replicas is bounded by the worker
    nodes that `ray up` can start and by the worker pods KubeRay may add; each worker fits one."""
    [app] = load("serve_config.yaml")["applications"]
    [options] = app["deployments"]
    scaling = options["autoscaling_config"]
    assert options["max_replicas_per_node"] == 1
    assert 2 <= scaling["min_replicas"] <= scaling["initial_replicas"] <= scaling["max_replicas"]
    launcher = load("cluster.yaml")
    assert scaling["max_replicas"] <= launcher["max_workers"] == len(launcher["provider"]["worker_ips"])
    cluster = load("rayservice.yaml")["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head holds no replica
    [workers] = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] >= scaling["min_replicas"] and workers["maxReplicas"] >= scaling["max_replicas"]
    [container] = workers["template"]["spec"]["containers"]
    assert float(container["resources"]["limits"]["cpu"]) >= options["ray_actor_options"]["num_cpus"]


def test_the_model_path_is_one_every_node_has_without_root_or_a_volume():
    """The Serve config's model path is under the user's home: the image puts the model there,
    and `ray up` syncs it there (its file mounts are copied before any command could make a
    directory outside the home)."""
    [app] = load("serve_config.yaml")["applications"]
    path = app["args"]["model_path"]
    assert path.startswith("~/"), path
    model_dir = path[2:].rsplit("/", 1)[0]  # without the version
    assert f"~/{model_dir}" in load("cluster.yaml")["file_mounts"]
    assert not any("sudo" in c for c in load("cluster.yaml").get("initialization_commands", []))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(rf"^COPY --chown=ray \S+ /home/ray/{re.escape(model_dir)}$", dockerfile, re.M), dockerfile
    cluster = load("rayservice.yaml")["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert not any("volumes" in p["template"]["spec"] for p in pods)  # no claim that nobody fills


def test_the_serving_image_installs_the_serving_requirements_only_with_the_courses_pins():
    pins = dict(re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    serving = dict(
        re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", (DEPLOY / "requirements-serving.txt").read_text(), re.M)
    )
    assert serving and all(pins.get(name) == version for name, version in serving.items()), serving
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "requirements-serving.txt" in dockerfile and "requirements.txt " not in dockerfile
    # the build context keeps exactly what the image copies (Dockerfile.dockerignore, read by BuildKit)
    sources = {line.split()[2] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    model = re.search(r"^ARG MODEL=(\S+)", dockerfile, re.M).group(1)
    kept = set(re.findall(r"^!(\S+)", (DEPLOY / "Dockerfile.dockerignore").read_text(), re.M))
    assert {model if s == "${MODEL}" else s for s in sources} <= kept, sources


@pytest.mark.slow
def test_the_deployments_import_path_loads_no_course_only_package():
    """What a replica imports (build_app's module) needs nothing of the book: no JupyterLab, no
    papermill, no plotting, no OpenAI client. (Not pandas: Ray Serve imports it where it is installed.)"""
    [app] = load("serve_config.yaml")["applications"]
    module = app["import_path"].partition(":")[0]
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = set(result.stdout.split())
    course_only = {"jupyterlab", "papermill", "myst_nb", "jupytext", "matplotlib", "openai", "nbformat"}
    assert not loaded & course_only, loaded & course_only


@pytest.mark.slow
def test_the_image_builds_where_docker_runs():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon here: the image is not built")
    model = ROOT / "build" / "executed" / "cpu" / "artifacts" / "cifar10_served"
    if not model.is_dir():
        pytest.skip("no exported model of the cpu profile: run `make book` first")
    command = [docker, "build", "-q", "-f", str(DEPLOY / "Dockerfile"), "-t", "maas-course/ray-serving:test", "."]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}  # BuildKit reads deploy/ray/Dockerfile.dockerignore
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
