"""The sandbox's demo data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m import accounts as account_service
from m2m import credentials, sandbox
from m2m.asgi import create_app
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.console.users import password_matches
from m2m.identifiers import iccid_problem, imsi_problem, msisdn_problem
from m2m.profile import SimProfile
from m2m.settings import ConfigurationError, Settings
from m2m.storage import accounts as account_store
from m2m.storage import console as console_store
from m2m.storage.engine import write_transaction
from m2m.storage.tables import accounts, console_users, sim_cards


def test_demo_identifiers_are_valid_and_unique() -> None:
    iccids = [sandbox.demo_iccid(n) for n in range(1, sandbox.SIM_COUNT + 1)]
    imsis = [sandbox.demo_imsi(n) for n in range(1, sandbox.SIM_COUNT + 1)]
    assert all(iccid_problem(i) is None for i in iccids)
    assert all(imsi_problem(i) is None for i in imsis)
    assert len(set(iccids)) == len(set(imsis)) == sandbox.SIM_COUNT
    assert msisdn_problem(str(sandbox.FIRST_MSISDN)) is None


def test_demo_profiles_are_complete() -> None:
    profile = SimProfile.model_validate(sandbox.demo_profile(4))
    assert profile.DataService.Plan.Code
    assert profile.DataService.ServiceAreas
    assert profile.DataService.Features
    assert profile.DataService.MonthlyTreshold > 0
    assert profile.VoiceService.FeatureCodes


def test_seeding_happens_once(engine: Engine, clock: ManualClock) -> None:
    with write_transaction(engine) as conn:
        assert sandbox.seed(conn, clock.now())
    with write_transaction(engine) as conn:
        assert not sandbox.seed(conn, clock.now())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(sim_cards)).scalar_one() == 100


def test_the_sandbox_goes_only_into_an_empty_database_or_its_own(
    engine: Engine, clock: ManualClock
) -> None:
    with write_transaction(engine) as conn:
        sandbox.check_can_seed(conn)  # empty: fine
        sandbox.seed(conn, clock.now())
    account_service.create_account(engine, clock, "Added for testing", actor=ADMIN_CLI)
    with write_transaction(engine) as conn:
        sandbox.check_can_seed(conn)  # the sandbox's own database, accounts added since: fine


def test_the_sandbox_is_not_added_beside_real_accounts(engine: Engine, clock: ManualClock) -> None:
    account_service.create_account(engine, clock, "Real Customer", actor=ADMIN_CLI)
    with write_transaction(engine) as conn, pytest.raises(ConfigurationError, match="holds"):
        sandbox.check_can_seed(conn)


def test_a_sandbox_made_before_the_console_gets_its_demo_user(
    engine: Engine, clock: ManualClock
) -> None:
    with write_transaction(engine) as conn:
        sandbox.seed(conn, clock.now())
        conn.execute(console_users.delete())
    with write_transaction(engine) as conn:
        assert sandbox.seed(conn, clock.now()) is False
    with engine.connect() as conn:
        user = console_store.find_user(conn, sandbox.DEMO_EMAIL)
    assert user is not None
    assert user.password_hash == sandbox.DEMO_PASSWORD_HASH
    assert password_matches(user.password_hash, sandbox.DEMO_PASSWORD)


def test_a_restart_gives_back_the_documented_credentials(
    quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    """A secret regenerated or the key revoked in the console: the next start restores them,
    and the README's calls work again."""
    with write_transaction(engine) as conn:
        sandbox.seed(conn, clock.now())
        account = account_store.find_sandbox_account(conn)
        assert account is not None
        [app] = account_store.list_apps(conn, account.id)
        account_store.replace_app_secret(conn, account.id, app.id, credentials.digest("other"))
        for key in account_store.list_api_keys(conn, account.id):
            account_store.revoke_api_key(conn, key.id, clock.now())
    form = {
        "grant_type": "client_credentials",
        "client_id": sandbox.CLIENT_ID,
        "client_secret": sandbox.CLIENT_SECRET,
    }
    with TestClient(create_app(quiet, engine=engine, clock=clock)) as client:
        assert client.post("/token", data=form).status_code == 401

    with write_transaction(engine) as conn:
        assert sandbox.seed(conn, clock.now()) is False

    with TestClient(create_app(quiet, engine=engine, clock=clock)) as client:
        token = client.post("/token", data=form)
        assert token.status_code == 200
        headers = {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "x-api-key": sandbox.API_KEY,
        }
        sims = client.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=headers)
        assert sims.status_code == 200
