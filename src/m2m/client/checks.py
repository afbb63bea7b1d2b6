"""What is checked before anything is sent, so that a mistake never leaves half a job done."""

from __future__ import annotations

from collections.abc import Iterable

from m2m.client.models import Device
from m2m.identifiers import IdentifierType, iccid_format_problem, imsi_problem, msisdn_problem

OPERATIONS = ("activation", "deactivation", "reactivation", "termination")


def check_header_value(name: str, value: str) -> None:
    """Values sent as headers must be printable ASCII (HTTP cannot carry the rest safely)."""
    if not all(" " <= char <= "~" for char in value):
        raise ValueError(f"{name} may only hold printable ASCII characters")


def check_request(operation: str, callback_token: str) -> None:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    if not callback_token:
        raise ValueError("callback_token is required: it is sent back with every message")
    check_header_value("callback_token", callback_token)


def device_problem(device: Device) -> str | None:
    """A format problem the server would refuse the whole request for, checked beforehand."""
    value = device.identifier.strip()
    if device.identifier_type is IdentifierType.MSISDN:
        return msisdn_problem(value.removeprefix("+"))
    if device.identifier_type is IdentifierType.ICCID:
        return iccid_format_problem(value)
    return imsi_problem(value)


def as_devices(devices: Iterable[Device | str]) -> list[Device]:
    """Devices as given; a plain string is an MSISDN."""
    return [d if isinstance(d, Device) else Device.msisdn(d) for d in devices]
