"""Editing one SIM: its cost center, custom fields, thresholds and labels, as the API's PATCH
edits them (the same checks, the same storage, an audit entry naming the console user)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.console import sim_form
from m2m.console.sim_profile import SERVICES
from m2m.console.web import PREFIX, CheckedForm, ConsoleError, SignedIn, Visitor, render
from m2m.profile import CUSTOM_FIELD_NAMES
from m2m.sim_edit import EditableSim, editable_document
from m2m.storage import fleet, sim_updates
from m2m.storage.engine import write_transaction
from m2m.storage.fleet import SimDetail

router = APIRouter()

STALE = (
    "This SIM changed since the form was opened (another edit, here or through the API). "
    "The form now shows it as it is: make your changes again."
)


async def _sim(visitor: Visitor, sim_id: int) -> SimDetail:
    sim = await visitor.read(fleet.get_sim, visitor.account_id, sim_id)
    if sim is None:
        raise ConsoleError(404, "No such SIM card in your account.")
    return sim


def _document(sim: SimDetail) -> dict[str, Any]:
    return editable_document(EditableSim(sim.profile, sim.row.cost_center, sim.labels))


def _page(
    request: Request,
    visitor: Visitor,
    sim: SimDetail,
    values: sim_form.FormValues,
    *,
    status_code: int = 200,
    problems: sim_form.Problems | None = None,
    notice: str | None = None,
) -> Response:
    return render(
        request,
        "sim_edit.html",
        visitor,
        status_code=status_code,
        sim=sim.row,
        version=sim.version,
        fields=values.fields,
        label_rows=values.with_new_rows(),
        problems=problems or {},
        notice=notice,
        custom_fields=[(n, sim_form.custom_field_input(n)) for n in CUSTOM_FIELD_NAMES],
        services=[(key, name) for key, name, _ in SERVICES],
        periods=[p for p, _ in sim_form.PERIODS],
        threshold_input=sim_form.threshold_input,
    )


@router.get("/sims/{sim_id:int}/edit")
async def edit_form(request: Request, visitor: SignedIn, sim_id: int) -> Response:
    sim = await _sim(visitor, sim_id)
    return _page(request, visitor, sim, sim_form.values_of(_document(sim)))


@router.post("/sims/{sim_id:int}/edit")
async def edit(request: Request, visitor: SignedIn, form: CheckedForm, sim_id: int) -> Response:
    """Save the form: the merge patch from the SIM as the form showed it (its version) to the
    form's values; a SIM changed since is shown again rather than overwritten."""
    if visitor.user.subscription != "active":
        raise ConsoleError(403, "The account's subscription is suspended: SIMs cannot be changed.")
    sim = await _sim(visitor, sim_id)
    try:
        shown_version = int(form.get("version"))
        values = sim_form.submitted(
            dict(form.fields),
            form.all("label_key"),
            form.all("label_value"),
            form.all("label_remove"),
        )
    except ValueError as error:
        raise ConsoleError(400, "The form is incomplete. Reload it and retry.") from error
    if shown_version != sim.version:
        return _page(
            request, visitor, sim, sim_form.values_of(_document(sim)), status_code=409, notice=STALE
        )
    patch, problems = sim_form.patch_from(values, _document(sim))
    if problems:
        return _page(request, visitor, sim, values, status_code=422, problems=problems)
    services = visitor.services

    def save() -> sim_updates.UpdateOutcome:
        with write_transaction(services.engine) as conn:
            return sim_updates.update_sim(
                conn,
                account_id=visitor.account_id,
                iccid=sim.row.iccid,
                patch=patch,
                if_match={shown_version},
                actor=lambda _conn: visitor.actor,
                now=services.clock.now(),
            )

    outcome = await run_in_threadpool(save)
    if outcome.sim is None:
        raise ConsoleError(404, "No such SIM card in your account.")
    if outcome.stale:
        fresh = await _sim(visitor, sim_id)
        return _page(
            request,
            visitor,
            fresh,
            sim_form.values_of(_document(fresh)),
            status_code=409,
            notice=STALE,
        )
    if outcome.problems:
        found: sim_form.Problems = {}
        for problem in outcome.problems:
            found.setdefault(sim_form.input_of(problem.field), []).append(problem.problem)
        return _page(request, visitor, sim, values, status_code=422, problems=found)
    ended = "saved" if outcome.changed else "unchanged"
    return RedirectResponse(f"{PREFIX}/sims/{sim_id}?edit={ended}", status_code=303)
