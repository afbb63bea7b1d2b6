"""``m2m serve --sandbox``'s app simulates usage while it runs, and follows the sandbox's clock:
moving it a day forward is caught up, with the thresholds it crosses (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.storage.tables import events, usage_daily
from tests.support.waiting import wait_for


def counted(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]


def test_the_sandbox_simulates_usage_and_catches_up_a_moved_clock(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> None:
    simulating = settings.model_copy(
        update={
            "sandbox_usage": True,
            "embedded_worker": False,
            "sandbox_control_from_anywhere": True,  # the test client is not on loopback
        }
    )
    days = select(func.count(usage_daily.c.day.distinct()))
    crossings = select(func.count()).select_from(events).where(events.c.type.like("usage.%"))
    # 18:00 UTC: most of today has ended, whatever the hour the suite runs at. (At 09:00 a first
    # round that read the clock only after the move below counted tomorrow's night and morning
    # alone, too little usage to cross a threshold: the test failed by the hour of the day.)
    now = clock.now()
    clock.advance((datetime.combine(now.date(), time(18), UTC) - now).total_seconds() % 86_400)
    with TestClient(create_app(simulating, engine=engine, clock=clock)) as client:
        # The first round counts today so far before the clock moves: the order is fixed.
        wait_for(lambda: counted(engine, days) >= 1, 90, "today's usage so far")
        before = counted(engine, days)
        moved = client.post("/sandbox/clock", json={"advance": "1d"})
        assert moved.status_code == 200, moved.text
        wait_for(
            lambda: counted(engine, days) >= before + 1,
            90,
            "a day more of usage after the clock moved",
        )
        wait_for(lambda: counted(engine, crossings) > 0, 90, "a heavy user's threshold event")
