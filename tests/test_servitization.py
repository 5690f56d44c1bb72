"""Chapter 02's machinery: the same results three ways, services that start and always stop, clear errors."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from helpers import timing
from helpers.book import run
from helpers.topics import servitization as sv

CHUNKS = sv.split(3000, 6)


def _gone(pid: int, wait: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a reaped child disappears from /proc)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_collatz_and_split_by_hand():
    assert [sv.collatz_steps(n) for n in (1, 2, 3, 6, 7, 27)] == [0, 1, 7, 8, 16, 111]
    assert sv.task((1, 4)) == 0 + 1 + 7
    assert sv.split(10, 3) == [(1, 5), (5, 8), (8, 11)]
    chunks = sv.split(1000, 7)
    assert chunks[0][0] == 1 and chunks[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    with pytest.raises(ValueError, match="cannot split"):
        sv.split(3, 4)
    with pytest.raises(ValueError, match="positive"):
        sv.collatz_steps(0)


@pytest.mark.slow
def test_serial_pool_and_services_compute_identical_results():
    expected = sv.run_serial(CHUNKS)
    assert sum(expected) == sv.task((1, 3001))
    with sv.process_pool(2) as pool:
        assert sv.run_pool(CHUNKS, pool) == expected
    with sv.worker_services(2) as services:
        assert sv.dispatch([s.url for s in services], CHUNKS, timeout=30) == expected
    jobs = [sv.run_job(100, CHUNKS, sv.run_serial), sv.run_job(100, CHUNKS, sv.run_serial)]
    assert jobs[0].result == jobs[1].result and jobs[0].seconds > 0


@pytest.mark.slow
def test_services_listen_on_free_local_ports_and_are_stopped():
    with sv.worker_services(3) as services:
        urls = [s.url for s in services]
        pids = [s.pid for s in services]
        assert len(set(urls)) == 3
        assert all(url.startswith("http://127.0.0.1:") for url in urls)
        assert all(sv.health(url)["status"] == "ok" for url in urls)
        assert {sv.health(url)["pid"] for url in urls} == set(pids)
    assert all(_gone(pid) for pid in pids), "no worker service may outlive its block"
    assert all(s.process.poll() is not None for s in services)


@pytest.mark.slow
def test_services_are_stopped_when_the_block_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with sv.worker_services(2) as services:
            pids = [s.pid for s in services]
            raise RuntimeError("boom")
    assert all(_gone(pid) for pid in pids)


@pytest.mark.slow
def test_a_killed_worker_is_reported_not_waited_for():
    with sv.worker_services(2) as services:
        services[1].process.kill()
        services[1].process.wait()
        start = time.monotonic()
        with pytest.raises(sv.WorkerError) as info:
            sv.dispatch([s.url for s in services], sv.split(20000, 40), timeout=30)
        assert time.monotonic() - start < 20
    assert services[1].url in str(info.value) and "failed on task" in str(info.value)


def test_a_stalled_worker_times_out(tmp_path):
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(sv.WorkerError, match="failed on task"):
            sv.dispatch([url], [(1, 10)], timeout=0.5)
        assert time.monotonic() - start < 10


@pytest.mark.slow
def test_services_refuse_bad_requests():
    with sv.worker_services(1) as [service]:
        for body, code in ((b'{"lo": 5, "hi": 2}', 400), (b"not json", 400), (b"x" * 5000, 413)):
            request = urllib.request.Request(f"{service.url}/task", data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=10)
            assert info.value.code == code
        with pytest.raises(sv.WorkerError, match="refused task"):
            sv.post_task(service.url, (0, 3), timeout=10)
        with urllib.request.urlopen(
            urllib.request.Request(f"{service.url}/task", data=json.dumps({"lo": 1, "hi": 4}).encode(), method="POST"),
            timeout=10,
        ) as r:
            assert json.loads(r.read())["result"] == 8


@pytest.mark.slow
def test_a_service_stops_by_itself_when_its_lifetime_ends():
    with sv.worker_services(1, lifetime=2.0) as [service]:
        assert _gone(service.pid, wait=10), "the watchdog ends the service"


def test_bad_worker_counts_are_clear_errors():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            with sv.process_pool(bad):
                pass
        with pytest.raises(ValueError, match="positive integer"):
            with sv.worker_services(bad):
                pass
    with pytest.raises(ValueError, match="at least one worker"):
        sv.dispatch([], CHUNKS)


def test_amdahl_by_hand():
    assert sv.amdahl(1, 0.3) == pytest.approx(1.0)
    assert sv.amdahl(2, 0.1) == pytest.approx(1 / 0.55)
    assert sv.amdahl(np.array([1, 4]), 0.0).tolist() == [1.0, 4.0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        sv.amdahl(2, 1.5)
    with pytest.raises(ValueError, match="at least 1"):
        sv.amdahl(-1, 0.1)


def test_batching_measurement():
    assert timing.batch_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert timing.batch_sizes(100)[-1] == 100
    seen = []
    records = sv.batch_throughput(lambda x: seen.append(len(x)), np.zeros((64, 2)), [1, 8], total=16)
    assert [r["batch size"] for r in records] == [1, 8]
    assert seen == [1] + [1] * 16 + [8] + [8] * 2  # warm-up, then the timed calls
    assert all(r["items per second"] > 0 for r in records)
    with pytest.raises(ValueError, match="between 1 and the 64 items"):
        sv.batch_throughput(lambda x: None, np.zeros((64, 2)), [128], total=16)


def test_runner_rejects_negative_workers_before_any_kernel(tmp_path, capsys):
    code = run.main(
        ["--profile", "ci", "--only", "servitization", "-p", "max_workers=-3", "--output-dir", str(tmp_path)]
    )
    assert code == 2
    assert "parameter 'max_workers' = -3" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_no_worker_service_is_left_running():
    mine = [
        line
        for line in os.popen("ps -eo ppid,args").read().splitlines()
        if "helpers.topics.servitization serve" in line and line.split()[0] == str(os.getpid())
    ]
    assert not mine
