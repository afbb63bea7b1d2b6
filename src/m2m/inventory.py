"""Reading the SIM inventory for an authorized caller: one SIM by an identifier, or a page.

The caller's account was checked before (``m2m.access``); every read here is limited to that
account, so another account's SIM is "not found" by any identifier and absent from any list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from m2m.profile import listed_sim_json
from m2m.sim_query import ListQuery, Lookup, Position, encode_cursor
from m2m.storage import inventory as inventory_store
from m2m.storage.inventory import InventorySim


@dataclass(frozen=True, slots=True)
class Page:
    body: str  # the page's answer: a JSON array of the listed profiles
    next_cursor: str | None  # None: this is the last page
    total: int | None  # only when the query asked for it


def listed_json(sim: InventorySim) -> str:
    """The documented profile, then which SIM it is (the documented profile names it only by
    its IMSI, in ``Device``) and its labels, as JSON text."""
    return listed_sim_json(
        sim.profile_json,
        sim.cost_center,
        sim.state,
        sim.imsi,
        iccid=sim.iccid,
        msisdn=sim.msisdn,
        labels_json=sim.labels_json,
    )


def read_sim(engine: Engine, account_id: int, lookup: Lookup) -> str | None:
    """The account's SIM with this identifier, as answered (a one-element JSON array); None if
    the account has none."""
    with engine.connect() as conn:
        sim = inventory_store.find_sim(conn, account_id, lookup.column, lookup.value)
    return f"[{listed_json(sim)}]" if sim is not None else None


def list_page(engine: Engine, account_id: int, query: ListQuery) -> Page:
    """One page of the account's SIMs, the cursor of the next one and, if asked, the total."""
    with engine.connect() as conn:
        sims, more = inventory_store.list_sims(
            conn, account_id, query.filters, query.after, query.limit
        )
        total = inventory_store.count_sims(conn, account_id, query.filters) if query.count else None
    next_cursor = None
    if more:
        last = sims[-1]
        next_cursor = encode_cursor(query.filters, Position(last.id, last.updated_at))
    return Page("[" + ",".join(map(listed_json, sims)) + "]", next_cursor, total)
