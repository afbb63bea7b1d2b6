"""``/metrics`` (``m2m.metrics``, ``m2m.health``): a scrape after a known workload says what
happened (requests by route template and status, 401s, 429s, items accepted and executed,
callback attempts) and what is waiting (read from the database); ``m2m serve --processes 2``
adds its processes up, and keeps a killed process's counts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from m2m import metrics, request_tally
from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from tests.support.api import M2M, auth, configure, get_sim, msisdn, request
from tests.support.receiver import Receiver
from tests.support.server_process import serving
from tests.support.waiting import wait_for
from tests.support.worker import drain

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient | httpx.Client | str) -> Samples:
    if isinstance(client, str):
        answer = httpx.get(f"{client}/metrics", timeout=10)
    else:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_scrape_counts_a_known_workload(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    token = headers["Authorization"].removeprefix("Bearer ")
    assert configure(api, headers, receiver.url).is_success
    before = scrape(api)
    for n in (1, 2, 3):
        assert get_sim(api, f"3247000000{n}", token).status_code == 200
    assert get_sim(api, "32470000001", "wrong-token").status_code == 401
    assert api.get(f"{M2M}/simcards?msisdn=1").status_code == 401
    unknown = f"{M2M}/requests/{'0' * 8}-0000-4000-8000-{'0' * 12}"
    assert api.get(unknown, headers=headers).status_code == 404
    assert api.get("/no/such/page").status_code == 404
    # 32470000013 is the sandbox's Active SIM that always fails.
    answer = request(api, headers, "deactivation", [msisdn(1), msisdn(2), msisdn(13)])
    assert answer.status_code == 202
    waiting = scrape(api)
    assert value(waiting, "m2m_items_waiting", state="pending") == 3
    assert value(waiting, "m2m_oldest_open_request_age_seconds") >= 0
    drain(quiet, engine, clock)
    after = scrape(api)

    simcards = {"route": f"{M2M}/simcards", "method": "GET"}
    assert grew(before, after, "m2m_http_requests_total", status="200", **simcards) == 3
    assert grew(before, after, "m2m_http_requests_total", status="401", **simcards) == 2
    assert grew(before, after, "m2m_http_request_duration_seconds_count", **simcards) == 5
    assert grew(before, after, "m2m_auth_failures_total", route=f"{M2M}/simcards") == 2
    # One label for every tracking number: the template, never the path.
    assert (
        grew(
            before,
            after,
            "m2m_http_requests_total",
            route=f"{M2M}/requests/{{tracking_number}}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert not any("0000-4000" in str(labels) for _, labels in after)
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert grew(before, after, "m2m_http_requests_total", **unmatched) == 1
    assert grew(before, after, "m2m_items_accepted_total", operation="deactivation") == 3
    executed = {"operation": "deactivation"}
    assert grew(before, after, "m2m_items_executed_total", result="Success", **executed) == 2
    assert grew(before, after, "m2m_items_executed_total", result="Failure", **executed) == 1
    assert grew(before, after, "m2m_callback_attempts_total", outcome="delivered") == 3
    assert grew(before, after, "m2m_callback_attempt_duration_seconds_count") == 3
    # What is waiting is read from the database at the scrape: nothing any more.
    assert value(after, "m2m_database_up") == 1
    assert value(after, "m2m_items_waiting", state="pending") == 0
    assert value(after, "m2m_callbacks_waiting") == 0
    assert value(after, "m2m_oldest_open_request_age_seconds") == 0
    assert value(after, "m2m_callback_breakers_open") == 0


def test_throttled_answers_are_counted(
    quiet: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> None:
    limited = quiet.model_copy(update={"rate_limit_per_second": 0.001, "rate_limit_burst": 2})
    with TestClient(create_app(limited, engine=engine, clock=clock)) as client:
        headers = auth(client)
        before = scrape(client)
        statuses = [
            client.get(f"{M2M}/simcards?msisdn=32470000001", headers=headers).status_code
            for _ in range(4)
        ]
        after = scrape(client)
    assert statuses == [200, 200, 429, 429]
    assert grew(before, after, "m2m_throttled_total", route=f"{M2M}/simcards") == 2


def test_metrics_can_be_switched_off(quiet: Settings, engine: Engine, clock: ManualClock) -> None:
    off = quiet.model_copy(update={"metrics_enabled": False})
    with TestClient(create_app(off, engine=engine, clock=clock)) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_dead_processes_lose_their_live_gauges_and_keep_their_counts(tmp_path: Path) -> None:
    gone = 2**22 + 12345  # above the default pid_max: no such process
    for kind in ("gauge_livesum", "counter"):
        (tmp_path / f"{kind}_{gone}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    assert metrics.forget_dead_processes(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]


def test_a_scrape_skips_a_values_file_a_starting_process_has_just_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client creates a process's file empty, then sizes it: a scrape in between must not
    fail (it answered 500 while ``serve --processes`` replaced a killed process)."""
    monkeypatch.setenv(metrics.MULTIPROC_DIR, str(tmp_path))
    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = json.dumps(["m2m_demo", "m2m_demo_total", {"route": "/x"}, "A demo."])
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").write_bytes(b"")  # created, not yet sized
    text, _ = metrics.exposition()
    assert value(parse(text.decode()), "m2m_demo_total", route="/x") == 3.0


def _children(pid: int) -> list[int]:
    """The API processes ``serve`` spawned (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
    return found


def test_serve_with_two_processes_adds_them_up(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    with serving(tmp_path, "--processes", "2", PROMETHEUS_MULTIPROC_DIR=str(shared)) as server:
        wait_for(lambda: len(_children(server.process.pid)) >= 2, 30, "two API processes")
        first_children = set(_children(server.process.pid))

        def sent_to_openapi() -> float:
            return value(
                scrape(server.base_url),
                "m2m_http_requests_total",
                route="/openapi.json",
                method="GET",
                status="200",
            )

        # serving() asked for it while waiting for the server; each process writes its
        # tally at most FLUSH_SECONDS later (a scrape flushes only the process it lands on).
        time.sleep(request_tally.FLUSH_SECONDS * 1.5)
        base = sent_to_openapi()
        for _ in range(40):
            # A connection each: the kernel hands them to either process.
            assert httpx.get(f"{server.base_url}/openapi.json", timeout=10).status_code == 200
        # Both processes wrote values, and every scrape (whichever process answers) says 40
        # once the other process's tally has been written (no scrape needed for that).
        wait_for(
            lambda: {sent_to_openapi() - base for _ in range(8)} == {40},
            10,
            "every scrape to count the 40 requests",
        )
        writers = {p.stem.rsplit("_", 1)[-1] for p in shared.glob("counter_*.db")}
        assert len(writers & {str(pid) for pid in first_children}) == 2
        # A process killed and restarted: its counts stay counted.
        victim = sorted(first_children)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(set(_children(server.process.pid)) - {victim}) >= 2,
            30,
            "the killed process to be replaced",
        )
        time.sleep(0.5)
        assert {sent_to_openapi() - base for _ in range(8)} == {40}
        # Its live gauge (connections in use) was dropped, not added to the living ones'.
        assert not list(shared.glob(f"gauge_live*_{victim}.db"))
    assert shared.exists()  # the operator's directory is kept; serve's own is removed


def test_a_tally_of_latencies_writes_what_observing_each_one_would() -> None:
    """The tally writes a histogram's totals at once (``request_tally``): the same buckets and
    sum as observing each latency, bounds included (a bucket takes what is <= its bound)."""
    latencies = [0.0, 0.005, 0.0051, 0.01, 0.3, 2.5, 9.99, 10.0, 42.0, 0.005]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("latency", "", buckets=metrics.LATENCY_BUCKETS, registry=one_by_one)
    tallied = Histogram("latency", "", buckets=metrics.LATENCY_BUCKETS, registry=batched)
    for latency in latencies:
        observed.observe(latency)
    tally = request_tally.RequestTally()
    for latency in latencies:
        tally.add("/r", "GET", 200, latency)
    request_tally._observe_all(tallied, tally._latencies[("/r", "GET")])

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("le", "")): sample.value
            for family in registry.collect()
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    assert samples(batched) == samples(one_by_one)
    assert samples(batched)[("latency_bucket", "0.005")] == 3  # 0.0 and 0.005 twice
