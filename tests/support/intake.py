"""Lifecycle requests accepted straight through ``m2m.intake``, as the API and the console accept
them (no HTTP, any account)."""

from __future__ import annotations

from sqlalchemy import Engine

from m2m import intake
from m2m.audit import ADMIN_CLI
from m2m.clock import Clock
from m2m.identifiers import IdentifierType
from m2m.lifecycle import Operation


def accept(
    engine: Engine,
    clock: Clock,
    account_id: int,
    operation: Operation,
    msisdns: list[str],
    callback_token: str = "test",
) -> str:
    """The request for ``msisdns`` in the account, committed with its items; its
    TrackingNumber."""
    devices = [intake.Device(msisdn, IdentifierType.MSISDN) for msisdn in msisdns]
    return intake.accept_request(
        engine, clock, account_id, operation, devices, callback_token, actor=ADMIN_CLI
    )
