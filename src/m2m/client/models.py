"""Typed answers and messages, with Python names over the wire's own.

The wire's names stay available as aliases (``model_dump(by_alias=True)`` gives the documented
JSON back, ``DailyTreshold`` spelling included). These models are lenient where the server's are
strict: unknown fields are ignored and states are plain strings, so a server that adds a field or a
state does not break a deployed client.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, NewType

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
)
from pydantic.alias_generators import to_camel, to_pascal

from m2m.identifiers import IdentifierType
from m2m.profile import CUSTOM_FIELD_NAMES

TrackingNumber = NewType("TrackingNumber", str)
"""The id a lifecycle request was answered with; every status message of it carries it."""


class _Pascal(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# --- the SIM profile (GET /simcards) --------------------------------------------------------


class AccessPointProperties(_Pascal):
    static_ip: str = Field("", alias="StaticIP")
    user_name: str = ""
    custom_name: str = ""


class AccessPoint(_Pascal):
    code: str
    properties: AccessPointProperties = AccessPointProperties()


class DataPlan(_Pascal):
    code: str = ""
    description: str = ""
    service_type: str = ""


class ServiceArea(_Pascal):
    code: str
    description: str = ""


class Feature(_Pascal):
    code: str
    enabled: bool


class DataService(_Pascal):
    plan: DataPlan = DataPlan()
    service_areas: list[ServiceArea] = []
    features: list[Feature] = []
    daily_threshold: int = Field(0, alias="DailyTreshold")  # sic: the documented spelling
    monthly_threshold: int = Field(0, alias="MonthlyTreshold")


class PlanService(_Pascal):
    """The shape shared by the SMS and voice services."""

    plan_code: str = ""
    service_areas: list[ServiceArea] = []
    feature_codes: list[str] = []
    daily_threshold: int = Field(0, alias="DailyTreshold")
    monthly_threshold: int = Field(0, alias="MonthlyTreshold")


class SimIdentity(_Pascal):
    identifier: str
    identifier_type: str


class SimCard(_Pascal):
    """A SIM card's profile, as ``GET /m2m/1.0.0/simcards?msisdn=`` answers it."""

    access_points: list[AccessPoint] = []
    # The seven documented keys are always there ("" where unset), whatever the server sent.
    custom_fields: dict[str, str] = Field(default_factory=dict, validate_default=True)
    data_service: DataService = DataService()
    sms_service: PlanService = Field(PlanService(), alias="SMSService")
    voice_service: PlanService = PlanService()
    cost_center: str = ""
    state: str  # Ready, Active, Deactivated or Terminated
    device: SimIdentity

    @field_validator("custom_fields")
    @classmethod
    def _with_every_documented_key(cls, sent: dict[str, str]) -> dict[str, str]:
        """The documented keys first, in order, then any other key the server sent (kept:
        these models are lenient)."""
        return {**dict.fromkeys(CUSTOM_FIELD_NAMES, ""), **sent}


class ListedSimCard(SimCard):
    """A SIM card as the m2m extensions answer it (a list, ``client.sims()``; a read by ICCID or
    IMSI; an update): the profile, which SIM it is (the documented profile names it only by
    ``device``, its IMSI), its labels, and (from an update) its ETag, for ``if_match``."""

    iccid: str = Field(alias="ICCID")
    msisdn: str = Field(alias="MSISDN")
    labels: dict[str, str] = {}
    etag: str | None = Field(None, exclude=True)


# --- devices, status messages ----------------------------------------------------------------


class Device(_Camel):
    """A device named in a lifecycle request (and in its status messages)."""

    identifier: str
    identifier_type: IdentifierType = IdentifierType.MSISDN

    @classmethod
    def msisdn(cls, value: str) -> Device:
        return cls(identifier=value, identifier_type=IdentifierType.MSISDN)

    @classmethod
    def iccid(cls, value: str) -> Device:
        return cls(identifier=value, identifier_type=IdentifierType.ICCID)

    @classmethod
    def imsi(cls, value: str) -> Device:
        return cls(identifier=value, identifier_type=IdentifierType.IMSI)


class StatusMessage(_Camel):
    """One device's outcome, as POSTed to the callback URL."""

    tracking_number: TrackingNumber
    device: Device
    result_status: str  # Success or Failure
    messages: list[str] = []
    message_id: str | None = Field(
        None, exclude=True, description="The webhook-id header: the same on every retry."
    )

    @property
    def succeeded(self) -> bool:
        return self.result_status == "Success"


# --- request status (an m2m extension) --------------------------------------------------------


class CallbackDelivery(_Camel):
    status: str  # pending, delivered or failed
    attempts: int = 0
    delivered_at: datetime | None = None
    last_error: str | None = None


class DeviceStatus(_Camel):
    identifier: str
    identifier_type: str
    status: str  # pending, in_progress or done
    result_status: str | None = None
    messages: list[str] = []
    finished_at: datetime | None = None
    callback: CallbackDelivery | None = None


class RequestStatus(_Camel):
    """``GET /m2m/1.0.0/requests/{TrackingNumber}``: a request's progress, device by device."""

    tracking_number: TrackingNumber
    operation: str
    accepted_at: datetime
    finished_at: datetime | None = None
    device_count: int
    devices: list[DeviceStatus] = []

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def done_count(self) -> int:
        return sum(1 for d in self.devices if d.status == "done")

    def count(self, result_status: str) -> int:
        return sum(1 for d in self.devices if d.result_status == result_status)


class CallbackConfig(_Camel):
    """``GET /m2m/1.0.0/configure/callback`` (an m2m extension); header values come masked."""

    url: str | None
    headers: dict[str, str] = {}


# --- the audit trail (an m2m extension) -------------------------------------------------------


class _Snake(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuditActor(_Snake):
    kind: str  # application, token, console, admin or system
    name: str  # a client_id, a permanent token's name, an email, "admin CLI"


class AuditSubject(_Snake):
    kind: str  # sim, request, callback, api_key, application, token, …
    id: str


class AuditEvent(_Snake):
    """One change, from ``GET /m2m/1.0.0/audit-events``: who changed what, when, and how."""

    id: int
    occurred_at: datetime
    actor: AuditActor
    action: str  # sim.updated, callback.configured, request.activation, …
    subject: AuditSubject
    changes: dict[str, Any] = {}  # {"field": {"before": …, "after": …}}
    request_id: str | None = None


# --- the event log and its envelopes (an m2m extension) --------------------------------------


class EventSim(BaseModel):
    """The SIM an event is about, as it was when the event occurred."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    iccid: str = Field(alias="ICCID")
    msisdn: str = Field(alias="MSISDN")
    labels: dict[str, str] = {}


class EventData(BaseModel):
    """A type's ``data``: Python names over the wire's. Fields a newer server adds are kept
    (``model_dump(by_alias=True)`` gives them back), and ``data["TrackingNumber"]`` or
    ``data.get("from")`` read by the wire's name, as the untyped dictionary did."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    def _wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    def __getitem__(self, wire_name: str) -> Any:
        return self._wire()[wire_name]

    def get(self, wire_name: str, default: Any = None) -> Any:
        return self._wire().get(wire_name, default)


class SimStateChangedData(EventData):
    from_state: str = Field(alias="from")  # Ready, Active, Deactivated or Terminated
    to_state: str = Field(alias="to")
    cause: str  # request, console, admin or threshold_policy
    tracking_number: TrackingNumber | None = Field(None, alias="TrackingNumber")
    operation: str | None = None  # the request's: activation, deactivation, …


class FieldChange(EventData):
    before: Any = None  # None: the field was not set
    after: Any = None


class SimUpdatedData(EventData):
    fields: list[str] = []  # dotted names: CostCenter, Labels.site, DataService.DailyTreshold
    changes: dict[str, FieldChange] = {}


class RequestCompletedData(EventData):
    tracking_number: TrackingNumber = Field(alias="TrackingNumber")
    operation: str
    devices: int
    results: dict[str, int] = {}  # {"Success": n, "Failure": m}


class UsageThresholdData(EventData):
    """A mark of a SIM's usage threshold reached in a day or month."""

    service: str  # data, sms or voice
    period: str  # daily or monthly: which of the profile's thresholds
    period_start: date  # the day, or the month's first day, in the account's time zone
    threshold: int  # the profile's threshold, in ``unit``
    unit: str  # MB (1,000,000 bytes), messages or minutes
    used: float  # the period's usage when the mark was reached, in ``unit``
    percent: int  # the mark: the account's warning percentage, or 100 for the limit


class Event(BaseModel):
    """One event of the log (``GET /m2m/1.0.0/events``) or of a subscription: the envelope.
    Events of the catalog's types come as its subclasses, ``data`` typed; a type this SDK does
    not know (a newer server's) comes as ``Event`` itself, ``data`` as sent. The catalog is in
    the server's OpenAPI document, under ``webhooks``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str  # the cursor to read on after this event
    type: str
    version: int
    occurred_at: datetime
    account: int
    sim: EventSim | None = None
    data: dict[str, Any] = {}


class SimStateChangedEvent(Event):
    """``sim.state_changed``: a SIM went from one state to another."""

    type: Literal["sim.state_changed"]
    data: SimStateChangedData  # type: ignore[assignment]  # narrowed: typed for this type


class SimUpdatedEvent(Event):
    """``sim.updated``: fields of a SIM's profile, its cost center or its labels changed."""

    type: Literal["sim.updated"]
    data: SimUpdatedData  # type: ignore[assignment]


class RequestCompletedEvent(Event):
    """``request.completed``: every device of a lifecycle request has its outcome."""

    type: Literal["request.completed"]
    data: RequestCompletedData  # type: ignore[assignment]


class UsageThresholdReachedEvent(Event):
    """``usage.threshold_reached``: a SIM's usage reached the account's warning percentage of a
    threshold of its profile."""

    type: Literal["usage.threshold_reached"]
    data: UsageThresholdData  # type: ignore[assignment]


class UsageLimitExceededEvent(Event):
    """``usage.limit_exceeded``: a SIM's usage reached a threshold of its profile."""

    type: Literal["usage.limit_exceeded"]
    data: UsageThresholdData  # type: ignore[assignment]


_TYPED = {
    "sim.state_changed": SimStateChangedEvent,
    "sim.updated": SimUpdatedEvent,
    "request.completed": RequestCompletedEvent,
    "usage.threshold_reached": UsageThresholdReachedEvent,
    "usage.limit_exceeded": UsageLimitExceededEvent,
}


def _event_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _TYPED else "other"


AnyEvent = Annotated[
    Annotated[SimStateChangedEvent, Tag("sim.state_changed")]
    | Annotated[SimUpdatedEvent, Tag("sim.updated")]
    | Annotated[RequestCompletedEvent, Tag("request.completed")]
    | Annotated[UsageThresholdReachedEvent, Tag("usage.threshold_reached")]
    | Annotated[UsageLimitExceededEvent, Tag("usage.limit_exceeded")]
    | Annotated[Event, Tag("other")],
    Discriminator(_event_kind),
]
"""An event: the typed envelope of its type, or ``Event`` for a type this SDK does not know
(forward compatible: a newer server's new type still parses)."""

EVENT = TypeAdapter[AnyEvent](AnyEvent)


class EventPage(BaseModel):
    """A page of the event log and the cursor to read on from (also given when it is empty)."""

    model_config = ConfigDict(extra="ignore")

    events: list[AnyEvent]
    cursor: str


# --- event subscriptions (an m2m extension) -------------------------------------------------


class EventSubscription(BaseModel):
    """A subscription of a URL to the account's events (``/m2m/1.0.0/event-subscriptions``).
    ``secret`` (Standard Webhooks, ``whsec_…``) is only there in the answers to creating it and
    to rotating its secret: keep it then, for ``EventVerifier``."""

    model_config = ConfigDict(extra="ignore")

    id: str
    url: str
    headers: dict[str, str] = {}  # names; values masked
    event_types: list[str]
    label_filter: dict[str, str] = {}
    status: str  # enabled, paused
    created_at: datetime
    updated_at: datetime
    cursor: str
    endpoint: dict[str, Any] = {}  # {"state": "closed" | "open", "open_until", "failures"}
    secret: str | None = None
