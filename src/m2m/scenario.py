"""Sandbox scenarios: the demo state plus what a test suite needs besides it, in one JSON file
(``m2m serve --sandbox --scenario FILE``, ``POST /sandbox/scenario``)::

    {
      "sims": [
        {"msisdn": "32470000001", "state": "Deactivated"},
        {"iccid": "8932017000000009991", "imsi": "206019999999991",
         "msisdn": "32479999991", "state": "Ready"}
      ],
      "callback": {"url": "http://127.0.0.1:9000/callbacks", "headers": {"x-test": "1"}},
      "accounts": [
        {"name": "Second tenant", "client_id": "tenant-b", "client_secret": "tenant-b-secret",
         "api_key": "tenant-b-key", "sims": [...], "callback": {...}}
      ],
      "faults": [{"identifier": "32470000002", "operation": "deactivation", "count": 1}],
      "usage": {"policy": "deactivate", "reactivate_next_period": true}
    }

A SIM of the sandbox account named by a demo MSISDN alone gets that state; any other SIM is
added (ICCID, IMSI and MSISDN all given, with the demo profile of the first SIM). Accounts get
the credentials given (public, like the sandbox's: it is a sandbox). JSON only: PyYAML is not a
dependency, and JSON is what every language writes without one.

``parse`` checks a document (pydantic), ``apply`` writes it after the sandbox's reset, in the
caller's transaction. Faults are the caller's to set (they live in the process's memory).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Connection

from m2m import credentials, sandbox
from m2m.callbacks.configuration import checked_callback
from m2m.callbacks.outbound import AddressPolicy, ForbiddenTarget
from m2m.freetext import WITHOUT_CONTROL_CHARACTERS
from m2m.identifiers import SimState, iccid_problem, imsi_problem, msisdn_problem
from m2m.network_faults import SandboxFault
from m2m.storage import accounts as account_store
from m2m.storage import callback_configs
from m2m.storage import sims as sim_store
from m2m.usage import usage_settings_problem

MAX_SIMS = 10_000
PRINTABLE = WITHOUT_CONTROL_CHARACTERS  # PostgreSQL cannot store NUL; no text here needs any


class ScenarioError(ValueError):
    """The scenario cannot be used; the message says where and why."""


class ScenarioSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    msisdn: str
    iccid: str | None = None
    imsi: str | None = None
    state: SimState = SimState.READY
    cost_center: str | None = Field(default=None, max_length=200, pattern=PRINTABLE)

    @model_validator(mode="after")
    def _valid_identifiers(self) -> ScenarioSim:
        problem = msisdn_problem(self.msisdn)
        if self.iccid is not None:
            problem = problem or iccid_problem(self.iccid)
        if self.imsi is not None:
            problem = problem or imsi_problem(self.imsi)
        if problem:
            raise ValueError(problem)
        if (self.iccid is None) != (self.imsi is None):
            raise ValueError("a new SIM needs both iccid and imsi (a demo SIM neither)")
        return self


class ScenarioCallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class ScenarioUsage(BaseModel):
    """An account's usage settings (as ``m2m admin accounts usage-settings`` sets them); JSON's
    own types only (strict: "true" is not a boolean, "80" not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    time_zone: str = "UTC"
    warning_percent: int = Field(default=80, ge=1, le=100)
    policy: Literal["notify", "deactivate"] = "notify"
    reactivate_next_period: bool = False

    @model_validator(mode="after")
    def _known_zone(self) -> ScenarioUsage:
        if problem := usage_settings_problem(self.time_zone, self.warning_percent, self.policy):
            raise ValueError(problem)
        return self


class ScenarioAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)
    client_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._~-]+$")
    client_secret: str = Field(min_length=8, max_length=200, pattern=PRINTABLE)
    api_key: str = Field(min_length=8, max_length=200, pattern=PRINTABLE)
    sims: list[ScenarioSim] = Field(default_factory=list, max_length=MAX_SIMS)
    callback: ScenarioCallback | None = None
    usage: ScenarioUsage | None = None


class Scenario(BaseModel):
    """What a scenario adds to the demo state."""

    model_config = ConfigDict(extra="forbid")

    sims: list[ScenarioSim] = Field(default_factory=list, max_length=MAX_SIMS)
    callback: ScenarioCallback | None = None
    accounts: list[ScenarioAccount] = Field(default_factory=list, max_length=100)
    faults: list[SandboxFault] = Field(default_factory=list, max_length=1000)
    usage: ScenarioUsage | None = None  # the demo account's

    @model_validator(mode="after")
    def _nothing_twice(self) -> Scenario:
        # Checked here, before anything is written: a unique index refusing a row half-way
        # would abort the reset that comes first.
        seen: dict[str, set[str]] = {
            "iccid": {sandbox.demo_iccid(n) for n in range(1, sandbox.SIM_COUNT + 1)},
            "imsi": {sandbox.demo_imsi(n) for n in range(1, sandbox.SIM_COUNT + 1)},
            "msisdn": {str(sandbox.FIRST_MSISDN + n) for n in range(sandbox.SIM_COUNT)},
        }
        for sim in self.sims:
            if sim.iccid is None and sim.msisdn not in seen["msisdn"]:
                raise ValueError(f"{sim.msisdn} is not a demo SIM: a new SIM needs iccid and imsi")
        for account in self.accounts:
            for sim in account.sims:
                if sim.iccid is None:
                    raise ValueError(f"{sim.msisdn}: an account's SIMs need iccid and imsi")
        new_sims = [sim for sim in self.sims if sim.iccid is not None]
        new_sims += [sim for account in self.accounts for sim in account.sims]
        for sim in new_sims:
            for field in ("iccid", "imsi", "msisdn"):
                value = getattr(sim, field)
                if value in seen[field]:
                    raise ValueError(f"{field} {value} is given twice (or is a demo SIM's)")
                seen[field].add(value)
        client_ids = [sandbox.CLIENT_ID, *(account.client_id for account in self.accounts)]
        if len(set(client_ids)) != len(client_ids):
            raise ValueError("each account needs a client_id of its own (not the sandbox's)")
        api_keys = [sandbox.API_KEY, *(account.api_key for account in self.accounts)]
        if len(set(api_keys)) != len(api_keys):
            raise ValueError("each account needs an api_key of its own (not the sandbox's)")
        return self


def parse(document: Any) -> Scenario:
    """The scenario of a decoded JSON document; ScenarioError naming what is wrong."""
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the scenario"
        raise ScenarioError(f"{where}: {first['msg']}") from None


def apply(conn: Connection, scenario: Scenario, now: datetime) -> None:
    """Write ``scenario`` (``checked``) over the demo state just seeded, in the caller's
    transaction."""
    demo = account_store.find_sandbox_account(conn)
    assert demo is not None  # seeded by the reset that comes first
    _sims(conn, demo.id, scenario.sims, now)
    _usage(conn, demo.id, scenario.usage)
    if scenario.callback:
        callback = scenario.callback
        callback_configs.set_callback_config(conn, demo.id, callback.url, callback.headers, now)
    for account in scenario.accounts:
        account_id = account_store.create_account(conn, account.name, now)
        account_store.add_app(
            conn,
            account_id,
            "Scenario application",
            account.client_id,
            credentials.digest(account.client_secret),
            now,
        )
        account_store.add_api_key(
            conn, account_id, credentials.digest(account.api_key), account.api_key[:8], now
        )
        _sims(conn, account_id, account.sims, now)
        _usage(conn, account_id, account.usage)
        if account.callback:
            callback = account.callback
            callback_configs.set_callback_config(
                conn, account_id, callback.url, callback.headers, now
            )


def _usage(conn: Connection, account_id: int, usage: ScenarioUsage | None) -> None:
    if usage is not None:
        account_store.set_usage_settings(
            conn,
            account_id,
            usage.time_zone,
            usage.warning_percent,
            usage.policy,
            usage.reactivate_next_period,
        )


def _sims(conn: Connection, account_id: int, sims: list[ScenarioSim], now: datetime) -> None:
    new = []
    for sim in sims:
        if sim.iccid is None:  # a demo SIM (``Scenario`` checked it)
            sim_store.set_state_by_msisdn(conn, account_id, sim.msisdn, sim.state.value, now)
            continue
        new.append(
            {
                "account_id": account_id,
                "iccid": sim.iccid,
                "imsi": sim.imsi,
                "msisdn": sim.msisdn,
                "state": sim.state.value,
                "cost_center": sim.cost_center,
                "profile": sandbox.demo_profile(1),
                "created_at": now,
                "updated_at": now,
            }
        )
    sim_store.insert_sims(conn, new)


def checked(scenario: Scenario, policy: AddressPolicy) -> Scenario:
    """``scenario`` with its callbacks checked against the callback rules (the SSRF guard
    included), before the transaction that applies it; ScenarioError naming what is wrong."""

    def check(where: str, callback: ScenarioCallback | None) -> ScenarioCallback | None:
        if callback is None:
            return None
        try:
            headers = checked_callback(callback.url, callback.headers, policy, require_https=False)
        except (ValueError, ForbiddenTarget) as error:
            raise ScenarioError(f"{where}: {error}") from None
        return callback.model_copy(update={"headers": headers})

    return scenario.model_copy(
        update={
            "callback": check("callback", scenario.callback),
            "accounts": [
                account.model_copy(
                    update={"callback": check(f"accounts.{index}.callback", account.callback)}
                )
                for index, account in enumerate(scenario.accounts)
            ],
        }
    )
