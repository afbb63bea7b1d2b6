"""The OpenAPI description of ``GET /simcards``'s parameters beyond ``msisdn``, and of the list
answer's headers. The route reads its query itself (``m2m.sim_query``), so the document is
written here, from the same constants the parser checks against."""

from __future__ import annotations

from typing import Any

from m2m import labels
from m2m.freetext import CONTROL_CHARACTERS, WITHOUT_CONTROL_CHARACTERS
from m2m.identifiers import IMSI_PATTERN, SimState
from m2m.profile import TEXT_LENGTH
from m2m.sim_query import (
    CUSTOM_FIELD_PARAMETERS,
    DEFAULT_LIMIT,
    ICCID_PATTERN,
    MAX_LABEL_FILTERS,
    MAX_LIMIT,
)

_TEXT: dict[str, Any] = {
    "type": "string",
    "maxLength": TEXT_LENGTH,
    "pattern": WITHOUT_CONTROL_CHARACTERS,
}
# key=value or key, as ``m2m.labels.parse_filter`` reads it.
LABEL_FILTER_PATTERN = (
    labels.KEY_PATTERN.removesuffix("$")
    + f"(=[^{CONTROL_CHARACTERS}]{{0,{labels.VALUE_LENGTH}}})?$"
)
_PREFIX: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{1,20}$"}


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **extra,
    }


def _repeated(items: dict[str, Any], max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": max_items}


LIST_PARAMETERS: list[dict[str, Any]] = [
    _query(
        "iccid",
        "Read the one SIM with this ICCID (an array of one, with ICCID and MSISDN keys).",
        {"type": "string", "pattern": ICCID_PATTERN},
    ),
    _query(
        "imsi",
        "Read the one SIM with this IMSI (an array of one, with ICCID and MSISDN keys).",
        {"type": "string", "pattern": IMSI_PATTERN},
    ),
    _query(
        "state",
        "List SIMs in any of these states (repeat the parameter, or separate with commas).",
        _repeated({"type": "string", "enum": [s.value for s in SimState]}, len(SimState)),
        style="form",
        explode=True,
    ),
    _query("cost_center", 'List SIMs with exactly this cost center ("": none).', _TEXT),
    _query(
        "label",
        "List SIMs with every one of these labels: key=value (that value) or key (any value)."
        f" At most {MAX_LABEL_FILTERS}.",
        _repeated(
            {"type": "string", "pattern": LABEL_FILTER_PATTERN},
            MAX_LABEL_FILTERS,
        ),
        style="form",
        explode=True,
    ),
    *(
        _query(name, f'List SIMs whose "{field}" is exactly this ("": unset).', _TEXT)
        for name, field in CUSTOM_FIELD_PARAMETERS.items()
    ),
    _query("plan", "List SIMs whose data plan has this Code.", _TEXT),
    _query(
        "updated_since",
        "Delta sync: list SIMs changed at or after this ISO 8601 time (with its offset), in"
        " the order of their last change, so that the walk can be resumed. Re-read with an"
        " overlap of a few seconds: see the guide.",
        {"type": "string", "format": "date-time"},
    ),
    _query("msisdn_prefix", "List SIMs whose MSISDN starts with these digits.", _PREFIX),
    _query("iccid_prefix", "List SIMs whose ICCID starts with these digits.", _PREFIX),
    _query("imsi_prefix", "List SIMs whose IMSI starts with these digits.", _PREFIX),
    _query(
        "limit",
        f"How many SIMs a page holds (default {DEFAULT_LIMIT}).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    _query(
        "cursor",
        "Where the page starts: the opaque value of the previous page's Link (rel=next); only"
        " with the same filters.",
        {"type": "string", "maxLength": 512},
    ),
    _query(
        "count",
        "true: the answer's X-Total-Count header holds how many SIMs match (reads them all).",
        {"type": "boolean", "default": False},
    ),
]

LIST_RESPONSE_HEADERS: dict[str, Any] = {
    "Link": {
        "description": 'The next page of a list: <absolute URL>; rel="next" (RFC 8288). Absent'
        " on the last page and on the answers that read one SIM.",
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "How many SIMs match the filters; only when count=true was asked.",
        "schema": {"type": "integer"},
    },
}
