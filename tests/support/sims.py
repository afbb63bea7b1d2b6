"""SIMs written straight into the database (no import file, no API), and counting rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from m2m.clock import ManualClock
from m2m.identifiers import luhn_check_digit
from m2m.storage import sims as sim_store
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards, sim_labels

FIRST_BULK_MSISDN = 32480000000


def add_sim(
    engine: Engine,
    clock: ManualClock,
    account_id: int,
    msisdn: str,
    profile: dict[str, Any] | None = None,
) -> None:
    """One Ready SIM in the account, its ICCID and IMSI made from ``msisdn``."""
    now = clock.now()
    with write_transaction(engine) as conn:
        sim_store.insert_sims(
            conn,
            [
                {
                    "account_id": account_id,
                    "iccid": "8932019999" + msisdn[-9:],
                    "imsi": "20601" + msisdn[-10:],
                    "msisdn": msisdn,
                    "state": "Ready",
                    "cost_center": None,
                    "profile": profile or {},
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )


def add_active_sims(
    engine: Engine, count: int, now: datetime, *, account_id: int = 1, first: int = 0
) -> list[str]:
    """``count`` Active SIMs, the ``first``-th onwards of one numbering (so that calls with
    different ``first`` never collide), in the sandbox account (id 1) or ``account_id``;
    returns their MSISDNs."""
    rows = []
    for n in range(first, first + count):
        payload = f"893201{800000000000 + n:012d}"
        rows.append(
            {
                "account_id": account_id,
                "iccid": payload + str(luhn_check_digit(payload)),
                "imsi": f"20601{2000000000 + n:010d}",
                "msisdn": str(FIRST_BULK_MSISDN + n),
                "state": "Active",
                "cost_center": None,
                "profile": {},
                "created_at": now,
                "updated_at": now,
            }
        )
    with write_transaction(engine) as conn:
        sim_store.insert_sims(conn, rows)
    return [row["msisdn"] for row in rows]


def count(engine: Engine, table: object, *where: object) -> int:
    """The number of rows of ``table`` (any table, not only SIMs) matching every ``where``."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int(conn.execute(query).scalar_one())


def set_labels(engine: Engine, msisdn: str, labels: dict[str, str]) -> None:
    """Give the SIM these labels (its whole set), in both places a write keeps them: the SIM's
    document and the ``sim_labels`` rows the filters search."""
    with write_transaction(engine) as conn:
        sim_id, account_id = conn.execute(
            select(sim_cards.c.id, sim_cards.c.account_id).where(sim_cards.c.msisdn == msisdn)
        ).one()
        conn.execute(update(sim_cards).where(sim_cards.c.id == sim_id).values(labels=labels))
        conn.execute(delete(sim_labels).where(sim_labels.c.sim_id == sim_id))
        if labels:
            conn.execute(
                insert(sim_labels),
                [
                    {"sim_id": sim_id, "account_id": account_id, "key": k, "value": v}
                    for k, v in labels.items()
                ],
            )


def change_sim(engine: Engine, msisdn: str, when: datetime, **values: Any) -> None:
    """Change the SIM's columns (state, cost_center, profile …) as of ``when``, as every write
    does: ``updated_at`` set, ``version`` bumped."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(sim_cards)
            .where(sim_cards.c.msisdn == msisdn)
            .values(**values, updated_at=when, version=sim_cards.c.version + 1)
        )
