"""An account's callback configuration: URL, custom headers, and the version of its signing
secret (the secret itself is derived, never stored; see ``m2m.callbacks.signing``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from m2m.storage.tables import callback_configs


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    url: str | None
    headers: dict[str, str]
    signing_key_version: int


def get_callback_config(conn: Connection, account_id: int) -> CallbackConfig | None:
    row = conn.execute(
        select(
            callback_configs.c.url,
            callback_configs.c.headers,
            callback_configs.c.signing_key_version,
        ).where(callback_configs.c.account_id == account_id)
    ).one_or_none()
    return CallbackConfig(**row._mapping) if row else None


def set_callback_config(
    conn: Connection, account_id: int, url: str, headers: dict[str, str], now: datetime
) -> None:
    updated = conn.execute(
        update(callback_configs)
        .where(callback_configs.c.account_id == account_id)
        .values(url=url, headers=headers, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(callback_configs).values(
                account_id=account_id, url=url, headers=headers, updated_at=now
            )
        )


def bump_version(conn: Connection, account_id: int, now: datetime) -> int:
    """Move the account to its next signing-secret version; returns that version."""
    updated = conn.execute(
        update(callback_configs)
        .where(callback_configs.c.account_id == account_id)
        .values(
            signing_key_version=callback_configs.c.signing_key_version + 1,
            signing_key_rotated_at=now,
            updated_at=now,
        )
    )
    if updated.rowcount == 0:
        # No callback configured yet: version 1 was the implicit one; 2 replaces it.
        conn.execute(
            insert(callback_configs).values(
                account_id=account_id,
                url=None,
                headers={},
                signing_key_version=2,
                signing_key_rotated_at=now,
                updated_at=now,
            )
        )
    return int(
        conn.execute(
            select(callback_configs.c.signing_key_version).where(
                callback_configs.c.account_id == account_id
            )
        ).scalar_one()
    )
