"""Usage's pure rules: units, periods in the account's zone, threshold crossings, records."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from m2m.usage import (
    Level,
    Period,
    Service,
    Totals,
    crossed,
    day_of,
    hour_of,
    month_of,
    thresholds_of,
)
from m2m.usage_records import parse_record, read_csv

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_thresholds_are_counted_in_megabytes_messages_and_minutes() -> None:
    totals = Totals(data_up_bytes=400_000, data_down_bytes=600_000, sms_out=2, sms_in=3)
    assert totals.in_threshold_units(Service.DATA) == 1.0
    assert totals.in_threshold_units(Service.SMS) == 5.0
    assert Totals(voice_seconds=90).in_threshold_units(Service.VOICE) == 1.5


def test_only_thresholds_above_zero_are_set() -> None:
    profile = {
        "DataService": {"DailyTreshold": 100, "MonthlyTreshold": 0},
        "SMSService": {"DailyTreshold": 0, "MonthlyTreshold": 50},
        "VoiceService": {"DailyTreshold": True},
    }
    assert thresholds_of(profile) == {
        (Service.DATA, Period.DAILY): 100,
        (Service.SMS, Period.MONTHLY): 50,
    }
    assert thresholds_of({}) == {}


def test_a_mark_is_crossed_once_when_the_total_reaches_it() -> None:
    assert crossed(100, 80, 0, 79.9) == []
    assert crossed(100, 80, 79.9, 80) == [Level.WARNING]
    assert crossed(100, 80, 80, 99) == []  # already past the warning
    assert crossed(100, 80, 50, 100) == [Level.WARNING, Level.LIMIT]
    assert crossed(100, 80, 100, 150) == []


def test_days_and_months_are_the_accounts_but_hours_are_utc() -> None:
    # 23:30 UTC on 31 January is already 1 February in Berlin.
    at = datetime(2027, 1, 31, 23, 30, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert day_of(at, ZoneInfo("UTC")) == date(2027, 1, 31)
    assert day_of(at, berlin) == date(2027, 2, 1)
    assert month_of(at, ZoneInfo("UTC")) == date(2027, 1, 1)
    assert month_of(at, berlin) == date(2027, 2, 1)
    assert hour_of(at.astimezone(berlin)) == datetime(2027, 1, 31, 23, tzinfo=UTC)


def test_a_record_names_one_sim_a_start_and_whole_counters() -> None:
    record, problems = parse_record(
        {"iccid": "89320180000000000006", "start": "2026-12-01T10:15:00Z", "sms_out": "3"}, NOW
    )
    assert problems == []
    assert record is not None
    assert record.totals == Totals(sms_out=3)
    assert record.started_at == datetime(2026, 12, 1, 10, 15, tzinfo=UTC)


def test_bad_records_say_what_is_wrong() -> None:
    _, problems = parse_record(
        {
            "start": "2026-12-01T10:15:00",
            "data_up_bytes": "-1",
            "network": "2620",
            "country": "Germany",
        },
        NOW,
    )
    assert problems == [
        "give the SIM's iccid or its imsi (one of them)",
        "start needs a UTC offset (Z or +01:00)",
        "data_up_bytes must be a whole number from 0 to 9223372036854775807",
        "network must be the MCC-MNC: 5 or 6 digits",
        "country must be an ISO 3166 alpha-2 code, such as DE",
    ]
    _, problems = parse_record(
        {"imsi": "206012000000001", "start": "2026-12-02T10:00:00Z", "end": "2026-12-01T00:00Z"},
        NOW,
    )
    assert problems == ["end is before start", "start is in the future"]


def test_a_csv_header_with_an_unknown_column_is_refused_as_a_whole() -> None:
    rows = list(read_csv(io.StringIO("iccid,start,data_bytes\nx,y,1\n")))
    assert rows == [(1, ["unknown column 'data_bytes'"])]
    rows = list(read_csv(io.StringIO("ICCID,Start,sms_in\n\n8932,2026-12-01T00:00Z,4\n")))
    assert rows == [(3, {"iccid": "8932", "start": "2026-12-01T00:00Z", "sms_in": "4"})]
