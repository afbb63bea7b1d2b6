"""Pure checks and normalisation of SIM identifiers (ICCID, IMSI, MSISDN)."""

from __future__ import annotations

import re
from enum import StrEnum

_DIGITS = re.compile(r"[0-9]+")
# As accepted on the wire (MSISDN: E.164, with or without +), for OpenAPI and validation.
MSISDN_PATTERN = r"^\+?[0-9]{8,15}$"
ICCID_FORMAT_PATTERN = r"^[0-9]{19,20}$"
IMSI_PATTERN = r"^[0-9]{15}$"


class IdentifierType(StrEnum):
    MSISDN = "MSISDN"
    ICCID = "ICCID"
    IMSI = "IMSI"


class SimState(StrEnum):
    """The lifecycle states, spelled as on the wire."""

    READY = "Ready"
    ACTIVE = "Active"
    DEACTIVATED = "Deactivated"
    TERMINATED = "Terminated"


def luhn_check_digit(payload: str) -> int:
    """The Luhn digit that completes ``payload`` (digits only)."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        value = ord(char) - 48
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    return len(number) > 1 and luhn_check_digit(number[:-1]) == ord(number[-1]) - 48


def normalize_msisdn(raw: str) -> str:
    """Strip surrounding blanks and one leading ``+`` (E.164 written with or without it)."""
    value = raw.strip()
    return value[1:] if value.startswith("+") else value


def msisdn_problem(msisdn: str) -> str | None:
    if not _DIGITS.fullmatch(msisdn) or not 8 <= len(msisdn) <= 15:
        return "MSISDN must be 8 to 15 digits"
    return None


def imsi_problem(imsi: str) -> str | None:
    if not _DIGITS.fullmatch(imsi) or len(imsi) != 15:
        return "IMSI must be exactly 15 digits"
    return None


def iccid_format_problem(iccid: str) -> str | None:
    if not _DIGITS.fullmatch(iccid) or not 19 <= len(iccid) <= 20:
        return "ICCID must be 19 or 20 digits"
    return None


def iccid_problem(iccid: str) -> str | None:
    """Format and check digit: for SIMs entering the inventory."""
    problem = iccid_format_problem(iccid)
    if problem:
        return problem
    if not luhn_valid(iccid):
        return "ICCID check digit (Luhn) is wrong"
    return None


def state_problem(state: str) -> str | None:
    if state not in SimState._value2member_map_:
        allowed = ", ".join(s.value for s in SimState)
        return f"state must be one of {allowed}"
    return None
