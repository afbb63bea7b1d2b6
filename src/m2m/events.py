"""The event catalog: what the platform tells a customer about their fleet (pure).

Every event is one envelope, ``{id, type, version, occurred_at, account, sim, data}``, whose
``data`` has the shape of its type. A type's ``version`` grows when its ``data`` changes in a way
a consumer could trip on (a field removed or retyped); adding a field does not bump it, so
consumers must ignore fields they do not know.

- ``sim.state_changed`` (1): a SIM's state changed (``from``, ``to``, ``cause``, ...);
- ``sim.updated`` (1): a SIM's profile, cost center or labels changed (``fields``, ``changes``);
- ``request.completed`` (1): a lifecycle request's last device is done (results counted);
- ``usage.threshold_reached`` (1): a SIM's usage of a service in a day or month reached the
  account's warning percentage of its threshold (``m2m.usage``);
- ``usage.limit_exceeded`` (1): ... reached the threshold itself.

Events are stored by the code that makes their change, in its transaction
(``m2m.storage.events``), so an event exists exactly when its change committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from m2m.identifiers import SimState
from m2m.usage import UNITS, Period, Service


class EventType(StrEnum):
    SIM_STATE_CHANGED = "sim.state_changed"
    SIM_UPDATED = "sim.updated"
    REQUEST_COMPLETED = "request.completed"
    USAGE_THRESHOLD_REACHED = "usage.threshold_reached"
    USAGE_LIMIT_EXCEEDED = "usage.limit_exceeded"


class Cause(StrEnum):
    """What made a SIM's state change."""

    REQUEST = "request"  # a lifecycle request (from the API or the console: its TrackingNumber)
    CONSOLE = "console"  # a console user, directly (no request)
    ADMIN = "admin"  # the operator's admin CLI
    THRESHOLD_POLICY = "threshold_policy"  # a usage threshold's policy (the usage issue)


class _Data(BaseModel):
    # Lenient on the way in (a stored event from a newer version keeps its extra fields).
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SimStateChanged(_Data):
    """``sim.state_changed``: the SIM went from one state to another."""

    from_: SimState = Field(alias="from", description="The state before the change.")
    to: SimState = Field(description="The state after the change.")
    cause: Cause = Field(description="What changed it.")
    TrackingNumber: str | None = Field(
        default=None, description="The lifecycle request that changed it, if one did."
    )
    operation: str | None = Field(
        default=None, description="The request's operation (activation, deactivation, ...)."
    )


class FieldChange(BaseModel):
    before: Any = None
    after: Any = None


class SimUpdated(_Data):
    """``sim.updated``: fields of the SIM's profile, its cost center or labels changed (never a
    secret: a SIM has none)."""

    fields: list[str] = Field(description="The names of the fields that changed.")
    changes: dict[str, FieldChange] = Field(
        description="Each changed field's value before and after the change."
    )


class RequestCompleted(_Data):
    """``request.completed``: every device of a lifecycle request has its outcome."""

    TrackingNumber: str
    operation: str
    devices: int = Field(description="How many devices the request named.")
    results: dict[str, int] = Field(
        description='How many devices ended with each result status ("Success", "Failure").'
    )


class UsageThreshold(_Data):
    """``usage.threshold_reached`` and ``usage.limit_exceeded``: a SIM's usage of one service
    in one day or month reached a mark of its profile's threshold (once per mark and period)."""

    service: Service = Field(description="data, sms or voice.")
    period: Period = Field(description="daily or monthly: which of the profile's thresholds.")
    period_start: date = Field(
        description="The day, or the month's first day, in the account's time zone."
    )
    threshold: int = Field(description="The profile's threshold, in ``unit``.")
    unit: str = Field(description="MB (1,000,000 bytes) for data, messages, minutes.")
    used: float = Field(description="The period's usage when the mark was reached, in ``unit``.")
    percent: int = Field(
        description="The mark: the account's warning percentage, or 100 for the limit."
    )


CATALOG: dict[EventType, tuple[int, type[_Data]]] = {
    EventType.SIM_STATE_CHANGED: (1, SimStateChanged),
    EventType.SIM_UPDATED: (1, SimUpdated),
    EventType.REQUEST_COMPLETED: (1, RequestCompleted),
    EventType.USAGE_THRESHOLD_REACHED: (1, UsageThreshold),
    EventType.USAGE_LIMIT_EXCEEDED: (1, UsageThreshold),
}


def version_of(event_type: EventType) -> int:
    return CATALOG[event_type][0]


class EventSim(BaseModel):
    """The SIM an event is about, as it was when the event occurred."""

    ICCID: str
    MSISDN: str
    labels: dict[str, str] = Field(default_factory=dict)


class Event(BaseModel):
    """The envelope every event comes in."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(
        description="Unique, and increasing in the order events were stored; the cursor to "
        "resume reading the log after this event."
    )
    type: str = Field(description="The event's type (see the catalog).")
    version: int = Field(description="The version of the type's data.")
    occurred_at: datetime
    account: int = Field(description="The account the event belongs to.")
    sim: EventSim | None = Field(description="The SIM the event is about, if it is about one.")
    data: dict[str, Any]


def typed_envelope(event_type: EventType) -> type[BaseModel]:
    """The envelope of one type, its ``data`` described: the OpenAPI document's webhook body."""
    return _ENVELOPES[event_type]


def _envelope_of(event_type: EventType, data_model: type[_Data]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "type": (Literal[event_type.value], ...),
        "data": (data_model, ...),
    }
    name = "".join(part.title() for part in event_type.value.replace(".", "_").split("_"))
    return create_model(f"{name}Event", __base__=Event, **fields)


_ENVELOPES: dict[EventType, type[BaseModel]] = {
    t: _envelope_of(t, model) for t, (_, model) in CATALOG.items()
}


def updated_data(changes: dict[str, Any]) -> dict[str, Any]:
    """``sim.updated``'s data from an audit entry's changes (``m2m.audit.changes_between``)."""
    return {"fields": sorted(changes), "changes": changes}


def completed_data(
    tracking_number: str, operation: str, devices: int, results: dict[str, int]
) -> dict[str, Any]:
    return {
        "TrackingNumber": tracking_number,
        "operation": operation,
        "devices": devices,
        "results": dict(sorted(results.items())),
    }


def summary(event_type: str, data: Mapping[str, Any]) -> str:
    """What an event says, in a few words (``m2m events tail`` and the console's list; the
    envelope has the rest). Empty for a type without one."""
    if event_type == EventType.SIM_STATE_CHANGED:
        how = data.get("operation") or data.get("cause")
        return f"{data.get('from')} -> {data.get('to')} ({how})"
    if event_type == EventType.SIM_UPDATED:
        return ", ".join(str(name) for name in data.get("fields", []))
    if event_type == EventType.REQUEST_COMPLETED:
        results = data.get("results") or {}
        counts = ", ".join(f"{status} {n}" for status, n in sorted(results.items()))
        return f"{data.get('operation')} of {data.get('devices')} device(s): {counts}"
    return ""


def usage_data(
    service: Service,
    period: Period,
    period_start: date,
    threshold: int,
    used: float,
    warning_percent: int,
    *,
    limit: bool,
) -> dict[str, Any]:
    return {
        "service": service.value,
        "period": period.value,
        "period_start": period_start.isoformat(),
        "threshold": threshold,
        "unit": UNITS[service],
        "used": round(used, 3),
        "percent": 100 if limit else warning_percent,
    }


# --- selecting types ---------------------------------------------------------------------------

TYPE_PATTERN_LENGTH = 64


class InvalidTypePattern(ValueError):
    """A type filter that names no type of the catalog and is no ``family.*`` wildcard."""


def selected_types(patterns: list[str]) -> frozenset[str] | None:
    """The catalog's types that ``patterns`` select (``None``: no filter, every type).

    A pattern is a type (``sim.state_changed``), a family (``sim.*``: every type whose name
    starts with ``sim.``) or ``*``. Wildcards are expanded against the catalog here, so storage
    filters by exact types only (an index range per type, whatever the database's collation).
    An unknown exact type is refused, since a typo would silently select nothing; a family may
    have no type yet (``usage.*`` before the usage events exist) and then selects nothing.
    """
    if not patterns or "*" in patterns:
        return None
    known = [t.value for t in EventType]
    chosen: set[str] = set()
    for pattern in patterns:
        if len(pattern) > TYPE_PATTERN_LENGTH:
            raise InvalidTypePattern("an event type is at most 64 characters")
        if pattern.endswith(".*"):
            family = pattern[:-2]
            if not family or not all(part.isidentifier() for part in family.split(".")):
                raise InvalidTypePattern(f"{pattern!r} is not a type family such as 'sim.*'")
            chosen.update(t for t in known if t.startswith(family + "."))
        elif pattern in known:
            chosen.add(pattern)
        else:
            raise InvalidTypePattern(
                f"unknown event type {pattern!r}; known types: {', '.join(known)}"
            )
    return frozenset(chosen)


def subscribed(
    types: frozenset[str] | None,
    label_filter: dict[str, str],
    event_type: str,
    labels: dict[str, str] | None,
) -> bool:
    """Whether a subscription selecting ``types`` (``selected_types``; None: every type) and
    ``label_filter`` (every pair must be among the SIM's labels) wants an event of
    ``event_type`` about a SIM with ``labels`` (None: the event is about no SIM, which a label
    filter never matches)."""
    if types is not None and event_type not in types:
        return False
    if not label_filter:
        return True
    if labels is None:
        return False
    return all(labels.get(key) == value for key, value in label_filter.items())
