"""``m2m sim``: read a SIM, list and search them; update one (or many, from a CSV); request
lifecycle changes, in bulk from a file, and follow them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from m2m.cli.common import JsonOption, fail, print_json, print_json_line, print_table
from m2m.cli.devices_file import read_devices
from m2m.cli.follow import follow, submit
from m2m.cli.remote import (
    USAGE_ERROR,
    CaBundleOption,
    ConfigOption,
    ProfileOption,
    remote,
    user_mistakes,
)
from m2m.cli.sim_changes import (
    ChangesError,
    custom_field_options,
    patch_from_options,
    rows_from_file,
)
from m2m.cli.sim_updates import update_all
from m2m.client import Device, ListedSimCard, SimCard
from m2m.client.core import DEFAULT_BATCH_SIZE
from m2m.client.paging import DEFAULT_PAGE_SIZE
from m2m.identifiers import IdentifierType

app = typer.Typer(
    help="SIM cards: read a profile, request lifecycle changes.", no_args_is_help=True
)

DEFAULT_CALLBACK_TOKEN = "m2m-cli"  # noqa: S105 - a label sent back with callbacks, not a secret


def profile_rows(msisdn: str, sim: SimCard) -> list[tuple[str, str]]:
    data = sim.data_service
    rows = [
        ("MSISDN", msisdn),
        ("State", sim.state),
        (sim.device.identifier_type, sim.device.identifier),
        ("Cost center", sim.cost_center),
        ("Data plan", " - ".join(p for p in (data.plan.code, data.plan.description) if p)),
        ("Data thresholds", f"{data.daily_threshold} daily, {data.monthly_threshold} monthly"),
        ("Data features", ", ".join(f.code for f in data.features if f.enabled)),
        ("Service areas", ", ".join(a.code for a in data.service_areas)),
        ("SMS plan", sim.sms_service.plan_code),
        ("Voice plan", sim.voice_service.plan_code),
    ]
    for access_point in sim.access_points:
        properties = access_point.properties
        details = ", ".join(v for v in (properties.static_ip, properties.user_name) if v)
        rows.append(("APN", f"{access_point.code} ({details})" if details else access_point.code))
    rows.extend((name, value) for name, value in sim.custom_fields.items() if value)
    return rows


@app.command("get")
def get(
    msisdn: Annotated[str, typer.Argument(help="The SIM card's MSISDN.")],
    as_json: bool = JsonOption,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show a SIM card's profile."""
    with remote(profile, config, ca_bundle) as (client, _):
        sim = client.get_sim(msisdn)
    if as_json:
        print_json([sim.model_dump(mode="json", by_alias=True)])  # as the API answers it
        return
    print_table(f"SIM {msisdn}", ["Field", "Value"], profile_rows(msisdn, sim))


_LIST_COLUMNS = ("ICCID", "MSISDN", "IMSI", "State", "Cost center")


def _list_line(sim: ListedSimCard) -> str:
    return "\t".join((sim.iccid, sim.msisdn, sim.device.identifier, sim.state, sim.cost_center))


@app.command("list")
def list_sims(
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Ready, Active, Deactivated, Terminated.")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE, or KEY for any value; every one must match."),
    ] = None,
    cost_center: Annotated[str | None, typer.Option(help="Exactly this cost center.")] = None,
    custom_field: Annotated[
        list[str] | None, typer.Option("--custom-field", help="N=VALUE (N from 1 to 7).")
    ] = None,
    plan: Annotated[str | None, typer.Option(help="The data plan's code.")] = None,
    updated_since: Annotated[
        str | None, typer.Option(help="Changed since this ISO 8601 time (with its offset).")
    ] = None,
    msisdn_prefix: Annotated[str | None, typer.Option(help="MSISDN starts with.")] = None,
    iccid_prefix: Annotated[str | None, typer.Option(help="ICCID starts with.")] = None,
    imsi_prefix: Annotated[str | None, typer.Option(help="IMSI starts with.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many SIMs (default: all).")
    ] = None,
    page_size: Annotated[
        int, typer.Option(min=1, max=1000, help="SIMs asked for per request.")
    ] = DEFAULT_PAGE_SIZE,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per line (the API's document), streamed."),
    ] = False,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """List your SIM cards, filtered; pages are followed as they are printed, so any number of
    SIMs prints in flat memory."""
    with user_mistakes():
        custom_fields = custom_field_options(custom_field or [])
    with remote(profile, config, ca_bundle) as (client, _):
        sims: Iterator[ListedSimCard] = client.sims(
            state=state or None,
            label=label or None,
            cost_center=cost_center,
            custom_fields=custom_fields,
            plan=plan,
            updated_since=updated_since,
            msisdn_prefix=msisdn_prefix,
            iccid_prefix=iccid_prefix,
            imsi_prefix=imsi_prefix,
            page_size=min(page_size, limit) if limit else page_size,
        )
        if limit is not None:
            sims = islice(sims, limit)
        if not as_json:
            typer.echo("\t".join(_LIST_COLUMNS))
        for sim in sims:
            if as_json:
                print_json_line(sim.model_dump(mode="json", by_alias=True))
            else:
                typer.echo(_list_line(sim))


def gather_devices(
    identifiers: list[str], from_file: Path | None, kind: IdentifierType
) -> list[Device]:
    devices = [Device(identifier=i, identifier_type=kind) for i in identifiers]
    if from_file is not None:
        devices += read_devices(from_file, kind)
    if not devices:
        raise fail("no devices: give identifiers as arguments, or --from-file FILE", USAGE_ERROR)
    return devices


def _lifecycle_command(operation: str) -> Callable[..., None]:
    def command(
        identifiers: Annotated[
            list[str] | None,
            typer.Argument(help="MSISDNs (or, with --type, ICCIDs or IMSIs).", show_default=False),
        ] = None,
        from_file: Annotated[
            Path | None,
            typer.Option(
                "--from-file",
                "-f",
                help="CSV of devices: one identifier a line, or identifier,identifierType, "
                "or a header naming an identifier/msisdn/iccid/imsi column.",
                dir_okay=False,
            ),
        ] = None,
        kind: Annotated[
            IdentifierType,
            typer.Option(
                "--type", help="Identifier type where none is given.", case_sensitive=False
            ),
        ] = IdentifierType.MSISDN,
        callback_token: Annotated[
            str | None,
            typer.Option(
                help="x-callback-token sent back with every status message "
                f"(env: M2M_CALLBACK_TOKEN; default: {DEFAULT_CALLBACK_TOKEN})."
            ),
        ] = None,
        batch_size: Annotated[
            int,
            typer.Option(min=1, help="Devices per request; halved when the server says too many."),
        ] = DEFAULT_BATCH_SIZE,
        wait: Annotated[
            bool,
            typer.Option("--wait", help="Follow the requests to the end, then print a summary."),
        ] = False,
        poll_seconds: Annotated[float, typer.Option(min=0.01, hidden=True)] = 1.0,
        profile: ProfileOption = None,
        config: ConfigOption = None,
        ca_bundle: CaBundleOption = None,
    ) -> None:
        with user_mistakes():
            devices = gather_devices(identifiers or [], from_file, kind)
        with remote(profile, config, ca_bundle) as (client, found):
            token = callback_token or found.callback_token or DEFAULT_CALLBACK_TOKEN
            numbers = submit(client, operation, devices, token, batch_size)
            if wait:
                code = follow(client, numbers, len(devices), poll_seconds)
                if code:
                    raise typer.Exit(code)

    command.__doc__ = f"Request the {operation} of SIM cards; prints each request's TrackingNumber."
    return command


for _operation, _name in (
    ("activation", "activate"),
    ("deactivation", "deactivate"),
    ("reactivation", "reactivate"),
    ("termination", "terminate"),
):
    app.command(_name)(_lifecycle_command(_operation))


def updated_rows(sim: ListedSimCard) -> list[tuple[str, str]]:
    rows = [("ICCID", sim.iccid), ("ETag", sim.etag or "")]
    rows += profile_rows(sim.msisdn, sim)
    rows += [(f"Label {key}", value) for key, value in sim.labels.items()]
    return rows


@app.command("update")
def update(
    iccid: Annotated[
        str | None, typer.Argument(help="The SIM card's ICCID.", show_default=False)
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="KEY=VALUE sets a label; KEY= removes it."),
    ] = None,
    custom_fields: Annotated[
        list[str] | None,
        typer.Option("--custom-field", help="N=VALUE sets Custom Field N (1-7); N= clears it."),
    ] = None,
    cost_center: Annotated[
        str | None, typer.Option("--cost-center", help='The cost center ("" clears it).')
    ] = None,
    thresholds: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="data|sms|voice.daily|monthly=N, e.g. data.daily=1000 (empty N: 0).",
        ),
    ] = None,
    if_match: Annotated[
        str | None,
        typer.Option("--if-match", help='Only if the SIM is still at this ETag (e.g. "3").'),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            "-f",
            help="Bulk: a CSV with an iccid column and the fields to change (cost_center, "
            "custom_field_N, data_daily_threshold …, label:KEY). Safe to run again.",
            dir_okay=False,
        ),
    ] = None,
    empty_clears: Annotated[
        bool,
        typer.Option("--empty-clears", help="Bulk: an empty cell clears its field."),
    ] = False,
    as_json: bool = JsonOption,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Change a SIM's labels, custom fields, cost center or thresholds; or many, from a CSV."""
    options = (labels, custom_fields, cost_center, thresholds, if_match)
    if from_file is not None:
        if iccid is not None or any(option is not None for option in options):
            raise fail("--from takes no ICCID and no field options", USAGE_ERROR)
        with user_mistakes():
            try:
                rows = rows_from_file(from_file.read_bytes(), empty_clears=empty_clears)
            except OSError as error:
                raise ChangesError(f"{from_file}: {error.strerror}") from error
        with remote(profile, config, ca_bundle) as (client, _):
            code = update_all(client, rows, as_json=as_json)
        if code:
            raise typer.Exit(code)
        return
    if iccid is None:
        raise fail("give an ICCID (or --from FILE)", USAGE_ERROR)
    with user_mistakes():
        patch = patch_from_options(
            labels=labels or (),
            custom_fields=custom_fields or (),
            cost_center=cost_center,
            thresholds=thresholds or (),
        )
    if not patch:
        raise fail(
            "nothing to change: give --label, --custom-field, --cost-center or --threshold",
            USAGE_ERROR,
        )
    with remote(profile, config, ca_bundle) as (client, _):
        sim = client.update_sim(iccid, patch, if_match=if_match)
    if as_json:
        print_json(sim.model_dump(mode="json", by_alias=True))
        return
    print_table(f"SIM {iccid}", ["Field", "Value"], updated_rows(sim))
