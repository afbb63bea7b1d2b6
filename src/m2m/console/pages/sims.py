"""SIM cards: the searchable, filterable list; one SIM's profile and history; lifecycle actions
on one SIM or a selection, accepted through the API's own request pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m import labels, usage_views
from m2m.console import charts
from m2m.console.sim_profile import profile_view
from m2m.console.web import PREFIX, CheckedForm, ConsoleError, SignedIn, Visitor, render
from m2m.freetext import text_problem
from m2m.identifiers import IdentifierType, SimState
from m2m.intake import Device, accept_request
from m2m.lifecycle import Operation, allowed_operations
from m2m.profile import sim_card_document
from m2m.storage import fleet
from m2m.usage import BYTES_PER_MB, UNITS, Granularity

router = APIRouter()

PAGE_SIZE = 50
MAX_SEARCH_DIGITS = 20
DEFAULT_CALLBACK_TOKEN = "console"  # noqa: S105 - a label sent back with callbacks, not a secret
MAX_CALLBACK_TOKEN = 1024


def search_digits(raw: str) -> str:
    """The digits to look for: blanks and a leading + are ignored; anything else is refused."""
    value = "".join(raw.split())
    value = value.removeprefix("+")
    if value and (not value.isascii() or not value.isdigit() or len(value) > MAX_SEARCH_DIGITS):
        raise ValueError(
            f"Search with the digits of an MSISDN, ICCID or IMSI (up to {MAX_SEARCH_DIGITS})."
        )
    return value


def _state_filter(raw: str) -> str | None:
    if not raw:
        return None
    if raw not in SimState._value2member_map_:
        raise ValueError("Filter by one of the states: " + ", ".join(s.value for s in SimState))
    return raw


def _label_filter(raw: str) -> tuple[str, str | None] | None:
    """``key=value`` or ``key`` (any value), as the API's ``label`` filter reads it."""
    text = raw.strip()
    if not text:
        return None
    parsed = labels.parse_filter(text)
    if parsed is None or (parsed[1] and text_problem("label", parsed[1], labels.VALUE_LENGTH)):
        raise ValueError(
            "Filter by a label as key=value, or key for any value (the key: letters, digits"
            f" or . _ - / :, at most {labels.KEY_LENGTH})."
        )
    return parsed


@router.get("/sims")
async def sim_list(
    request: Request,
    visitor: SignedIn,
    q: str = "",
    state: str = "",
    label: str = "",
    after: int | None = None,
    before: int | None = None,
) -> Response:
    return await _list(request, visitor, q, state, after, before, label=label)


async def _list(
    request: Request,
    visitor: Visitor,
    q: str,
    state: str,
    after: int | None = None,
    before: int | None = None,
    *,
    label: str = "",
    problem: str | None = None,
) -> Response:
    """The list page; with ``problem``, the same search again with what was wrong (a 400)."""
    context: dict[str, Any] = {
        "q": q,
        "state": state,
        "label": label,
        "states": list(SimState),
        "operations": list(Operation),
    }
    try:
        digits = search_digits(q)
        wanted_state = _state_filter(state)
        wanted_label = _label_filter(label)
    except ValueError as invalid:
        return render(
            request, "sims.html", visitor, status_code=400, error=str(invalid), page=None, **context
        )
    page = await visitor.read(
        fleet.list_sims,
        visitor.account_id,
        state=wanted_state,
        digits=digits or None,
        label=wanted_label,
        after_id=after,
        before_id=before,
        limit=PAGE_SIZE,
    )
    status = 400 if problem else 200
    return render(
        request, "sims.html", visitor, status_code=status, error=problem, page=page, **context
    )


EDIT_NOTICES = {"saved": "Saved.", "unchanged": "Nothing to save: the form had no changes."}


@router.get("/sims/{sim_id:int}")
async def sim_page(request: Request, visitor: SignedIn, sim_id: int, edit: str = "") -> Response:
    """The SIM's page; ``edit`` says how the edit form that sent here ended."""
    sim = await visitor.read(fleet.get_sim, visitor.account_id, sim_id)
    if sim is None:
        raise ConsoleError(404, "No such SIM card in your account.")
    history = await visitor.read(fleet.sim_history_of, sim_id)
    row = sim.row
    services = visitor.services
    usage = await run_in_threadpool(
        usage_views.sim_usage,
        services.engine,
        visitor.account_id,
        row.iccid,
        Granularity.DAY,
        None,
        None,
        services.clock.now(),
    )
    document = sim_card_document(sim.profile, row.cost_center, row.state, row.imsi)
    return render(
        request,
        "sim.html",
        visitor,
        sim=row,
        document=document,
        view=profile_view(document, sim.labels),
        notice=EDIT_NOTICES.get(edit),
        history=history,
        allowed=allowed_operations(SimState(row.state)),
        default_callback_token=DEFAULT_CALLBACK_TOKEN,
        usage=usage,
        chart=charts,
        units=UNITS,
        usage_total_mb=sum(t.data_bytes for _, t in usage.periods) / BYTES_PER_MB,
        usage_days=charts.daily_columns(
            [(str(day)[8:10], totals.data_bytes) for day, totals in usage.periods],
            "Data",
        ),
    )


def _operation(raw: str) -> Operation:
    try:
        return Operation(raw)
    except ValueError:
        raise ConsoleError(
            400, "Choose an operation: activation, deactivation, reactivation or termination."
        ) from None


def _sim_ids(raw: list[str]) -> list[int]:
    try:
        ids = sorted({int(v) for v in raw})
    except ValueError:
        raise ConsoleError(400, "The selection names SIM cards that do not exist.") from None
    if not ids:
        raise ConsoleError(400, "Select at least one SIM card.")
    if len(ids) > PAGE_SIZE * 4:
        raise ConsoleError(413, f"Select at most {PAGE_SIZE * 4} SIM cards at once.")
    return ids


def _callback_token(raw: str) -> str:
    token = raw.strip() or DEFAULT_CALLBACK_TOKEN
    if len(token) > MAX_CALLBACK_TOKEN or not all(" " <= c <= "~" for c in token):
        raise ConsoleError(
            400, "The callback token must be printable ASCII, at most 1024 characters."
        )
    return token


@router.post("/sims/actions")
async def act(request: Request, visitor: SignedIn, form: CheckedForm) -> Response:
    """Accept a lifecycle request for the selected SIMs (termination asks for confirmation)."""
    if not form.all("sim") and form.get("from_list") == "yes":
        # Nothing ticked: back to the same search, saying so, rather than a page of its own.
        problem = "Select at least one SIM card, then choose the request."
        return await _list(
            request,
            visitor,
            form.get("q"),
            form.get("state"),
            label=form.get("label"),
            problem=problem,
        )
    operation = _operation(form.get("operation"))
    sim_ids = _sim_ids(form.all("sim"))
    callback_token = _callback_token(form.get("callback_token"))
    if visitor.user.subscription != "active":
        raise ConsoleError(403, "The account's subscription is suspended: no lifecycle requests.")
    iccids = await visitor.read(fleet.iccids_of, visitor.account_id, sim_ids)
    if len(iccids) != len(sim_ids):
        raise ConsoleError(404, "The selection names SIM cards that are not in your account.")
    if operation is Operation.TERMINATION and form.get("confirm") != "yes":
        return await _confirm_termination(request, visitor, sim_ids, callback_token)
    tracking_number = await run_in_threadpool(
        accept_request,
        visitor.services.engine,
        visitor.services.clock,
        visitor.account_id,
        operation,
        [Device(iccids[i], IdentifierType.ICCID) for i in sim_ids],
        callback_token,
        actor=visitor.actor,
    )
    visitor.services.notify_work()
    return RedirectResponse(f"{PREFIX}/requests/{tracking_number}", status_code=303)


async def _confirm_termination(
    request: Request, visitor: Visitor, sim_ids: list[int], callback_token: str
) -> Response:
    sims = [await visitor.read(fleet.get_sim, visitor.account_id, i) for i in sim_ids[:20]]
    return render(
        request,
        "confirm.html",
        visitor,
        sim_ids=sim_ids,
        shown=[s.row for s in sims if s is not None],
        callback_token=callback_token,
    )
