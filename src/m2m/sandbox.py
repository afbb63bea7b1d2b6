"""The sandbox: a demo account with fixed, documented credentials and 100 demo SIMs.

These credentials are public. They exist only when the server runs with ``--sandbox``; a server
started without it refuses a database that holds the sandbox account.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from m2m import credentials
from m2m.callbacks import signing_secret
from m2m.identifiers import SimState, luhn_check_digit
from m2m.profile import SimProfile
from m2m.settings import ConfigurationError
from m2m.storage import accounts as account_store
from m2m.storage import callback_configs
from m2m.storage import console as console_store
from m2m.storage import sims as sim_store
from m2m.storage.wipe import empty_all_tables

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - public by design
API_KEY = "sandbox-api-key"
ACCOUNT_NAME = "Sandbox demo"

# The console's demo user. The hash is of DEMO_PASSWORD, computed once (Argon2id, argon2-cffi's
# default parameters): seeding stays instant, and a login re-hashes it if the defaults change.
DEMO_EMAIL = "demo@sandbox.m2m"
DEMO_PASSWORD = "sandbox-password"  # noqa: S105 - public by design
DEMO_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$6a690QnOUuUAH6tmk3ee6A"  # noqa: S105 - of the password above
    "$osXycQiOEFK3zzmTGGA1abBjc3vhBy53iCnXped+fDg"
)

FIRST_MSISDN = 32470000001
SIM_COUNT = 100


def demo_state(index: int) -> SimState:
    """SIM 1-50 Active, 51-90 Ready, 91-100 Deactivated (index counts from 1)."""
    if index <= 50:
        return SimState.ACTIVE
    if index <= 90:
        return SimState.READY
    return SimState.DEACTIVATED


def demo_iccid(index: int) -> str:
    # 89 (telecom) 32 (Belgium) 01 (issuer), a 12-digit serial, then the Luhn check digit.
    payload = f"893201{700000000000 + index:012d}"
    return payload + str(luhn_check_digit(payload))


def demo_imsi(index: int) -> str:
    return f"20601{1000000000 + index:010d}"  # MCC 206 (Belgium), MNC 01


_PLANS = [
    ("M2M-DATA-100MB", "M2M Data 100 MB/month", 100, 3_000),
    ("M2M-DATA-1GB", "M2M Data 1 GB/month", 1_000, 30_000),
    ("M2M-DATA-10GB", "M2M Data 10 GB/month", 10_000, 300_000),
]
_FLEETS = ["Smart meters", "Vending machines", "Fleet tracking", "Elevators", "Parking sensors"]


def demo_profile(index: int) -> dict[str, Any]:
    plan_code, plan_name, daily_mb, monthly_mb = _PLANS[index % len(_PLANS)]
    fleet = _FLEETS[index % len(_FLEETS)]
    profile = SimProfile.model_validate(
        {
            "AccessPoints": [
                {
                    "Code": "m2m.sandbox.example",
                    "Properties": {
                        "StaticIP": f"10.64.{index // 250}.{index % 250 + 1}",
                        "UserName": f"device{index:05d}",
                        "CustomName": f"{fleet} APN",
                    },
                }
            ],
            "CustomFields": {
                "Custom Field 1": fleet,
                "Custom Field 2": f"Site {index % 7 + 1}",
                "Custom Field 3": f"Asset {index:05d}",
                "Custom Field 4": "",
                "Custom Field 5": "",
                "Custom Field 6": "",
                "Custom Field 7": "",
            },
            "DataService": {
                "Plan": {"Code": plan_code, "Description": plan_name, "ServiceType": "Data"},
                "ServiceAreas": [
                    {"Code": "BE", "Description": "Belgium"},
                    {"Code": "EU", "Description": "European Union roaming"},
                ],
                "Features": [
                    {"Code": "LTE-M", "Enabled": True},
                    {"Code": "NB-IOT", "Enabled": index % 2 == 0},
                    {"Code": "ROAMING", "Enabled": index % 3 != 0},
                ],
                "DailyTreshold": daily_mb,
                "MonthlyTreshold": monthly_mb,
            },
            "SMSService": {
                "PlanCode": "M2M-SMS-50",
                "ServiceAreas": [{"Code": "BE", "Description": "Belgium"}],
                "FeatureCodes": ["MO-SMS", "MT-SMS"],
                "DailyTreshold": 10,
                "MonthlyTreshold": 50,
            },
            "VoiceService": {
                "PlanCode": "M2M-VOICE-NONE" if index % 4 else "M2M-VOICE-60",
                "ServiceAreas": [{"Code": "BE", "Description": "Belgium"}],
                "FeatureCodes": ["VOICE-BARRED"] if index % 4 else ["MO-VOICE", "MT-VOICE"],
                "DailyTreshold": 0 if index % 4 else 10,
                "MonthlyTreshold": 0 if index % 4 else 60,
            },
        }
    )
    return profile.model_dump()


@functools.cache
def _demo_profiles() -> tuple[dict[str, Any], ...]:
    """The demo SIMs' profiles, validated once per process: the sandbox's reset seeds them
    again and again (stored as JSON, never changed in place)."""
    return tuple(demo_profile(index) for index in range(1, SIM_COUNT + 1))


def check_can_seed(conn: Connection) -> None:
    """Refuse to add the sandbox, whose credentials are public, beside real accounts: the
    sandbox starts on an empty database (or one it made, where accounts may have been added
    since for testing)."""
    if account_store.find_sandbox_account(conn) is None and account_store.has_accounts(conn):
        raise ConfigurationError(
            "this database already holds accounts, and the sandbox's credentials are public: "
            "serve the sandbox from an empty database (another M2M_DATA_DIR or "
            "M2M_DATABASE_URL)."
        )


def seed(conn: Connection, now: datetime) -> bool:
    """Create the sandbox account, app, key, console user and SIMs unless it exists. True if it
    created them. (A sandbox made before the console existed gets its demo user.)

    An existing sandbox gets its documented credentials back: they are printed in the README
    and the banner, and a secret regenerated or a key revoked in the console would otherwise
    break every documented call until the data folder is deleted."""
    existing = account_store.find_sandbox_account(conn)
    if existing is not None:
        if console_store.find_user(conn, DEMO_EMAIL) is None:
            console_store.add_user(conn, existing.id, DEMO_EMAIL, DEMO_PASSWORD_HASH, now)
        account_store.restore_app_secret(
            conn, existing.id, CLIENT_ID, credentials.digest(CLIENT_SECRET)
        )
        account_store.restore_api_key(
            conn, existing.id, credentials.digest(API_KEY), API_KEY[:8], now
        )
        return False
    account_id = account_store.create_account(conn, ACCOUNT_NAME, now, is_sandbox=True)
    console_store.add_user(conn, account_id, DEMO_EMAIL, DEMO_PASSWORD_HASH, now)
    account_store.add_api_key(conn, account_id, credentials.digest(API_KEY), API_KEY[:8], now)
    account_store.add_app(
        conn, account_id, "Sandbox application", CLIENT_ID, credentials.digest(CLIENT_SECRET), now
    )
    rows = []
    for index in range(1, SIM_COUNT + 1):
        rows.append(
            {
                "account_id": account_id,
                "iccid": demo_iccid(index),
                "imsi": demo_imsi(index),
                "msisdn": str(FIRST_MSISDN + index - 1),
                "state": demo_state(index).value,
                "cost_center": f"CC-{1000 + index % 5 * 100}",
                "profile": _demo_profiles()[index - 1],
                "created_at": now,
                "updated_at": now,
            }
        )
    sim_store.insert_sims(conn, rows)
    return True


def reset(conn: Connection, now: datetime) -> None:
    """Back to the documented demo state (``POST /sandbox/reset``): everything the database
    holds goes, and the demo data is seeded again as on a fresh sandbox, with the same ids."""
    empty_all_tables(conn)
    seed(conn, now)


def demo_signing_secret(conn: Connection, secret_key: str) -> str | None:
    """The sandbox account's current callback signing secret (what its receiver verifies
    ``webhook-signature`` with), or None without a sandbox account."""
    account = account_store.find_sandbox_account(conn)
    if account is None:
        return None
    config = callback_configs.get_callback_config(conn, account.id)
    return signing_secret(secret_key, account.id, config.signing_key_version if config else 1)
