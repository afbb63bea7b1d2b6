"""The query of ``GET /simcards`` beyond the documented ``?msisdn=``: parsed, checked, paged.

Pure: a list of (name, value) query pairs in, a ``Lookup`` (read one SIM by an exact
identifier) or a ``ListQuery`` (a filtered, keyset-paged list) out, or a ``QueryProblem`` naming
the parameter at fault. Every parameter is known by name: an unknown one (a typo such as
``stat=Active``) is refused rather than ignored, because ignoring it would list everything.

The cursor is opaque to clients: ``m2m.paging``'s cursor holding the order, the last row's key in
that order and a fingerprint of the filters. A cursor is refused with other filters
(it would resume a different walk at a meaningless place); the page size may change between
pages. A cursor is not signed: forging one only moves the caller within its own account's SIMs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from m2m import labels, paging
from m2m.freetext import text_problem
from m2m.identifiers import (
    ICCID_FORMAT_PATTERN,
    IMSI_PATTERN,
    MSISDN_PATTERN,
    SimState,
    normalize_msisdn,
)
from m2m.profile import CUSTOM_FIELD_NAMES, TEXT_LENGTH

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_LABEL_FILTERS = 8  # AND of eight labels is already a precise question; more is a mistake
ICCID_PATTERN = ICCID_FORMAT_PATTERN  # the one rule for an ICCID's form (m2m.identifiers)
_ICCID = re.compile(ICCID_PATTERN)
_IMSI = re.compile(IMSI_PATTERN)
_MSISDN = re.compile(MSISDN_PATTERN)
_PREFIX = re.compile(r"^[0-9]{1,20}$")
CUSTOM_FIELD_PARAMETERS = {
    f"custom_field_{n}": name for n, name in enumerate(CUSTOM_FIELD_NAMES, start=1)
}
# The exact identifiers read one SIM; ``msisdn`` is the documented call.
EXACT_IDENTIFIERS = ("msisdn", "iccid", "imsi")
PREFIX_PARAMETERS = ("msisdn_prefix", "iccid_prefix", "imsi_prefix")
LIST_PARAMETERS = (
    "state",
    "cost_center",
    "label",
    *CUSTOM_FIELD_PARAMETERS,
    "plan",
    "updated_since",
    *PREFIX_PARAMETERS,
    "limit",
    "cursor",
    "count",
)
REPEATABLE = frozenset({"state", "label"})
KNOWN_PARAMETERS = frozenset((*EXACT_IDENTIFIERS, *LIST_PARAMETERS))


class QueryProblem(ValueError):
    """A parameter the query cannot be answered with; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


class Order(StrEnum):
    """The order a list walks in: by id, or by (updated_at, id) for a delta sync."""

    ID = "id"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class Lookup:
    """Read one SIM by an exact identifier (column name and normalized value)."""

    column: str  # "msisdn", "iccid" or "imsi"
    value: str


@dataclass(frozen=True, slots=True)
class SimFilters:
    """What a listed SIM must match: every field that is set, together (AND)."""

    states: tuple[str, ...] = ()  # any of them
    cost_center: str | None = None
    labels: tuple[tuple[str, str | None], ...] = ()  # (key, value or None for any value), all
    custom_fields: tuple[tuple[str, str], ...] = ()  # (documented field name, exact value)
    plan: str | None = None  # DataService.Plan.Code
    updated_since: datetime | None = None
    msisdn: str | None = None  # exact identifiers, as filters
    iccid: str | None = None
    imsi: str | None = None
    msisdn_prefix: str | None = None
    iccid_prefix: str | None = None
    imsi_prefix: str | None = None

    @property
    def order(self) -> Order:
        return Order.UPDATED if self.updated_since is not None else Order.ID

    def fingerprint(self) -> str:
        """A short digest of the filters, carried in a cursor to recognise its own walk."""
        document = json.dumps(
            [
                sorted(self.states),
                self.cost_center,
                sorted([k, v] for k, v in self.labels),
                sorted(self.custom_fields),
                self.plan,
                self.updated_since.isoformat() if self.updated_since else None,
                self.msisdn,
                self.iccid,
                self.imsi,
                self.msisdn_prefix,
                self.iccid_prefix,
                self.imsi_prefix,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(document.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the last row's key in the walk's order (``updated_at`` only for
    ``Order.UPDATED``)."""

    id: int
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    filters: SimFilters
    limit: int = DEFAULT_LIMIT
    after: Position | None = None
    count: bool = False


# --- the cursor -------------------------------------------------------------------------------


def encode_cursor(filters: SimFilters, last: Position) -> str:
    key: list[object] = [last.id]
    if filters.order is Order.UPDATED:
        assert last.updated_at is not None
        key = [last.updated_at.astimezone(UTC).isoformat(), last.id]
    return paging.encode_cursor({"o": filters.order.value, "k": key, "f": filters.fingerprint()})


def decode_cursor(text: str, filters: SimFilters) -> Position:
    """The position a cursor made for these filters resumes after; ``QueryProblem`` otherwise."""
    bad = QueryProblem("cursor", "cursor is not a cursor this API issued; start again without it")
    if len(text) > 512:
        raise bad
    try:
        document = paging.decode_cursor(text, "o", "k", "f")
    except paging.InvalidCursor:
        raise bad from None
    if document["o"] != filters.order.value or document["f"] != filters.fingerprint():
        raise QueryProblem(
            "cursor",
            "cursor was issued for other filters; repeat the query that gave it, or start again"
            " without it",
        )
    key = document["k"]
    if filters.order is Order.ID:
        if not (isinstance(key, list) and len(key) == 1 and _is_id(key[0])):
            raise bad
        return Position(key[0])
    if not (isinstance(key, list) and len(key) == 2 and _is_id(key[1])):
        raise bad
    try:
        updated_at = datetime.fromisoformat(key[0]) if isinstance(key[0], str) else None
    except ValueError:
        updated_at = None
    if updated_at is None or updated_at.tzinfo is None:
        raise bad
    return Position(key[1], updated_at.astimezone(UTC))


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


# --- parsing ----------------------------------------------------------------------------------


def parse(pairs: Sequence[tuple[str, str]]) -> Lookup | ListQuery:
    """The query string's (name, value) pairs, in order, as a lookup or a list query."""
    unknown = sorted({name for name, _ in pairs if name not in KNOWN_PARAMETERS})
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise QueryProblem(
            unknown[0][:40],
            f"unknown query parameter {shown}; known: {', '.join(sorted(KNOWN_PARAMETERS))}",
        )
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    for name, given in values.items():
        if len(given) > 1 and name not in REPEATABLE:
            raise QueryProblem(name, f"{name} may be given once, not {len(given)} times")
    exact = [name for name in EXACT_IDENTIFIERS if name in values]
    if len(exact) == 1 and len(values) == 1:
        return _lookup(exact[0], values[exact[0]][0])
    # With anything else, an exact identifier is one more filter of a list (which then holds
    # that SIM or nothing): ``?iccid=…&state=Active`` asks "is it Active?".
    return _list_query(values)


def _lookup(name: str, value: str) -> Lookup:
    if name == "msisdn":
        if value.startswith(" "):  # an unescaped "+" arrives as a space (form encoding)
            value = "+" + value[1:]
        if not _MSISDN.fullmatch(value):
            raise QueryProblem(name, "msisdn must be 8 to 15 digits, with an optional leading +")
        return Lookup(name, normalize_msisdn(value))
    pattern, rule = (_ICCID, "19 or 20 digits") if name == "iccid" else (_IMSI, "15 digits")
    if not pattern.fullmatch(value):
        raise QueryProblem(name, f"{name} must be {rule}")
    return Lookup(name, value)


def _text(name: str, value: str) -> str:
    problem = text_problem(name, value, TEXT_LENGTH)
    if problem:
        raise QueryProblem(name, problem)
    return value


def _states(given: list[str]) -> tuple[str, ...]:
    allowed = [s.value for s in SimState]
    states: list[str] = []
    for text in given:
        for state in text.split(","):  # state=Active,Ready reads as state=Active&state=Ready
            if state not in allowed:
                raise QueryProblem(
                    "state", f"state {state[:20]!r} is not one of {', '.join(allowed)}"
                )
            if state not in states:
                states.append(state)
    return tuple(states)


def _labels(given: list[str]) -> tuple[tuple[str, str | None], ...]:
    if len(given) > MAX_LABEL_FILTERS:
        raise QueryProblem("label", f"at most {MAX_LABEL_FILTERS} label filters, not {len(given)}")
    found: list[tuple[str, str | None]] = []
    for text in given:
        parsed = labels.parse_filter(text)
        if parsed is None:
            raise QueryProblem(
                "label",
                f"label {text[:80]!r} must be key=value or key, the key 1 to {labels.KEY_LENGTH}"
                " letters, digits or . _ - / :, starting with a letter or a digit",
            )
        key, value = parsed
        problem = value and text_problem(f"label {key!r}", value, labels.VALUE_LENGTH)
        if problem:
            raise QueryProblem("label", problem)
        if parsed not in found:
            found.append(parsed)
    return tuple(found)


def parse_time(name: str, text: str) -> datetime:
    """An ISO 8601 time with its offset (``Z`` or ``+02:00``), as UTC."""
    try:
        # "+" unescaped in a query arrives as a space; RFC 3339 allows a lower-case t and z.
        moment = datetime.fromisoformat(text.replace(" ", "+").upper())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise QueryProblem(
            name, f"{name} must be an ISO 8601 time with its offset, e.g. 2026-01-31T12:00:00Z"
        )
    return moment.astimezone(UTC)


def _prefix(name: str, text: str) -> str:
    if name == "msisdn_prefix":
        text = normalize_msisdn(text.replace(" ", "+", 1) if text.startswith(" ") else text)
    if not _PREFIX.fullmatch(text):
        raise QueryProblem(name, f"{name} must be 1 to 20 digits")
    return text


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryProblem("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _flag(name: str, text: str) -> bool:
    if text not in ("true", "false"):
        raise QueryProblem(name, f"{name} must be true or false")
    return text == "true"


def _list_query(values: dict[str, list[str]]) -> ListQuery:
    one = {name: given[0] for name, given in values.items()}
    custom = tuple(
        (field, _text(name, one[name]))
        for name, field in CUSTOM_FIELD_PARAMETERS.items()
        if name in one
    )
    filters = SimFilters(
        states=_states(values.get("state", [])),
        cost_center=_text("cost_center", one["cost_center"]) if "cost_center" in one else None,
        labels=_labels(values.get("label", [])),
        custom_fields=custom,
        plan=_text("plan", one["plan"]) if "plan" in one else None,
        updated_since=(
            parse_time("updated_since", one["updated_since"]) if "updated_since" in one else None
        ),
        **{name: _prefix(name, one[name]) for name in PREFIX_PARAMETERS if name in one},
    )
    filters = replace(
        filters,
        msisdn=_lookup("msisdn", one["msisdn"]).value if "msisdn" in one else None,
        iccid=_lookup("iccid", one["iccid"]).value if "iccid" in one else None,
        imsi=_lookup("imsi", one["imsi"]).value if "imsi" in one else None,
    )
    return ListQuery(
        filters=filters,
        limit=_limit(one["limit"]) if "limit" in one else DEFAULT_LIMIT,
        after=decode_cursor(one["cursor"], filters) if "cursor" in one else None,
        count=_flag("count", one["count"]) if "count" in one else False,
    )
