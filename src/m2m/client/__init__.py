"""The Python SDK of the M2M API, sync and async, and a checker for the callbacks it sends.

::

    from m2m.client import M2MClient

    with M2MClient("http://127.0.0.1:8000", "sandbox-client", "sandbox-secret",
                   "sandbox-api-key") as m2m:
        print(m2m.get_sim("32470000001").state)
        for sim in m2m.sims(state="Active", label="site=ghent"):  # page by page, lazily
            print(sim.iccid, sim.msisdn)
        tracking = m2m.deactivate(["32470000001"], callback_token="encotest")
        print(m2m.wait([tracking])[0].devices[0].result_status)

Errors are the ``m2m.client.errors`` tree (``M2MClientError`` at its root).
"""

from m2m.client.async_client import AsyncM2MClient
from m2m.client.errors import (
    APIError,
    ApiKeyError,
    AuthenticationError,
    ConflictError,
    ExtensionUnavailable,
    InvalidRequestError,
    M2MClientError,
    NetworkError,
    NotFoundError,
    PartialSubmissionError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    TooManyDevicesError,
    UnexpectedResponse,
    WaitTimeout,
)
from m2m.client.models import (
    AnyEvent,
    AuditEvent,
    CallbackConfig,
    Device,
    DeviceStatus,
    Event,
    EventData,
    EventPage,
    EventSim,
    EventSubscription,
    FieldChange,
    ListedSimCard,
    RequestCompletedData,
    RequestCompletedEvent,
    RequestStatus,
    SimCard,
    SimStateChangedData,
    SimStateChangedEvent,
    SimUpdatedData,
    SimUpdatedEvent,
    StatusMessage,
    TrackingNumber,
    UsageLimitExceededEvent,
    UsageThresholdData,
    UsageThresholdReachedEvent,
)
from m2m.client.receiving import CallbackVerifier, EventVerifier, InvalidCallback, parse_event
from m2m.client.sync_client import M2MClient
from m2m.client.usage import SimUsage, ThresholdStanding, UsageGroup, UsagePeriod

__all__ = [
    "APIError",
    "AnyEvent",
    "ApiKeyError",
    "AsyncM2MClient",
    "AuditEvent",
    "AuthenticationError",
    "CallbackConfig",
    "CallbackVerifier",
    "ConflictError",
    "Device",
    "DeviceStatus",
    "Event",
    "EventData",
    "EventPage",
    "EventSim",
    "EventSubscription",
    "EventVerifier",
    "ExtensionUnavailable",
    "FieldChange",
    "InvalidCallback",
    "InvalidRequestError",
    "ListedSimCard",
    "M2MClient",
    "M2MClientError",
    "NetworkError",
    "NotFoundError",
    "PartialSubmissionError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitedError",
    "RequestCompletedData",
    "RequestCompletedEvent",
    "RequestStatus",
    "ServerError",
    "SimCard",
    "SimStateChangedData",
    "SimStateChangedEvent",
    "SimUpdatedData",
    "SimUpdatedEvent",
    "SimUsage",
    "StatusMessage",
    "ThresholdStanding",
    "TooManyDevicesError",
    "TrackingNumber",
    "UnexpectedResponse",
    "UsageGroup",
    "UsageLimitExceededEvent",
    "UsagePeriod",
    "UsageThresholdData",
    "UsageThresholdReachedEvent",
    "WaitTimeout",
    "parse_event",
]
