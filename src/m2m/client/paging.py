"""The SIM list's query and its pages, as the SDK sends and follows them (pure).

The next page is named by the answer's ``Link: <url>; rel="next"`` (RFC 8288). The SDK takes
only the ``cursor`` out of that URL and sends it with the same query to its own base URL: a
``Link`` pointing at another host (a misconfigured proxy) never receives the caller's token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

DEFAULT_PAGE_SIZE = 100  # the server's default; it accepts 1 to 1,000
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


def _many(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_params(
    *,
    state: str | Iterable[str] | None = None,
    label: str | Iterable[str] | Mapping[str, str | None] | None = None,
    cost_center: str | None = None,
    custom_fields: Mapping[int, str] | None = None,
    plan: str | None = None,
    updated_since: datetime | str | None = None,
    msisdn_prefix: str | None = None,
    iccid_prefix: str | None = None,
    imsi_prefix: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> list[tuple[str, str]]:
    """The query of ``GET /simcards`` that lists SIMs with these filters. ``label`` is
    ``"key=value"``/``"key"`` strings or a mapping (a None value: the key with any value);
    ``custom_fields`` maps 1..7 to the exact value."""
    params = [("state", s) for s in _many(state)]
    if isinstance(label, Mapping):
        labels = [key if value is None else f"{key}={value}" for key, value in label.items()]
    else:
        labels = _many(label)
    params += [("label", text) for text in labels]
    if isinstance(updated_since, datetime):
        if updated_since.tzinfo is None:
            raise ValueError("updated_since must be an aware datetime (with its time zone)")
        updated_since = updated_since.isoformat()
    for name, value in (
        ("cost_center", cost_center),
        ("plan", plan),
        ("updated_since", updated_since),
        ("msisdn_prefix", msisdn_prefix),
        ("iccid_prefix", iccid_prefix),
        ("imsi_prefix", imsi_prefix),
    ):
        if value is not None:
            params.append((name, value))
    for n, value in sorted((custom_fields or {}).items()):
        params.append((f"custom_field_{n}", value))
    params.append(("limit", str(page_size)))
    return params


def audit_params(
    *,
    sim: str | None = None,
    actor: str | None = None,
    action: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    page_size: int | None = None,
) -> list[tuple[str, str]]:
    """The query of ``GET /audit-events`` (see ``M2MClient.audit_events``)."""
    params: list[tuple[str, str]] = []
    if sim is not None:
        params.append(("sim", sim))
    if actor is not None:
        params.append(("actor", actor))
    params += [("action", a) for a in _many(action)]
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            params.append((name, when.isoformat() if isinstance(when, datetime) else when))
    if page_size is not None:
        params.append(("limit", str(page_size)))
    return params


def next_cursor(link: str | None) -> str | None:
    """The cursor of the next page named by a ``Link`` header; None on the last page."""
    if not link:
        return None
    found = _LINK.search(link)
    if found is None:
        return None
    for name, value in parse_qsl(urlsplit(found.group(1)).query):
        if name == "cursor":
            return value
    return None
