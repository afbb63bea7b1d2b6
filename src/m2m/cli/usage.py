"""``m2m usage``: a SIM's usage (``m2m usage ICCID --since 7d``) and the account's largest
users (``m2m usage top --month``), as a table, JSON or CSV."""

from __future__ import annotations

import csv
import itertools
import re
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from m2m.cli.common import console, print_json, print_table
from m2m.cli.remote import CaBundleOption, ConfigOption, ProfileOption, remote
from m2m.client import SimUsage, UsageGroup
from m2m.client.usage import UsageCounters

if TYPE_CHECKING:
    from typer._click import Context

COUNTERS = ("data_up_bytes", "data_down_bytes", "sms_out", "sms_in", "voice_seconds")
_SINCE = re.compile(r"^([1-9][0-9]{0,3})([dm])$")


class _SimFirst(TyperGroup):
    """``m2m usage ICCID …`` is ``m2m usage sim ICCID …``: a SIM is what people ask about
    most, and an ICCID (digits) can never be mistaken for a subcommand."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["sim", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_SimFirst,
    help="Usage (an m2m extension): a SIM's, and the account's largest users.",
    no_args_is_help=True,
)

FromOption = Annotated[
    str | None, typer.Option("--from", help="The first day, YYYY-MM-DD (the account's days).")
]
ToOption = Annotated[str | None, typer.Option("--to", help="The last day, YYYY-MM-DD.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="The API's answer, as JSON.")]
CsvFlag = Annotated[bool, typer.Option("--csv", help="One CSV row a period or group.")]


def since_day(since: str, today: date) -> date:
    """``7d``: the last 7 days, today included; ``3m``: this month and the two before."""
    found = _SINCE.match(since)
    if found is None:
        raise typer.BadParameter(
            "a number of days or months, such as 7d or 3m", param_hint="--since"
        )
    count, unit = int(found.group(1)), found.group(2)
    if unit == "d":
        return today - timedelta(days=count - 1)
    index = today.year * 12 + today.month - 1 - (count - 1)
    return date(index // 12, index % 12 + 1, 1)


def _mb(value: int) -> str:
    return f"{value / 1_000_000:,.3f}"


def _counters_cells(counters: UsageCounters) -> list[str]:
    return [
        _mb(counters.data_bytes),
        f"{counters.sms_out}/{counters.sms_in}",
        f"{counters.voice_seconds / 60:,.1f}",
    ]


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    writer = csv.DictWriter(sys.stdout, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _formats(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise typer.BadParameter("choose --json or --csv", param_hint="--csv")


@app.command("sim")
def sim(
    iccid: Annotated[str, typer.Argument(help="The SIM's ICCID.")],
    since: Annotated[
        str | None,
        typer.Option(help="The last days or months: 7d (today included), 3m; instead of --from."),
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    by: Annotated[str, typer.Option("--by", help="hour (UTC), day or month.")] = "day",
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """A SIM's usage by day (or hour, or month), and where it stands against its thresholds."""
    _formats(as_json, as_csv)
    if since is not None:
        if start is not None:
            raise typer.BadParameter("give --since or --from, not both", param_hint="--since")
        start = since_day(since, datetime.now(UTC).date()).isoformat()
    with remote(profile, config, ca_bundle) as (client, _):
        usage = client.sim_usage(iccid, granularity=by, start=start, end=end)
    if as_json:
        print_json(usage.model_dump(mode="json", by_alias=True))
        return
    periods = [p.model_dump() for p in usage.usage]
    if as_csv:
        _csv(periods, ["start", *COUNTERS])
        return
    _show_sim(usage)


def _show_sim(usage: SimUsage) -> None:
    print_table(
        f"{usage.iccid} ({usage.msisdn}), {usage.from_} to {usage.to}, {usage.time_zone}",
        [usage.granularity, "data MB", "SMS out/in", "voice min"],
        [[p.start, *_counters_cells(p)] for p in usage.usage],
    )
    for t in usage.thresholds:
        console.print(
            f"{t.service} {t.period} threshold ({t.period_start}): {t.used:g} of {t.threshold} "
            f"{t.unit} ({t.percent_used:g}%)",
            highlight=False,
        )


@app.command("top")
def top(
    month: Annotated[
        str | None,
        typer.Option(
            help="A month, YYYY-MM (default: this month so far); or give --from and --to."
        ),
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    sort: Annotated[str, typer.Option("--by", help="data, sms or voice.")] = "data",
    group_by: Annotated[
        str, typer.Option(help="sim, cost_center, label:<key>, day or month.")
    ] = "sim",
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="How many rows.")] = 20,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """The account's largest users of data (or SMS, or voice), per SIM or another grouping."""
    _formats(as_json, as_csv)
    if month is not None:
        if start is not None or end is not None:
            raise typer.BadParameter("give --month or --from/--to", param_hint="--month")
        start, end = _month(month)
    with remote(profile, config, ca_bundle) as (client, _):
        groups = list(
            itertools.islice(
                client.usage(
                    group_by=group_by,
                    start=start,
                    end=end,
                    sort=sort,
                    page_size=min(limit, 1000),
                ),
                limit,
            )
        )
    rows = [g.model_dump(mode="json", by_alias=True, exclude_none=True) for g in groups]
    if as_json:
        print_json(rows)
        return
    if as_csv:
        columns = [*_key_columns(group_by), *COUNTERS]
        values = [[*_key_cells(group_by, g), *(getattr(g, c) for c in COUNTERS)] for g in groups]
        _csv([dict(zip(columns, row, strict=True)) for row in values], columns)
        return
    print_table(
        f"Usage by {group_by}, by {sort}",
        [*_key_columns(group_by), "data MB", "SMS out/in", "voice min"],
        [[*_key_cells(group_by, g), *_counters_cells(g)] for g in groups],
    )


def _month(text: str) -> tuple[str, str]:
    try:
        first = date.fromisoformat(f"{text}-01")
    except ValueError:
        raise typer.BadParameter("a month such as 2026-11", param_hint="--month") from None
    following = (first + timedelta(days=32)).replace(day=1)
    return first.isoformat(), (following - timedelta(days=1)).isoformat()


def _key_columns(group_by: str) -> list[str]:
    if group_by == "sim":
        return ["ICCID", "MSISDN"]
    if group_by == "cost_center":
        return ["cost_center", "sims"]
    if group_by.startswith("label:"):
        return ["label", "sims"]
    return ["start", "sims"]


def _key_cells(group_by: str, group: UsageGroup) -> list[Any]:
    if group_by == "sim":
        return [group.iccid, group.msisdn]
    if group_by == "cost_center":
        return [group.cost_center, group.sims]
    if group_by.startswith("label:"):
        return [(group.label or {}).get("value", ""), group.sims]
    return [group.start, group.sims]
