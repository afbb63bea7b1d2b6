"""The sandbox's record of what was sent: read after a cursor, by reference, bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from m2m.callbacks.sent import SentLog

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _send(log: SentLog, reference: str) -> None:
    log.record(
        kind="callback",
        reference=reference,
        attempted_at=NOW,
        url="http://127.0.0.1:9/",
        headers={"x-callback-token": "t"},
        body={"trackingNumber": reference},
        status_code=200,
        error=None,
        delivered=True,
    )


def test_read_after_a_cursor_and_by_reference() -> None:
    log = SentLog()
    for reference in ("a", "b", "a"):
        _send(log, reference)
    assert [m.sequence for m in log.read()] == [1, 2, 3]
    assert [m.sequence for m in log.read(after=1)] == [2, 3]
    assert [m.sequence for m in log.read(reference="a")] == [1, 3]
    assert log.read(reference="a", after=3) == []


def test_the_oldest_go_first_and_a_clear_keeps_the_cursor_valid() -> None:
    log = SentLog(capacity=2)
    for reference in ("a", "b", "c"):
        _send(log, reference)
    assert [m.reference for m in log.read()] == ["b", "c"]
    log.clear()
    assert log.read() == []
    _send(log, "d")
    assert [m.sequence for m in log.read(after=3)] == [4]  # numbering goes on
