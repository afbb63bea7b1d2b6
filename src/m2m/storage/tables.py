"""The schema, as SQLAlchemy Core tables. Alembic migrations must produce exactly this.

Timestamps are ``*_at`` columns holding aware UTC datetimes (see ``UTCDateTime``). Secrets are
stored only as SHA-256 digests (``*_digest``). A SIM's documented profile (access points, custom
fields, data/SMS/voice services) is one JSON document in the wire's own shape: it is always read
and written whole, and one row read keeps the hot lookup at a single query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    cast,
    false,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite auto-increments only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: keep naive UTC so values compare as text in order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A JSON column read as its stored text: an answer is assembled around it instead of
    decoding the document and encoding it again (most of what a page of 1,000 cost). Both
    databases give back the text as written (PostgreSQL's ``json``, unlike ``jsonb``, keeps it)."""
    return cast(column, Text)


# The length of the name columns (accounts, applications, permanent tokens), which
# ``m2m.accounts`` checks: PostgreSQL refuses a longer name, SQLite would store it whole.
NAME_LENGTH = 200

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("subscription", String(16), nullable=False, server_default="active"),
    Column("is_sandbox", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    # The account's request-rate limit on the M2M API; NULL: the operator's default.
    Column("rate_limit_per_second", Float, nullable=True),
    Column("rate_limit_burst", Integer, nullable=True),
    # Usage (``m2m.usage``): the zone of the account's days and months, and the percentage of a
    # threshold at which it is warned.
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("usage_warning_percent", Integer, nullable=False, server_default="80"),
    # What reaching a threshold does: notify (events only) or also deactivate the SIM.
    Column("usage_policy", String(16), nullable=False, server_default="notify"),
    # Whether the SIMs the policy deactivated are reactivated when their period ends.
    Column("usage_reactivate", Boolean, nullable=False, server_default=false()),
    CheckConstraint("subscription IN ('active', 'suspended')", name="subscription"),
    CheckConstraint("usage_warning_percent BETWEEN 1 AND 100", name="usage_warning_percent"),
    CheckConstraint("rate_limit_per_second > 0", name="rate_limit_per_second"),
    CheckConstraint("rate_limit_burst >= 1", name="rate_limit_burst"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key_digest", LargeBinary(32), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),  # first characters, to tell keys apart in lists
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_api_keys_account_id", "account_id"),
)

oauth_apps = Table(
    "oauth_apps",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("client_id", String(100), nullable=False, unique=True),
    Column("secret_digest", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_oauth_apps_account_id", "account_id"),
)

# Temporary tokens have an app and an expiry; permanent ones have a name and neither.
# UNIQUE(app_id) is the "single active token" rule: an app's previous token row is deleted when a
# new one is issued (after expiry or revocation), so two concurrent issuers cannot both win.
access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "app_id", Id, ForeignKey("oauth_apps.id", ondelete="CASCADE"), nullable=True, unique=True
    ),
    Column("name", String(NAME_LENGTH), nullable=True),
    Column("token_digest", LargeBinary(32), nullable=False, unique=True),
    Column("salt", LargeBinary(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Index("ix_access_tokens_account_id", "account_id"),
    CheckConstraint(
        "(app_id IS NOT NULL AND salt IS NOT NULL AND expires_at IS NOT NULL AND name IS NULL)"
        " OR (app_id IS NULL AND salt IS NULL AND expires_at IS NULL AND name IS NOT NULL)",
        name="kind",
    ),
)

sim_cards = Table(
    "sim_cards",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("iccid", String(20), nullable=False, unique=True),
    Column("imsi", String(15), nullable=False, unique=True),
    Column("msisdn", String(15), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("cost_center", String(200), nullable=True),
    Column("profile", JSON, nullable=False),
    # The customer's free key/value tags (``m2m.labels``): read with the profile from here, and
    # searched through ``sim_labels``, which every write keeps equal to this document.
    Column("labels", JSON, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    # Every change to the SIM (its profile, labels or state) sets ``updated_at`` and bumps
    # ``version``: the list's ``updated_since`` walks the first, a SIM's ETag is the second (a
    # counter, so two changes within one clock tick still differ).
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    # The console lists an account's SIMs page by page in id order (keyset pagination), with or
    # without a state filter: both walks are index range scans, on either database.
    Index("ix_sim_cards_account_id_id", "account_id", "id"),
    Index("ix_sim_cards_account_id_state_id", "account_id", "state", "id"),
    # The API's filters by cost center, and its delta sync (``updated_since``, in
    # (updated_at, id) order, resumable): index range scans too.
    Index("ix_sim_cards_account_id_cost_center_id", "account_id", "cost_center", "id"),
    Index("ix_sim_cards_account_id_updated_at_id", "account_id", "updated_at", "id"),
    CheckConstraint("state IN ('Ready', 'Active', 'Deactivated', 'Terminated')", name="state"),
)

# One row per label of a SIM, the same pairs as ``sim_cards.labels``: a label filter is a range
# of (account_id, key, value) in sim id order, whatever else the account holds.
sim_labels = Table(
    "sim_labels",
    metadata,
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("value", String(200), nullable=False),
    Index("ix_sim_labels_account_id_key_value_sim_id", "account_id", "key", "value", "sim_id"),
)

# --- lifecycle requests (the asynchronous part of the API) ---------------------------------

callback_configs = Table(
    "callback_configs",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("url", String(2048), nullable=True),
    Column("headers", JSON, nullable=False),
    # Bumped to rotate the account's webhook signing secret, which is derived, never stored.
    Column("signing_key_version", Integer, nullable=False, server_default="1"),
    # Until some time after a rotation, messages carry the previous version's signature too.
    Column("signing_key_rotated_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # The URL's circuit breaker (``m2m.callbacks.breaker``), here so that every worker sees it:
    # consecutive unhealthy attempts, openings in a row since the last healthy answer, closed
    # (NULL) or open until a time (then one probe, ``breaker_probe_id``, leased until a time).
    # Saving a URL resets it.
    Column("breaker_failures", Integer, nullable=False, server_default="0"),
    Column("breaker_trips", Integer, nullable=False, server_default="0"),
    Column("breaker_open_until", UTCDateTime, nullable=True),
    Column("breaker_probe_id", String(36), nullable=True),
)

lifecycle_requests = Table(
    "lifecycle_requests",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tracking_number", String(36), nullable=False, unique=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("callback_token", String(1024), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("accepted_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # The X-Request-ID of the call that made it: its item executions and callback attempts log
    # it and send it on, so one customer's complaint can be followed through the worker.
    Column("http_request_id", String(100), nullable=True),
    # Why it was made (``m2m.events.Cause``): 'request' (a customer's, from the API or the
    # console) or 'threshold_policy' (the usage policy's); its state changes' events say so.
    Column("cause", String(16), nullable=False, server_default="request"),
    Index("ix_lifecycle_requests_account_id_accepted_at", "account_id", "accepted_at"),
    # The item claim lists the accounts with open requests, and each one's oldest open requests.
    Index(
        "ix_lifecycle_requests_open_account_id_id",
        "account_id",
        "id",
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
    CheckConstraint(
        "operation IN ('activation', 'deactivation', 'reactivation', 'termination')",
        name="operation",
    ),
)

# One row per device of a request, in acceptance order (``id``). ``sim_id`` is resolved when the
# request is accepted (NULL: no such SIM in the account), so that per-SIM ordering is a query.
request_items = Table(
    "request_items",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "request_id", Id, ForeignKey("lifecycle_requests.id", ondelete="CASCADE"), nullable=False
    ),
    Column("identifier", String(64), nullable=False),
    Column("identifier_type", String(8), nullable=False),
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="SET NULL"), nullable=True),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("result_status", String(16), nullable=True),
    Column("messages", JSON, nullable=True),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_request_items_request_id", "request_id"),
    Index("ix_request_items_sim_id_id", "sim_id", "id"),
    # The claim's "no earlier open item on this SIM" probe: open items only, however long the
    # SIM's history grows.
    Index(
        "ix_request_items_open_sim_id_id",
        "sim_id",
        "id",
        sqlite_where=text("status != 'done'"),
        postgresql_where=text("status != 'done'"),
    ),
    # The item claim reads each open request's first pending items, and takes over items whose
    # lease expired (a dead worker's).
    Index(
        "ix_request_items_pending_request_id_id",
        "request_id",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ix_request_items_claimed_lease_expires_at",
        "lease_expires_at",
        sqlite_where=text("status = 'claimed'"),
        postgresql_where=text("status = 'claimed'"),
    ),
    CheckConstraint("status IN ('pending', 'claimed', 'done')", name="status"),
)

sim_history = Table(
    "sim_history",
    metadata,
    Column("id", Id, primary_key=True),
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("tracking_number", String(36), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Index("ix_sim_history_sim_id_id", "sim_id", "id"),
)

# The outbox of status messages. ``id`` is the message's stable webhook-id across retries.
callback_deliveries = Table(
    "callback_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # A lifecycle item's status message (item_id), or an event for a subscription
    # (subscription_id and event_id: the event's id is the message's webhook-id).
    Column(
        "item_id",
        Id,
        ForeignKey("request_items.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    Column(
        "subscription_id",
        Id,
        ForeignKey("event_subscriptions.id", ondelete="CASCADE"),
        nullable=True,
    ),
    # Not a foreign key: purging old events must not take their messages' history with them.
    Column("event_id", Id, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # A claim pushes next_attempt_at past the attempt's timeout: a worker that dies mid-attempt
    # leaves the message due again. claim_id makes sure only the claimant records the outcome.
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claim_id", String(32), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    # The delivery claim lists the accounts with pending messages (a loose index scan), then
    # reads each one's due messages, oldest first: index range reads that cost the same whether
    # an account has ten messages waiting or a million.
    Index(
        "ix_callback_deliveries_pending_account_id",
        "account_id",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_callback_deliveries_account_id_status", "account_id", "status"),
    # Whether an account has status messages under way (the fan-out lets its events wait behind
    # them, ``m2m.callbacks.fanout``): one probe, however many of its events are pending.
    Index(
        "ix_callback_deliveries_pending_status_account_id",
        "account_id",
        "next_attempt_at",
        sqlite_where=text("status = 'pending' AND item_id IS NOT NULL"),
        postgresql_where=text("status = 'pending' AND item_id IS NOT NULL"),
    ),
    # A subscription's messages: parked while its breaker is open, listed in the console,
    # deleted with it.
    Index("ix_callback_deliveries_subscription_id_status", "subscription_id", "status"),
    # The console's overview: an account's messages of the last day.
    Index("ix_callback_deliveries_account_id_created_at", "account_id", "created_at"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    CheckConstraint(
        "(item_id IS NOT NULL AND subscription_id IS NULL AND event_id IS NULL)"
        " OR (item_id IS NULL AND subscription_id IS NOT NULL AND event_id IS NOT NULL)",
        name="kind",
    ),
)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "delivery_id",
        String(36),
        ForeignKey("callback_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("url", String(2048), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Index("ix_callback_attempts_delivery_id", "delivery_id"),
)


# --- the web console ------------------------------------------------------------------------

console_users = Table(
    "console_users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False, unique=True),  # stored lower-cased
    Column("password_hash", String(200), nullable=False),  # Argon2id, in its PHC string form
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime, nullable=True),
    Index("ix_console_users_account_id", "account_id"),
)

# A session is found by the SHA-256 digest of its cookie value, so a database dump holds no
# usable session; deleting the row is logging out.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
    Column("session_digest", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_console_sessions_user_id", "user_id"),
)

# Failed console logins, one row each, keyed "email:<address>" or "addr:<ip>". In the database
# (not process memory) so that every API process sees the same count.
# Failed authentications, per throttle key (a console email, a presented API credential, an
# address): shared by every process, written only when something fails.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", Id, primary_key=True),
    Column("throttle_key", String(400), nullable=False),
    Column("failed_at", UTCDateTime, nullable=False),
    Index("ix_auth_failures_throttle_key_failed_at", "throttle_key", "failed_at"),
)


# --- idempotent writes and the audit trail ---------------------------------------------------

# A POST or PATCH of the M2M API sent with an ``Idempotency-Key`` (``m2m.idempotency``): the
# first request's digest (method, path, body) and, once it has finished, its answer, replayed to
# a retry with the same key for 24 hours. ``status_code`` NULL: the first request still runs.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_digest", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),  # a crashed first request frees the key
    Column("status_code", Integer, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# Every change to a SIM, a callback configuration, a credential or an account, once, whoever
# made it (``m2m.audit``): never a secret in ``changes``.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    # Who: 'application' (its client_id), 'token' (a permanent token's name), 'console' (the
    # user's email), 'admin' (the admin CLI), 'system'.
    Column("actor_kind", String(16), nullable=False),
    Column("actor", String(320), nullable=False),
    # What: an operation such as 'sim.updated', and the thing changed ('sim' and its ICCID).
    Column("action", String(64), nullable=False),
    Column("subject_kind", String(32), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("changes", JSON, nullable=False),  # {"field": {"before": …, "after": …}, …}
    Column("request_id", String(100), nullable=True),
    Index("ix_audit_events_account_id_id", "account_id", "id"),
    Index("ix_audit_events_account_id_subject_id", "account_id", "subject", "id"),
    Index("ix_audit_events_occurred_at", "occurred_at"),
)


# --- the event log ------------------------------------------------------------------------------

# Every event of the catalog (``m2m.events``), stored once in the transaction of the change it
# describes. ``id`` is the cursor: consumers read an account's events after the id they last
# saw, so every listing is an index range read in id order, however many events are stored.
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    # The SIM it is about (NULL: none, or the SIM was deleted since), and the envelope's ``sim``
    # as it was when the event occurred (ICCID, MSISDN, labels): an event is never rewritten.
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="SET NULL"), nullable=True),
    Column("sim", JSON, nullable=True),
    Column("data", JSON, nullable=False),
    # ``events?after=`` (an account's events in id order), filtered by type (exact, or a
    # ``sim.*`` family as a range of types), by SIM; the purge deletes the oldest by time.
    Index("ix_events_account_id_id", "account_id", "id"),
    Index("ix_events_account_id_type_id", "account_id", "type", "id"),
    Index("ix_events_sim_id_id", "sim_id", "id"),
    Index("ix_events_occurred_at", "occurred_at"),
)


# An account's subscriptions to its events (``m2m.callbacks.subscriptions``): where to POST
# them, which ones (type patterns, a label filter), and how far the fan-out has read the log.
# The signing secret is derived from the server's key, the public id and a version (never
# stored), as the callback's. At most ``event_subscriptions.MAX_PER_ACCOUNT`` an account.
event_subscriptions = Table(
    "event_subscriptions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("public_id", String(40), nullable=False, unique=True),  # "sub_…": what the API shows
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("event_types", JSON, nullable=False),  # patterns: a type, "family.*" or "*"
    Column("label_filter", JSON, nullable=False),  # {key: value}, all must match
    Column("status", String(16), nullable=False, server_default="enabled"),
    Column("signing_key_version", Integer, nullable=False, server_default="1"),
    Column("signing_key_rotated_at", UTCDateTime, nullable=True),
    # The fan-out cursor: the last of the account's events considered (delivered or not).
    Column("through_event_id", Id, nullable=False, server_default="0"),
    # Its endpoint's circuit breaker, as ``callback_configs``' (``m2m.callbacks.breaker``).
    Column("breaker_failures", Integer, nullable=False, server_default="0"),
    Column("breaker_trips", Integer, nullable=False, server_default="0"),
    Column("breaker_open_until", UTCDateTime, nullable=True),
    Column("breaker_probe_id", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_event_subscriptions_account_id_id", "account_id", "id"),
    # The fan-out reads the enabled subscriptions.
    Index("ix_event_subscriptions_status_account_id", "status", "account_id"),
    CheckConstraint("status IN ('enabled', 'paused')", name="status"),
)

# --- operations -------------------------------------------------------------------------------

# One row per running worker (``m2m.worker``), written every few seconds: ``m2m admin status``
# tells the live from the dead by ``seen_at``, and what each holds. A worker deletes its row when
# it stops; a killed one's row stays, and ages.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("items_held", Integer, nullable=False),
    Column("messages_held", Integer, nullable=False),
)


def _usage_counters() -> list[Column[int]]:
    """The counters of ``m2m.usage.Totals``, in their natural units."""
    return [
        Column(name, BigInteger, nullable=False, server_default="0")
        for name in ("data_up_bytes", "data_down_bytes", "sms_out", "sms_in", "voice_seconds")
    ]


# Usage aggregates, kept as records arrive (``storage.usage``): per SIM and UTC hour, and per
# SIM and the account's day and month (the thresholds' periods, and the reads by day and month
# without summing hours). Only hours with usage have rows. Days and months copy ``account_id``
# in, so that an account's usage over a period is one index range; hours are read per SIM only,
# so they carry no account and no second index (the largest table, and the most written: each
# index is a B-tree written per row). On SQLite they are WITHOUT ROWID tables: the primary key
# is the table, not an index beside it.
usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", UTCDateTime, primary_key=True),
    *_usage_counters(),
    Column("records", Integer, nullable=False, server_default="0"),
    # Records of a SIM that was not Active when they arrived: counted, and flagged.
    Column("inactive_records", Integer, nullable=False, server_default="0"),
    sqlite_with_rowid=False,
)
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    *_usage_counters(),
    Index("ix_usage_daily_account_id_day", "account_id", "day"),
    sqlite_with_rowid=False,
)
usage_monthly = Table(
    "usage_monthly",
    metadata,
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), primary_key=True),
    Column("month", Date, primary_key=True),  # the month's first day
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    *_usage_counters(),
    Index("ix_usage_monthly_account_id_month", "account_id", "month"),
    sqlite_with_rowid=False,
)
# The account's usage per day of its own, added to with each batch (from the batch's day shares):
# the account's days read without summing every SIM's (30 days of a million SIMs were 30,000,000
# rows). History: it keeps the usage of SIMs deleted since.
usage_account_daily = Table(
    "usage_account_daily",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    *_usage_counters(),
    sqlite_with_rowid=False,
)
# A threshold crossing is reported once per SIM, service, period and level: its row is the
# proof it was (inserted with the event, in one transaction).
usage_alerts = Table(
    "usage_alerts",
    metadata,
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), primary_key=True),
    Column("service", String(8), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("level", String(8), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("reached_at", UTCDateTime, nullable=False),
)
# The operator's own tokens for its systems (the mediation system posting usage), not a
# customer's: stored as digests, like every secret.
operator_tokens = Table(
    "operator_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("token_digest", LargeBinary(32), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
# Batches of usage records already counted (a file's digest, or the mediation system's batch
# id): the same batch sent again is counted once.
usage_batches = Table(
    "usage_batches",
    metadata,
    Column("batch_id", String(100), primary_key=True),
    Column("records", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
# Each deactivation the usage policy made (``usage_policy``), per SIM and period that reached its
# limit: the SIM is due back when ``period_ends_at`` has passed (the account's next midnight or
# first of the month) and no other of its deactivations still runs. ``closed_at`` is set when the
# worker took the row up, with the reactivation's TrackingNumber if it made one (NULL: the SIM
# was no longer Deactivated, or the account no longer asked for it).
usage_deactivations = Table(
    "usage_deactivations",
    metadata,
    Column("id", Id, primary_key=True),
    Column("sim_id", Id, ForeignKey("sim_cards.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("period", String(8), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_ends_at", UTCDateTime, nullable=False),
    Column("deactivation_tracking_number", String(36), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("reactivation_tracking_number", String(36), nullable=True),
    # The worker's step, once a minute: the open rows whose period has ended, and nothing else.
    Index(
        "ix_usage_deactivations_open_period_ends_at",
        "period_ends_at",
        sqlite_where=text("closed_at IS NULL"),
        postgresql_where=text("closed_at IS NULL"),
    ),
    # "Does another deactivation of this SIM still run?", and the SIM's deletion.
    Index("ix_usage_deactivations_sim_id_period_ends_at", "sim_id", "period_ends_at"),
    Index("ix_usage_deactivations_account_id", "account_id"),
    CheckConstraint("period IN ('daily', 'monthly')", name="period"),
)
