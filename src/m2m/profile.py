"""The SIM profile, in the documentation's wire shape and spelling (``DailyTreshold`` included).

These models validate profiles on the way in (import, sandbox seed) and describe the answer of
``GET /simcards`` in the OpenAPI document. Stored profiles are already valid, so the hot path
builds the answer from the stored document without validating it again.

``CustomFields`` holds only the documentation's seven keys. A stored profile holds those that were
set; the answer always carries all seven, in order, ``""`` where unset, as the documentation
shows them: clients read ``CustomFields["Custom Field 3"]`` without checking for it first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring  # json.dumps of one str, without building an encoder
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from m2m.freetext import WITHOUT_CONTROL_CHARACTERS
from m2m.identifiers import IdentifierType, SimState

# Every string of a profile (codes, descriptions, names, custom fields), like the cost center's
# column: at most 200 characters. Far more than a real code needs (3GPP caps an APN at 100
# octets), and a bound on what one SIM costs to store, serve and show.
TEXT_LENGTH = 200
Text = Annotated[str, StringConstraints(max_length=TEXT_LENGTH, pattern=WITHOUT_CONTROL_CHARACTERS)]
# Thresholds reach clients as JSON integers: most read them into a signed 64-bit integer (Java's
# long, Go's int64, a bigint column), which a larger number overflows.
MAX_THRESHOLD = 2**63 - 1
# Lists, likewise bounded: far above any real SIM's (a few APNs, a handful of areas and features),
# and low enough that one profile stays a few kilobytes to store and to answer.
MAX_ACCESS_POINTS = 20
MAX_LIST_ITEMS = 100
Threshold = Annotated[int, Field(ge=0, le=MAX_THRESHOLD)]

CustomFieldName = Literal[
    "Custom Field 1",
    "Custom Field 2",
    "Custom Field 3",
    "Custom Field 4",
    "Custom Field 5",
    "Custom Field 6",
    "Custom Field 7",
]
CUSTOM_FIELD_NAMES: tuple[CustomFieldName, ...] = get_args(CustomFieldName)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccessPointProperties(_Wire):
    StaticIP: Text = ""
    UserName: Text = ""
    CustomName: Text = ""


class AccessPoint(_Wire):
    Code: Text
    Properties: AccessPointProperties = Field(default_factory=AccessPointProperties)


class DataPlan(_Wire):
    Code: Text = ""
    Description: Text = ""
    ServiceType: Text = ""


class ServiceArea(_Wire):
    Code: Text
    Description: Text = ""


class Feature(_Wire):
    Code: Text
    Enabled: bool


class DataServiceProfile(_Wire):
    Plan: DataPlan = Field(default_factory=DataPlan)
    ServiceAreas: list[ServiceArea] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    Features: list[Feature] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    DailyTreshold: Threshold = 0
    MonthlyTreshold: Threshold = 0


class PlanServiceProfile(_Wire):
    """The shape shared by ``SMSService`` and ``VoiceService``."""

    PlanCode: Text = ""
    ServiceAreas: list[ServiceArea] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    FeatureCodes: list[Text] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    DailyTreshold: Threshold = 0
    MonthlyTreshold: Threshold = 0


class SimProfile(_Wire):
    """What is stored in ``sim_cards.profile``."""

    AccessPoints: list[AccessPoint] = Field(default_factory=list, max_length=MAX_ACCESS_POINTS)
    CustomFields: dict[CustomFieldName, Text] = Field(
        default_factory=dict,
        description='The documented keys only; the answer carries all seven, "" where unset.',
    )
    DataService: DataServiceProfile = Field(default_factory=DataServiceProfile)
    SMSService: PlanServiceProfile = Field(default_factory=PlanServiceProfile)
    VoiceService: PlanServiceProfile = Field(default_factory=PlanServiceProfile)


class DeviceIdentity(_Wire):
    Identifier: str
    IdentifierType: IdentifierType


class SimCard(SimProfile):
    """One element of the ``GET /simcards`` answer."""

    CostCenter: Text = ""
    State: SimState
    Device: DeviceIdentity
    # Not in the documented ``?msisdn=`` answer, which stays as documented: the answers that
    # find a SIM by another identifier, or list SIMs, say which SIM each profile is.
    ICCID: str = Field(
        "", description="The SIM's ICCID. In list answers and ?iccid= / ?imsi= answers only."
    )
    MSISDN: str = Field(
        "", description="The SIM's MSISDN. In list answers and ?iccid= / ?imsi= answers only."
    )
    Labels: dict[str, str] = Field(
        default_factory=dict,
        description="The SIM's labels (free key/value tags). In list answers and ?iccid= /"
        " ?imsi= answers only.",
    )


def custom_fields_document(stored: Mapping[Any, str]) -> dict[CustomFieldName, str]:
    """All seven custom fields, in the documentation's order, "" where unset. Keys outside the
    seven (stored before the import refused them) are left out of the answer."""
    return {name: stored.get(name, "") for name in CUSTOM_FIELD_NAMES}


def stored_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile as every writer stores it: the five documented keys in the documentation's
    order, ``CustomFields`` all seven (``custom_fields_document``), nothing else. Stored so, its
    text is the start of the SIM's answer, and a list answers it without decoding it (see
    ``listed_sim_json``)."""
    return {
        "AccessPoints": profile.get("AccessPoints", []),
        "CustomFields": custom_fields_document(profile.get("CustomFields", {})),
        "DataService": profile.get("DataService", {}),
        "SMSService": profile.get("SMSService", {}),
        "VoiceService": profile.get("VoiceService", {}),
    }


def sim_card_document(
    profile: dict[str, Any], cost_center: str | None, state: str, imsi: str
) -> dict[str, Any]:
    """The wire document of a stored SIM, in the documentation's field order."""
    return {
        **stored_profile(profile),
        "CostCenter": cost_center or "",
        "State": state,
        "Device": {"Identifier": imsi, "IdentifierType": IdentifierType.IMSI.value},
    }


# How every stored profile's text starts, whoever serialised it (pydantic writes it compact,
# SQLAlchemy's JSON type with a space after the colon).
_STORED_STARTS = ('{"AccessPoints":', '{"AccessPoints": ')


def listed_sim_json(
    profile_json: str,
    cost_center: str | None,
    state: str,
    imsi: str,
    *,
    iccid: str,
    msisdn: str,
    labels_json: str,
) -> str:
    """A listed SIM's answer (``ListedSimCard``) as JSON text, spliced from its stored profile's
    and labels' texts: the documented profile, then ``ICCID``, ``MSISDN``, ``Labels``. A page of
    1,000 spent most of its time decoding each profile and encoding it again.

    The profile must be stored as ``stored_profile`` makes it (every writer does, and
    migration 0013 rewrote older rows); a text that does not start like one is decoded and
    completed, so an odd row costs time, never a wrong answer. State and identifiers are
    checked values (an enum, digits): they need no escaping."""
    if not profile_json.startswith(_STORED_STARTS) or not profile_json.endswith("}"):
        profile_json = json.dumps(stored_profile(json.loads(profile_json)))
    return (
        f'{profile_json[:-1]},"CostCenter":{encode_basestring(cost_center or "")},'
        f'"State":"{state}","Device":{{"Identifier":"{imsi}","IdentifierType":"IMSI"}},'
        f'"ICCID":"{iccid}","MSISDN":"{msisdn}","Labels":{labels_json}}}'
    )


class ListedSimCard(SimCard):
    """A SIM as the API's extensions answer it (an update, a list): the documented profile and,
    beside it, which SIM it is and its labels (keys a documented client ignores)."""

    ICCID: str
    MSISDN: str
    Labels: dict[str, str] = Field(
        default_factory=dict, description="The SIM's labels: free key/value tags."
    )
