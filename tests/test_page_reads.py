"""``m2m.page_reads``: the page reads one process runs at once, by database or as set; a read
beyond them waits for a slot (tested with real threads)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from m2m.clock import ManualClock
from m2m.page_reads import PageReads, concurrency_for
from m2m.services import build_services
from m2m.settings import Settings


def test_the_database_decides_unless_the_setting_does() -> None:
    assert concurrency_for(0, "sqlite") == 1
    assert concurrency_for(0, "postgresql") == 4
    assert concurrency_for(3, "sqlite") == 3


def test_the_setting_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError, match="page_read_concurrency"):
        Settings(page_read_concurrency=-1)


@pytest.mark.parametrize("slots", [1, 2])
def test_no_more_reads_run_at_once_than_there_are_slots(slots: int) -> None:
    reads = PageReads(slots)
    running = 0
    most = 0
    lock = threading.Lock()
    full = threading.Event()  # every slot taken at once, at least once

    def read(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == slots:
                full.set()
        # Hold the slot until the others have filled theirs, so that the rest pile up behind.
        full.wait(timeout=5)
        with lock:
            running -= 1
        return n * 2

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(reads.run(read, n))) for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 2, 4, 6, 8, 10]
    assert most == slots


@pytest.mark.parametrize(("setting", "wanted"), [(0, {"sqlite": 1, "postgresql": 4}), (3, None)])
def test_the_api_s_services_read_pages_in_the_database_s_slots(
    engine: Engine, clock: ManualClock, setting: int, wanted: dict[str, int] | None
) -> None:
    services = build_services(
        Settings(database_url=str(engine.url), page_read_concurrency=setting), engine, clock
    )
    expected = wanted[engine.dialect.name] if wanted is not None else setting
    assert services.page_reads.concurrency == expected
