"""The documented status message: the body POSTed to the callback URL for each device. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def status_message(
    tracking_number: str,
    identifier: str,
    identifier_type: str,
    result_status: str,
    messages: Sequence[str],
) -> dict[str, Any]:
    """The documented callback body."""
    return {
        "trackingNumber": tracking_number,
        "device": {"identifier": identifier, "identifierType": identifier_type},
        "resultStatus": result_status,
        "messages": list(messages),
    }
