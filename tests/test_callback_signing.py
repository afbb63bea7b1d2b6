"""Which secrets sign a status message around a signing-secret rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from m2m.callbacks.signing import signing_versions

ROTATED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_the_previous_secret_signs_too_until_the_overlap_ends() -> None:
    assert signing_versions(3, ROTATED, ROTATED, DAY) == [3, 2]
    assert signing_versions(3, ROTATED, ROTATED + DAY - timedelta(seconds=1), DAY) == [3, 2]
    assert signing_versions(3, ROTATED, ROTATED + DAY, DAY) == [3]


def test_one_signature_without_a_rotation_or_an_overlap() -> None:
    assert signing_versions(1, None, ROTATED, DAY) == [1]
    assert signing_versions(2, ROTATED, ROTATED, timedelta(0)) == [2]
