"""Usage tests' shared helpers: a sandbox SIM to count usage for."""

from __future__ import annotations

from sqlalchemy import Engine, select

from m2m.sandbox import ACCOUNT_NAME
from m2m.storage.tables import accounts, sim_cards


def sandbox_sim(engine: Engine, n: int = 0) -> tuple[str, dict[str, object]]:
    with engine.connect() as conn:
        row = conn.execute(
            select(sim_cards.c.iccid, sim_cards.c.profile)
            .join(accounts)
            .where(accounts.c.name == ACCOUNT_NAME)
            .order_by(sim_cards.c.id)
            .offset(n)
            .limit(1)
        ).one()
    return row.iccid, row.profile
