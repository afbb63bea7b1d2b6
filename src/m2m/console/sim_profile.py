"""The SIM page's reading of a stored profile: what a person reads, part by part (pure).

The page shows the document the API answers (``m2m.profile.sim_card_document``), laid out for
people: Data, SMS and Voice side by side with their plan, service areas, features and
thresholds; the access points; the seven custom fields; the labels. Stored profiles are valid
when written, but a SIM written by an older import (or straight into the database) may lack
parts: every part missing, or not of its documented type, reads as empty here rather than
failing the page.

The documented shapes differ by service: Data has a ``Plan`` object (code, description,
service type) and ``Features`` with an ``Enabled`` flag; SMS and Voice have a ``PlanCode`` and
``FeatureCodes`` (no flag: a listed feature is one the SIM has).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2m.profile import CUSTOM_FIELD_NAMES


@dataclass(frozen=True, slots=True)
class ServiceArea:
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class Feature:
    code: str
    enabled: bool | None  # None: SMS and Voice list feature codes without a flag


@dataclass(frozen=True, slots=True)
class Service:
    key: str  # "data", "sms", "voice": the edit form's field names start with it
    name: str  # "Data", "SMS", "Voice"
    plan_code: str
    plan_description: str | None  # Data only (SMS and Voice have a plan code alone)
    service_type: str | None  # Data only
    service_areas: list[ServiceArea]
    features: list[Feature]
    daily_threshold: int | None  # None: not stored (the API answers 0)
    monthly_threshold: int | None


@dataclass(frozen=True, slots=True)
class AccessPoint:
    code: str
    static_ip: str
    user_name: str
    custom_name: str


@dataclass(frozen=True, slots=True)
class ProfileView:
    services: list[Service]
    access_points: list[AccessPoint]
    custom_fields: list[tuple[str, str]]  # all seven, in the documentation's order
    labels: list[tuple[str, str]]  # sorted by key


# The services in the documentation's order: (form key, name, the profile's key).
SERVICES = (
    ("data", "Data", "DataService"),
    ("sms", "SMS", "SMSService"),
    ("voice", "Voice", "VoiceService"),
)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _threshold(value: object) -> int | None:
    # bool is an int to Python, not a threshold.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _areas(service: Mapping[str, Any]) -> list[ServiceArea]:
    return [
        ServiceArea(_text(_mapping(a).get("Code")), _text(_mapping(a).get("Description")))
        for a in _items(service.get("ServiceAreas"))
    ]


def _service(key: str, name: str, service: Mapping[str, Any]) -> Service:
    daily = _threshold(service.get("DailyTreshold"))
    monthly = _threshold(service.get("MonthlyTreshold"))
    if key == "data":
        plan = _mapping(service.get("Plan"))
        features = [
            Feature(_text(_mapping(f).get("Code")), bool(_mapping(f).get("Enabled")))
            for f in _items(service.get("Features"))
        ]
        return Service(
            key,
            name,
            _text(plan.get("Code")),
            _text(plan.get("Description")),
            _text(plan.get("ServiceType")),
            _areas(service),
            features,
            daily,
            monthly,
        )
    codes = [Feature(_text(code), None) for code in _items(service.get("FeatureCodes"))]
    plan_code = _text(service.get("PlanCode"))
    return Service(key, name, plan_code, None, None, _areas(service), codes, daily, monthly)


def profile_view(document: Mapping[str, Any], labels: Mapping[str, Any]) -> ProfileView:
    """The parts of a SIM's wire ``document`` (``sim_card_document``) and its ``labels``."""
    access_points = []
    for point in _items(document.get("AccessPoints")):
        properties = _mapping(_mapping(point).get("Properties"))
        access_points.append(
            AccessPoint(
                _text(_mapping(point).get("Code")),
                _text(properties.get("StaticIP")),
                _text(properties.get("UserName")),
                _text(properties.get("CustomName")),
            )
        )
    fields = _mapping(document.get("CustomFields"))
    return ProfileView(
        services=[
            _service(key, name, _mapping(document.get(part))) for key, name, part in SERVICES
        ],
        access_points=access_points,
        custom_fields=[(name, _text(fields.get(name))) for name in CUSTOM_FIELD_NAMES],
        labels=sorted((str(k), _text(v)) for k, v in labels.items()),
    )
