"""The console's overview shows the account's usage (its last 30 days of data by its own days,
this month's totals, the month's largest data users against their thresholds), only its own,
on both databases. Usage is counted through the real ingest path."""

from __future__ import annotations

import html
import itertools
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.storage import accounts as account_store
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.console import add_user, console_client, sign_in
from tests.support.sims import add_sim
from tests.support.tenants import Tenant

MB = 1_000_000
# 21:30 on 2 December in New York (UTC-5), already 3 December in UTC.
NOW = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)
_batches = itertools.count()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def iccid_of(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar_one()
        )


def monthly_data_threshold(engine: Engine, msisdn: str) -> int:
    with engine.connect() as conn:
        profile = conn.execute(
            select(sim_cards.c.profile).where(sim_cards.c.msisdn == msisdn)
        ).scalar_one()
    return int(profile["DataService"]["MonthlyTreshold"])


def use(engine: Engine, *records: tuple[str, datetime, Totals]) -> None:
    """Count usage as the mediation system's batches are counted."""
    with write_transaction(engine) as conn:
        result = usage_ingest.ingest(
            conn,
            f"overview-{next(_batches)}",
            [UsageRecord(iccid, None, at, None, totals) for iccid, at, totals in records],
            NOW,
        )
    assert result.counted == len(records)


def set_time_zone(engine: Engine, account_id: int, zone: str) -> None:
    with write_transaction(engine) as conn:
        assert account_store.set_usage_settings(conn, account_id, zone, 80, "notify", False)


def demo_account(engine: Engine) -> int:
    with engine.connect() as conn:
        account = account_store.find_sandbox_account(conn)
    assert account is not None
    return account.id


@pytest.fixture
def overview(console: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Signed in as the demo user, the demo account's days in New York."""
    set_time_zone(engine, demo_account(engine), "America/New_York")
    sign_in(console, engine, clock)


def day_columns(page: str) -> list[tuple[str, int]]:
    """The 30-day chart's columns: (the day as its title names it, bytes)."""
    found = re.findall(r'<g class="day" data-bytes="(\d+)">\s*<title>([^<]*)</title>', page)
    return [(html.unescape(title).split(":")[0], int(value)) for value, title in found]


def section(page: str, id_: str) -> str:
    start = page.index(f'id="{id_}"')
    return page[start : page.index("</section>", start)]


def top_rows(page: str) -> list[tuple[str, str, str, str, str, str]]:
    """The top list's rows: (SIM page link, ICCID, MSISDN, data, threshold, used)."""
    return re.findall(
        r'<a class="mono" href="(/console/sims/\d+)">(\d+)</a><br><span class="hint msisdn">(\d+)'
        r'</span></td>\s*<td class="amount data">([^<]*)</td>\s*'
        r'<td class="amount threshold wide-only">([^<]*)</td>\s*<td class="amount used">([^<]*)<',
        section(page, "top-consumers"),
    )


@pytest.mark.usefixtures("overview")
def test_the_chart_and_the_months_totals_follow_the_accounts_days(
    console: TestClient, engine: Engine
) -> None:
    """New York's midnight, not UTC's, ends a day and the month: 23:30 on 30 November there is
    already 1 December in UTC, but November's; 21:00 on 2 December there (today) is 3 December
    in UTC."""
    sim = iccid_of(engine, "32470000001")
    use(
        engine,
        (sim, datetime(2026, 11, 3, 4, 0, tzinfo=UTC), Totals(data_down_bytes=13 * MB)),  # 2 Nov
        (sim, datetime(2026, 11, 3, 6, 0, tzinfo=UTC), Totals(data_down_bytes=11 * MB)),  # 3 Nov
        (sim, datetime(2026, 12, 1, 4, 30, tzinfo=UTC), Totals(data_up_bytes=3 * MB, sms_out=4)),
        (sim, datetime(2026, 12, 1, 5, 30, tzinfo=UTC), Totals(data_up_bytes=5 * MB)),  # 1 Dec
        (
            sim,
            datetime(2026, 12, 3, 2, 0, tzinfo=UTC),  # 2 Dec, 21:00 in New York
            Totals(
                data_up_bytes=2 * MB,
                data_down_bytes=5 * MB,
                sms_out=2,
                sms_in=1,
                voice_seconds=150,
            ),
        ),
    )
    page = console.get("/console/").text
    columns = day_columns(page)
    assert len(columns) == 30
    assert columns[0] == ("Tue 3 Nov", 11 * MB)  # 2 November is the 31st day back: not shown
    assert columns[-3:] == [("Mon 30 Nov", 3 * MB), ("Tue 1 Dec", 5 * MB), ("Wed 2 Dec", 7 * MB)]
    assert [value for _, value in columns[1:-3]] == [0] * 26
    assert "Wed 2 Dec: 7 MB" in page  # the amount each column shows, in MB
    days = section(page, "usage-days")
    assert '<strong id="usage-30-days">26 MB</strong> in 30 days' in days
    assert "America/New_York" in days
    # The scale: round amounts from 0 to the top (11 MB rounds up to 20 MB).
    ticks = re.findall(r'class="label tick">([^<]*)<', days)
    assert ticks == ["0", "10 MB", "20 MB"]

    month = section(page, "usage-month")
    totals = {
        name: " ".join(re.sub(r"<[^>]+>", "", value).split())
        for name, value in re.findall(r'<dd id="month-(\w+)">(.*?)</dd>', month, re.S)
    }
    assert totals == {
        "data": "12 MB (7 MB up, 5 MB down)",  # 5 + 7: not November's 3 MB
        "sms": "3 messages (2 sent, 1 received)",
        "voice": "2.5 minutes (150 seconds)",
    }
    assert "December 2026 so far" in month


@pytest.mark.usefixtures("overview")
def test_the_top_ten_data_users_of_the_month_with_their_threshold(
    console: TestClient,
    engine: Engine,
    clock: ManualClock,
    other_tenant: Tenant,
    settings: Settings,
) -> None:
    today = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    demo = [f"3247000000{n}" if n < 10 else f"324700000{n}" for n in range(1, 13)]
    add_sim(engine, clock, demo_account(engine), "32470000500")  # no threshold in its profile
    add_sim(engine, clock, other_tenant.account_id, "32499000001")
    use(
        engine,
        *[
            (iccid_of(engine, m), today, Totals(data_down_bytes=n * 7 * MB))
            for n, m in enumerate(demo, 1)
        ],
        (iccid_of(engine, "32470000500"), today, Totals(data_up_bytes=100 * MB)),
        (iccid_of(engine, "32470000013"), today, Totals(sms_out=40)),  # no data: not listed
        # The neighbour's heavy user is its own: never listed here, never counted.
        (iccid_of(engine, "32499000001"), today, Totals(data_down_bytes=10_000 * MB)),
    )
    page = console.get("/console/").text
    rows = top_rows(page)
    assert [msisdn for _, _, msisdn, *_ in rows] == ["32470000500", *reversed(demo[3:])]
    link, iccid, _, data, threshold, used = rows[0]
    assert (iccid, data, threshold, used) == (
        iccid_of(engine, "32470000500"),
        "100 MB",
        "not set",
        "—",
    )
    assert console.get(link).status_code == 200  # the SIM's own page
    assert monthly_data_threshold(engine, "32470000012") == 3_000
    assert rows[1][3:] == ("84 MB", "3,000 MB", "2.8%")  # 84 of 3,000 MB
    for row, n in zip(rows[1:], range(12, 3, -1), strict=True):
        _, iccid, msisdn, data, threshold, used = row
        limit = monthly_data_threshold(engine, msisdn)
        assert iccid == iccid_of(engine, msisdn)
        assert data == f"{n * 7} MB"
        assert (threshold, used) == (f"{limit:,} MB", f"{round(100 * n * 7 / limit, 1)}%")
    assert "32499000001" not in page
    assert iccid_of(engine, "32499000001") not in page
    month_data = section(page, "usage-month")
    assert f"{(100 + 7 * 78):,} MB" in month_data  # 1 to 12 times 7 MB, and 100 MB: 646 MB

    # And the neighbour sees its own usage only.
    add_user(engine, clock, other_tenant.account_id, "b@example.com")
    with console_client(settings, engine, clock) as other:
        sign_in(other, engine, clock, "b@example.com")
        theirs = other.get("/console/").text
    assert [msisdn for _, _, msisdn, *_ in top_rows(theirs)] == ["32499000001"]
    assert "10 GB" in section(theirs, "usage-month")
    assert "32470000500" not in theirs


@pytest.mark.usefixtures("overview")
def test_a_new_account_is_told_there_is_no_usage_yet(console: TestClient) -> None:
    page = console.get("/console/").text
    assert "No usage yet." in section(page, "usage")
    assert 'class="day"' not in page
    assert 'id="top-consumers"' not in page


@pytest.mark.usefixtures("overview")
def test_usage_only_months_ago_is_not_called_none_yet(console: TestClient, engine: Engine) -> None:
    sim = iccid_of(engine, "32470000001")
    use(engine, (sim, datetime(2026, 9, 15, 12, 0, tzinfo=UTC), Totals(data_down_bytes=MB)))
    usage = section(console.get("/console/").text, "usage")
    assert "No usage in the last 30 days or this month." in usage
    assert "No usage yet" not in usage


@pytest.mark.usefixtures("overview")
def test_a_deleted_sims_old_usage_still_counts_as_the_accounts(
    console: TestClient, engine: Engine
) -> None:
    """The account's history keeps a deleted SIM's usage: months on, it is not told it has
    none yet."""
    sim = iccid_of(engine, "32470000001")
    use(engine, (sim, datetime(2026, 9, 15, 12, 0, tzinfo=UTC), Totals(data_down_bytes=MB)))
    with write_transaction(engine) as conn:
        conn.execute(sim_cards.delete().where(sim_cards.c.iccid == sim))
    usage = section(console.get("/console/").text, "usage")
    assert "No usage in the last 30 days or this month." in usage
    assert "No usage yet" not in usage
