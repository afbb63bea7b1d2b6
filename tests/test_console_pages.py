"""The console's pages and actions over the real app, without a browser (SQLite and
PostgreSQL): what each page shows, that actions go through the API's pipeline, and that one
account never sees or touches another's SIMs, requests or tokens."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.callbacks import signing_secret
from m2m.clock import ManualClock, SystemClock
from m2m.sandbox import API_KEY, CLIENT_ID, DEMO_EMAIL
from m2m.settings import Settings
from m2m.storage import accounts as account_store
from m2m.storage.tables import callback_deliveries, lifecycle_requests, sim_cards
from tests.support.api import access_token
from tests.support.audit import AuditWatch, audit_rows, stored_text
from tests.support.console import add_user, console_client, csrf_of, sign_in
from tests.support.constants import SECRET_KEY
from tests.support.receiver import Receiver
from tests.support.sims import add_sim, set_labels
from tests.support.tenants import Tenant
from tests.support.worker import drain

TRACKING = re.compile(r"/console/requests/([0-9a-f-]{36})")


@pytest.fixture
def csrf(console: TestClient, engine: Engine, clock: ManualClock) -> str:
    return sign_in(console, engine, clock)


def sim_id(engine: Engine, msisdn: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(sim_cards.c.id).where(sim_cards.c.msisdn == msisdn)).scalar_one()
        )


def state_of(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.state).where(sim_cards.c.msisdn == msisdn)).scalar_one()
        )


def act(console: TestClient, csrf: str, operation: str, *ids: int, **extra: str) -> httpx.Response:
    return console.post(
        "/console/sims/actions",
        data={"csrf_token": csrf, "operation": operation, "sim": [str(i) for i in ids], **extra},
        follow_redirects=False,
    )


def test_every_page_renders_for_the_demo_user(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    for path in [
        "/console/",
        "/console/sims",
        "/console/requests",
        "/console/callback",
        "/console/token",
        "/console/api-keys",
        "/console/events",
        "/console/audit",
        f"/console/sims/{sim_id(engine, '32470000001')}",
    ]:
        response = console.get(path)
        assert response.status_code == 200, path
        assert DEMO_EMAIL in response.text
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert console.get("/", follow_redirects=False).headers["location"] == "/console/"


def test_the_console_is_not_in_the_openapi_document(console: TestClient) -> None:
    paths = console.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/console")]


def test_overview_charts_sims_by_state_and_the_days_requests(
    console: TestClient, csrf: str, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    act(console, csrf, "deactivation", sim_id(engine, "32470000001"), sim_id(engine, "32470000013"))
    drain(settings, engine, clock)
    page = console.get("/console/").text
    assert "<strong>100</strong> SIM cards" in page
    assert page.count("<svg") >= 3
    assert 'aria-label="SIM cards by state"' in page
    assert re.search(r"Success <strong>1</strong>", page)
    assert re.search(r"Failure <strong>1</strong>", page)  # 32470000013 always fails


def test_search_by_msisdn_iccid_or_imsi_prefix_and_filter_by_state(
    console: TestClient, csrf: str
) -> None:
    from m2m.sandbox import demo_iccid, demo_imsi

    def rows(query: str) -> list[str]:
        page = console.get("/console/sims" + query)
        assert page.status_code == 200
        return re.findall(r'href="/console/sims/\d+">(\d+)<', page.text)

    assert rows("?q=32470000001") == ["32470000001"]
    assert rows(f"?q={demo_iccid(2)}") == ["32470000002"]
    assert rows(f"?q={demo_imsi(3)}") == ["32470000003"]
    assert rows("?q=+3247000009") == [str(32470000090 + i) for i in range(10)]
    assert rows("?q=324700000&state=Deactivated") == [
        "32470000091",
        "32470000092",
        "32470000093",
        "32470000094",
        "32470000095",
        "32470000096",
        "32470000097",
        "32470000098",
        "32470000099",
    ]
    assert rows("?q=99999") == []
    assert console.get("/console/sims?q=abc").status_code == 400
    assert console.get("/console/sims?state=Sleeping").status_code == 400
    assert console.get("/console/sims?after=x").status_code == 400


def test_filter_by_label(console: TestClient, csrf: str, engine: Engine) -> None:
    def rows(query: str) -> list[str]:
        page = console.get("/console/sims" + query)
        assert page.status_code == 200
        return re.findall(r'href="/console/sims/\d+">(\d+)<', page.text)

    for n in range(1, 8):
        set_labels(engine, str(32470000000 + n), {"site": "ghent" if n < 5 else "bruges"})
    assert rows("?label=site%3Dghent") == [str(32470000000 + n) for n in range(1, 5)]
    assert rows("?label=site") == [str(32470000000 + n) for n in range(1, 8)]
    assert rows("?label=site%3Dbruges&state=Active") == [str(32470000000 + n) for n in range(5, 8)]
    assert rows("?label=site%3Dghent&q=32470000002") == ["32470000002"]
    assert rows("?label=nowhere") == []
    refused = console.get("/console/sims?label=%3Dghent")
    assert refused.status_code == 400
    assert "key=value" in html.unescape(refused.text)


def test_pages_follow_each_other_by_keyset(console: TestClient, csrf: str) -> None:
    first = console.get("/console/sims").text
    numbers = re.findall(r'href="/console/sims/\d+">(\d+)<', first)
    assert numbers == [str(32470000001 + i) for i in range(50)]
    following = re.search(r'href="\?q=&amp;state=&amp;label=&amp;after=(\d+)" rel="next"', first)
    assert following
    assert 'rel="prev"' not in first
    second = console.get(f"/console/sims?after={following.group(1)}").text
    assert re.findall(r'href="/console/sims/\d+">(\d+)<', second) == [
        str(32470000051 + i) for i in range(50)
    ]
    assert 'rel="next"' not in second
    back = re.search(r'href="\?q=&amp;state=&amp;label=&amp;before=(\d+)" rel="prev"', second)
    assert back
    again = console.get(f"/console/sims?before={back.group(1)}").text
    assert re.findall(r'href="/console/sims/\d+">(\d+)<', again) == numbers


def test_deactivating_from_the_sim_page_is_a_tracked_request_with_history(
    console: TestClient, csrf: str, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    sim = sim_id(engine, "32470000001")
    response = act(console, csrf, "deactivation", sim, callback_token="from-console")
    assert response.status_code == 303
    tracking = TRACKING.search(response.headers["location"]).group(1)  # type: ignore[union-attr]
    progress = console.get(f"/console/requests/{tracking}/progress").json()
    assert progress["finished"] is False
    assert progress["total"] == 1
    drain(settings, engine, clock)
    assert console.get(f"/console/requests/{tracking}/progress").json()["succeeded"] == 1
    assert state_of(engine, "32470000001") == "Deactivated"
    with engine.connect() as conn:
        token = conn.execute(select(lifecycle_requests.c.callback_token)).scalar_one()
    assert token == "from-console"
    request_page = console.get(f"/console/requests/{tracking}").text
    assert tracking in request_page
    assert "Active → Deactivated" in request_page
    sim_page = console.get(f"/console/sims/{sim}").text
    assert "Active → Deactivated" in sim_page
    assert tracking in sim_page
    assert console.get("/console/requests").text.count(tracking) >= 1


def test_termination_asks_for_confirmation_first(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    ids = [sim_id(engine, "32470000051"), sim_id(engine, "32470000052")]
    asked = act(console, csrf, "termination", *ids)
    assert asked.status_code == 200
    assert "Terminate 2 SIM cards?" in asked.text
    with engine.connect() as conn:
        assert conn.execute(select(lifecycle_requests.c.id)).first() is None
    confirmed = act(console, csrf_of(asked.text), "termination", *ids, confirm="yes")
    assert confirmed.status_code == 303
    assert TRACKING.search(confirmed.headers["location"])


def test_bad_actions_are_clear_4xx(console: TestClient, csrf: str, engine: Engine) -> None:
    sim = sim_id(engine, "32470000001")
    assert act(console, csrf, "hibernation", sim).status_code == 400
    assert act(console, csrf, "deactivation").status_code == 400
    assert act(console, csrf, "deactivation", 999_999).status_code == 404
    assert (
        console.post(
            "/console/sims/actions",
            data={"csrf_token": csrf, "operation": "activation", "sim": "x"},
        ).status_code
        == 400
    )
    assert console.get("/console/sims/999999").status_code == 404
    assert console.get("/console/requests/not-a-uuid").status_code == 404
    assert console.get("/console/nowhere").status_code == 404


def test_a_failed_callback_can_be_redelivered(
    console: TestClient,
    csrf: str,
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    fast_fail = settings.model_copy(update={"callback_retry_schedule": []})
    receiver.status = 500
    assert (
        console.post(
            "/console/callback",
            data={"csrf_token": csrf, "url": receiver.url},
            follow_redirects=False,
        ).status_code
        == 303
    )
    response = act(console, csrf, "deactivation", sim_id(engine, "32470000002"))
    tracking = TRACKING.search(response.headers["location"]).group(1)  # type: ignore[union-attr]
    drain(fast_fail, engine, clock)
    page = console.get(f"/console/requests/{tracking}").text
    assert "delivery-failed" in page
    assert page.count("HTTP 500") == 1  # in its attempt, not repeated under it
    assert "1 attempt" in page
    action = re.search(r'action="(/console/requests/[^"]+/redeliver)"', page)
    assert action
    receiver.status = 200
    assert (
        console.post(action.group(1), data={"csrf_token": csrf}, follow_redirects=False).status_code
        == 303
    )
    drain(fast_fail, engine, clock)
    assert receiver.count() == 2
    page = console.get(f"/console/requests/{tracking}").text
    assert "delivery-delivered" in page
    assert "Redeliver" not in page


def test_callback_configuration_follows_the_api_rules(console: TestClient, csrf: str) -> None:
    def save(**fields: object) -> httpx.Response:
        return console.post(
            "/console/callback", data={"csrf_token": csrf, **fields}, follow_redirects=False
        )  # type: ignore[arg-type]

    assert save(url="ftp://example.com/").status_code == 422
    assert (
        save(url="http://127.0.0.1:9/cb", header_name="Host", header_value="x").status_code == 422
    )
    assert (
        save(
            url="http://127.0.0.1:9/cb", header_name="x-callback-token", header_value="x"
        ).status_code
        == 422
    )
    assert save(url="http://10.0.0.1/cb").status_code == 403  # private: refused as in the API
    assert (
        save(
            url="http://127.0.0.1:9/cb",
            header_name=["x-one", "Authorization"],
            header_value=["1", "Bearer abc"],
        ).status_code
        == 303
    )
    page = console.get("/console/callback").text
    assert "http://127.0.0.1:9/cb" in page
    assert "x-one" in page
    assert "Bearer abc" not in page
    # Unticking "keep" removes a header; the other keeps its stored value.
    assert save(url="http://127.0.0.1:9/cb", keep="Authorization").status_code == 303
    shown = console.get(
        "/m2m/1.0.0/configure/callback",
        headers={"x-api-key": API_KEY, "Authorization": "Bearer " + access_token(console)},
    ).json()
    assert shown == {"url": "http://127.0.0.1:9/cb", "headers": {"Authorization": "****"}}


def test_rotating_the_signing_secret_shows_it_once_and_signs_with_it(
    console: TestClient,
    csrf: str,
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    response = console.post("/console/callback/signing-secret", data={"csrf_token": csrf})
    secret = re.search(r"(whsec_[A-Za-z0-9+/=]+)", response.text).group(1)  # type: ignore[union-attr]
    assert "will not be shown again" in response.text
    assert secret not in console.get("/console/callback").text
    console.post("/console/callback", data={"csrf_token": csrf, "url": receiver.url})
    act(console, csrf, "deactivation", sim_id(engine, "32470000003"))
    drain(settings, engine, clock)
    (message,) = receiver.received
    Webhook(secret).verify(message.body, message.headers)  # raises if not signed with it
    with engine.connect() as conn:
        account_id = conn.execute(select(callback_deliveries.c.account_id)).scalar_one()
    assert secret != signing_secret(SECRET_KEY, account_id, 1)


def test_the_rotation_says_what_happens_to_the_previous_secret_as_the_callback_page_does(
    console: TestClient, csrf: str
) -> None:
    """The shown-once page agreed with nothing: it said the previous secret "no longer
    verifies" while it signs for 24 h more (the overlap)."""
    page = console.get("/console/callback").text
    assert "for 24 hours they may still verify with the current one" in page  # the confirmation
    assert "m2m admin accounts signing-secret" in page  # how to get one never shown
    shown = console.post("/console/callback/signing-secret", data={"csrf_token": csrf}).text
    assert "no longer verifies" not in shown
    assert "for 24 hours, each message also carries the previous secret&#39;s signature" in shown


def test_regenerating_an_application_secret_asks_first_and_says_what_stops(
    console: TestClient, csrf: str
) -> None:
    page = console.get("/console/token").text
    form = re.search(r'<form[^>]*action="/console/token/apps/\d+/secret"[^>]*>', page)
    assert form is not None
    assert "data-confirm=" in form.group(0)
    assert "stops working at once" in form.group(0)
    assert "access token" in form.group(0)


def test_after_a_rotation_messages_verify_with_the_previous_secret_for_a_while(
    console: TestClient,
    csrf: str,
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    overlap_hours = 0.01  # 36 s: the clock moves past it and stays within the receiver's tolerance
    worker_settings = settings.model_copy(update={"signing_rotation_overlap_hours": overlap_hours})
    page = console.post("/console/callback/signing-secret", data={"csrf_token": csrf}).text
    new = re.search(r"(whsec_[A-Za-z0-9+/=]+)", page).group(1)  # type: ignore[union-attr]
    assert "the previous secret's signature too" in console.get("/console/callback").text
    console.post("/console/callback", data={"csrf_token": csrf, "url": receiver.url})
    with engine.connect() as conn:
        account_id = conn.execute(
            select(sim_cards.c.account_id).where(sim_cards.c.msisdn == "32470000003")
        ).scalar_one()
    old = signing_secret(SECRET_KEY, account_id, 1)

    act(console, csrf, "deactivation", sim_id(engine, "32470000003"))
    drain(worker_settings, engine, clock)
    clock.advance(overlap_hours * 3600 + 1)
    act(console, csrf, "reactivation", sim_id(engine, "32470000003"))
    drain(worker_settings, engine, clock)

    during, after = receiver.received
    Webhook(new).verify(during.body, during.headers)
    Webhook(old).verify(during.body, during.headers)  # raises if not signed with it too
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_permanent_token_added_on_the_token_page_works_until_deleted(
    console: TestClient, csrf: str
) -> None:
    created = console.post("/console/token/permanent", data={"csrf_token": csrf, "name": "curl"})
    secret = re.search(r"(m2mt_[A-Za-z0-9_-]+)", created.text).group(1)  # type: ignore[union-attr]
    api = {"x-api-key": API_KEY, "Authorization": f"Bearer {secret}"}
    assert console.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=api).status_code == 200
    page = console.get("/console/token").text
    assert "curl" in page
    assert secret not in page
    delete = re.findall(r'action="(/console/token/permanent/\d+/delete)"', page)[-1]
    assert (
        console.post(delete, data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert console.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=api).status_code == 401
    assert console.post(delete, data={"csrf_token": csrf}).status_code == 404


@pytest.mark.parametrize(("form", "what"), [("apps", "application"), ("permanent", "token")])
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (" ", "name is empty: give it 1 to 200 characters."),
        ("x" * 201, "name is longer than 200 characters."),
        ("a\x00b", "name contains a control character (U+0000)."),
        ("\u200b\u200d", "name has no visible character."),
        ("invoice\u202etxt.exe", "name contains a bidirectional control character (U+202E)."),
    ],
)
def test_a_bad_name_on_the_token_page_is_a_form_error(
    console: TestClient, csrf: str, form: str, what: str, name: str, problem: str
) -> None:
    before = console.get("/console/token").text

    response = console.post(f"/console/token/{form}", data={"csrf_token": csrf, "name": name})

    assert response.status_code == 422
    assert f'role="alert">The {what} {problem}<' in response.text
    assert '<form method="post" action="/console/token/' in response.text  # the page, to retry
    assert "m2ms_" not in response.text
    assert "m2mt_" not in response.text
    assert console.get("/console/token").text == before


def test_regenerating_a_client_secret_retires_the_old_one_and_its_token(
    console: TestClient, csrf: str
) -> None:
    old_token = access_token(console)
    page = console.get("/console/token").text
    assert CLIENT_ID in page
    action = re.search(r'action="(/console/token/apps/\d+/secret)"', page).group(1)  # type: ignore[union-attr]
    shown = console.post(action, data={"csrf_token": csrf}).text
    new_secret = re.search(r"(m2ms_[A-Za-z0-9_-]+)", shown).group(1)  # type: ignore[union-attr]
    assert access_token(console) == ""  # the public sandbox secret no longer works
    assert access_token(console, client_secret=new_secret)
    api = {"x-api-key": API_KEY, "Authorization": f"Bearer {old_token}"}
    assert console.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=api).status_code == 401
    added = console.post("/console/token/apps", data={"csrf_token": csrf, "name": "fleet"}).text
    client_id = re.search(r"<dt>client_id</dt>\s*<dd><code[^>]*>([^<]+)<", added).group(1)  # type: ignore[union-attr]
    client_secret = re.search(r"(m2ms_[A-Za-z0-9_-]+)", added).group(1)  # type: ignore[union-attr]
    assert access_token(console, client_id, client_secret)


@pytest.mark.usefixtures("csrf")  # signed in
def test_the_api_keys_page_shows_the_accounts_rate_limit(
    console: TestClient, engine: Engine
) -> None:
    page = console.get("/console/api-keys").text
    assert "1000 requests per second" in page
    assert "the platform's default" in page
    with engine.connect() as conn:
        sandbox = account_store.find_sandbox_account(conn)
    assert sandbox is not None
    accounts.set_rate_limit(engine, SystemClock(), sandbox.id, 25, 40, actor=ADMIN_CLI)
    page = console.get("/console/api-keys").text
    assert "25 requests per second" in page
    assert "bursts of up to 40" in page
    assert "default" not in page.split('id="rate-limit"')[1].split("</p>")[0]


def test_api_keys_are_created_once_shown_and_revoked(console: TestClient, csrf: str) -> None:
    shown = console.post("/console/api-keys", data={"csrf_token": csrf}).text
    key = re.search(r"(m2mk_[A-Za-z0-9_-]+)", shown).group(1)  # type: ignore[union-attr]
    api = {"x-api-key": key, "Authorization": f"Bearer {access_token(console)}"}
    assert console.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=api).status_code == 200
    page = console.get("/console/api-keys").text
    assert key not in page
    assert key[:9] in page
    assert ">active<" in page
    revoke = re.findall(r'action="(/console/api-keys/\d+/revoke)"', page)[-1]
    assert (
        console.post(revoke, data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert console.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=api).status_code == 401


def test_one_account_cannot_reach_anothers_sims_requests_or_tokens_by_url(
    console: TestClient,
    csrf: str,
    engine: Engine,
    clock: ManualClock,
    other_tenant: Tenant,
    settings: Settings,
) -> None:
    """The demo user tries the other account's objects by id; the other account's user cannot
    see the demo account's either."""
    add_sim(engine, clock, other_tenant.account_id, "32499000001")
    foreign_sim = sim_id(engine, "32499000001")
    assert console.get(f"/console/sims/{foreign_sim}").status_code == 404
    assert act(console, csrf, "termination", foreign_sim, confirm="yes").status_code == 404
    assert ">32499000001<" not in console.get("/console/sims?q=32499").text
    assert state_of(engine, "32499000001") == "Ready"

    add_user(engine, clock, other_tenant.account_id, "b@example.com")
    with console_client(settings, engine, clock) as other:
        other_csrf = sign_in(other, engine, clock, "b@example.com")
        response = act(other, other_csrf, "activation", foreign_sim)
        tracking = TRACKING.search(response.headers["location"]).group(1)  # type: ignore[union-attr]
        tokens_page = other.get("/console/token").text
        token_delete = re.findall(r'action="(/console/token/permanent/\d+/delete)"', tokens_page)[0]
        key_revoke = re.findall(
            r'action="(/console/api-keys/\d+/revoke)"', other.get("/console/api-keys").text
        )[0]
        assert other.get(f"/console/sims/{sim_id(engine, '32470000001')}").status_code == 404
        assert ">32470000001<" not in other.get("/console/sims").text
    assert console.get(f"/console/requests/{tracking}").status_code == 404
    assert console.get(f"/console/requests/{tracking}/progress").status_code == 404
    assert tracking not in console.get("/console/requests").text
    assert console.post(token_delete, data={"csrf_token": csrf}).status_code == 404
    assert console.post(key_revoke, data={"csrf_token": csrf}).status_code == 404
    # The other tenant's credentials still work: nothing was deleted or revoked.
    api = {
        "x-api-key": other_tenant.api_key,
        "Authorization": f"Bearer {other_tenant.permanent_token}",
    }
    assert console.get("/m2m/1.0.0/simcards?msisdn=32499000001", headers=api).status_code == 200


def test_the_sim_page_shows_the_seven_documented_custom_fields(
    console: TestClient, csrf: str, engine: Engine, clock: ManualClock
) -> None:
    """As the API answers them: every key, in order, even for a SIM imported without them."""
    from m2m.storage.accounts import find_sandbox_account

    with engine.connect() as conn:
        account = find_sandbox_account(conn)
    assert account
    add_sim(engine, clock, account.id, "32499000050", {"CustomFields": {"Custom Field 2": "B"}})

    page = console.get(f"/console/sims/{sim_id(engine, '32499000050')}").text

    shown = re.search(r'"CustomFields": (\{[^}]*\})', html.unescape(page))
    assert shown
    fields = json.loads(shown.group(1))
    assert list(fields) == [f"Custom Field {n}" for n in range(1, 8)]
    assert fields["Custom Field 2"] == "B"


def test_pages_answer_head_as_get(console: TestClient, csrf: str) -> None:
    for path in ("/console/", "/console/sims", "/console/token", "/console/static/console.css"):
        got, head = console.get(path), console.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.content == b""
    console.cookies.clear()
    assert console.head("/console/login").status_code == 200
    assert console.head("/console/", follow_redirects=False).status_code == 303
    assert console.head("/console/logout").status_code == 405  # a POST-only action


def test_a_suspended_account_makes_no_new_credentials_but_may_retire_them(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    from m2m import accounts
    from m2m.storage.accounts import find_sandbox_account

    with engine.connect() as conn:
        account = find_sandbox_account(conn)
    assert account
    accounts.set_subscription(engine, SystemClock(), account.id, False, actor=ADMIN_CLI)
    form = {"csrf_token": csrf, "name": "more"}
    for path in ("/console/api-keys", "/console/token/permanent", "/console/token/apps"):
        refused = console.post(path, data=form)
        assert refused.status_code == 403, path
        assert "subscription is suspended" in refused.text
        assert not re.search(r"m2m[kst]_", refused.text)
    # Retiring and rotating stay possible: a leaked credential must be stoppable.
    revoke = re.findall(
        r'action="(/console/api-keys/\d+/revoke)"', console.get("/console/api-keys").text
    )
    assert (
        console.post(revoke[0], data={"csrf_token": csrf}, follow_redirects=False).status_code
        == 303
    )
    page = console.get("/console/token").text
    rotate = re.findall(r'action="(/console/token/apps/\d+/secret)"', page)[0]
    assert console.post(rotate, data={"csrf_token": csrf}).status_code == 200


def test_a_suspended_account_sees_its_status_and_cannot_request(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    from m2m import accounts
    from m2m.storage.accounts import find_sandbox_account

    with engine.connect() as conn:
        account = find_sandbox_account(conn)
    assert account
    accounts.set_subscription(engine, SystemClock(), account.id, False, actor=ADMIN_CLI)
    assert ">suspended<" in console.get("/console/api-keys").text
    assert act(console, csrf, "deactivation", sim_id(engine, "32470000001")).status_code == 403


def test_the_favicon_is_served_where_browsers_look_for_it(console: TestClient) -> None:
    """A 404 there is an error in the browser's console on every first visit."""
    icon = console.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert 'rel="icon"' in console.get("/console/login").text


@pytest.mark.usefixtures("csrf")  # signed in
def test_the_console_says_cost_center_as_the_api_does(console: TestClient, engine: Engine) -> None:
    pages = (
        console.get("/console/sims").text
        + console.get(f"/console/sims/{sim_id(engine, '32470000001')}").text
    )
    assert "Cost center" in pages
    assert "Cost centre" not in pages


def test_a_request_with_nothing_selected_stays_on_the_search_and_says_why(
    console: TestClient, csrf: str
) -> None:
    listed = console.get("/console/sims?q=3247000000&state=Active").text
    assert 'name="from_list" value="yes"' in listed
    response = console.post(
        "/console/sims/actions",
        data={
            "csrf_token": csrf,
            "operation": "deactivation",
            "from_list": "yes",
            "q": "3247000000",
            "state": "Active",
        },
    )
    assert response.status_code == 400
    assert "Select at least one SIM card" in response.text
    assert 'value="3247000000"' in response.text  # the search is kept
    assert "32470000001" in response.text  # with its results
    assert "Log out" in response.text  # the console page, with its navigation


# --- the audit trail ----------------------------------------------------------------------------

SHOWN_SECRET = re.compile(r"((?:m2mk|m2ms|m2mt|whsec)_[A-Za-z0-9+/=_-]+)")


def _shown_secret(response: httpx.Response) -> str:
    found = SHOWN_SECRET.search(response.text)
    assert found, response.text
    return found.group(1)


def test_every_console_change_is_recorded_once_by_the_user_without_a_secret(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    watch = AuditWatch(engine)
    secrets: list[str] = []

    def post(path: str, **fields: str | list[str]) -> httpx.Response:
        response = console.post(
            path, data={"csrf_token": csrf, **fields}, headers={"X-Request-ID": "console-req"}
        )
        assert response.status_code in (200, 303), response.text
        return response

    secrets.append(_shown_secret(post("/console/api-keys")))
    key = watch.one("api_key.created")
    assert (key["subject_kind"], key["subject"]) == ("api_key", secrets[-1][:9])
    revoke = re.findall(
        r'action="(/console/api-keys/\d+/revoke)"', console.get("/console/api-keys").text
    )[-1]
    post(revoke)
    assert watch.one("api_key.revoked")["subject"] == secrets[-1][:9]

    created = post("/console/token/apps", name="Billing")
    secrets.append(_shown_secret(created))
    app = watch.one("application.created")
    assert app["changes"] == {"name": {"before": None, "after": "Billing"}}
    assert f'<code class="secret" data-secret>{app["subject"]}</code>' in created.text
    rotate = re.findall(
        r'action="(/console/token/apps/\d+/secret)"', console.get("/console/token").text
    )[-1]
    secrets.append(_shown_secret(post(rotate)))
    assert watch.one("application.secret_rotated")["subject_kind"] == "application"

    secrets.append(_shown_secret(post("/console/token/permanent", name="curl")))
    assert watch.one("token.created")["subject"] == "curl"
    delete = re.findall(
        r'action="(/console/token/permanent/\d+/delete)"', console.get("/console/token").text
    )[-1]
    post(delete)
    assert watch.one("token.deleted")["subject"] == "curl"

    post(
        "/console/callback",
        url="http://127.0.0.1:9/hook",
        header_name="Authorization",
        header_value="Bearer console-receiver-secret",
    )
    configured = watch.one("callback.configured")
    assert configured["changes"]["headers"]["after"] == {"Authorization": "[redacted]"}
    secrets.append("console-receiver-secret")
    secrets.append(_shown_secret(post("/console/callback/signing-secret")))
    rotated = watch.one("callback.signing_secret_rotated")
    assert rotated["changes"] == {"signing_key_version": {"before": 1, "after": 2}}

    post(
        "/console/sims/actions", operation="deactivation", sim=[str(sim_id(engine, "32470000001"))]
    )
    requested = watch.one("request.deactivation")
    assert requested["changes"]["devices"] == {"before": None, "after": 1}

    entries = audit_rows(engine)
    assert {(e["actor_kind"], e["actor"], e["request_id"]) for e in entries} == {
        ("console", DEMO_EMAIL, "console-req")
    }
    text = stored_text(engine)
    for secret in secrets:
        assert secret not in text


def test_a_redelivered_callback_message_is_recorded(
    console: TestClient, csrf: str, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    console.post("/console/callback", data={"csrf_token": csrf, "url": "http://127.0.0.1:9/x"})
    act(console, csrf, "deactivation", sim_id(engine, "32470000004"))
    drain(settings, engine, clock)
    with engine.connect() as conn:
        tracking, delivery = conn.execute(
            select(lifecycle_requests.c.tracking_number, callback_deliveries.c.id).select_from(
                lifecycle_requests.join(
                    callback_deliveries,
                    callback_deliveries.c.account_id == lifecycle_requests.c.account_id,
                )
            )
        ).first()  # type: ignore[misc]
    watch = AuditWatch(engine)
    response = console.post(
        f"/console/requests/{tracking}/deliveries/{delivery}/redeliver",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    entry = watch.one("callback.redelivered")
    assert (entry["subject_kind"], entry["subject"]) == ("callback_message", str(delivery))


def test_the_audit_page_lists_filters_and_pages_the_account_s_events(
    console: TestClient, csrf: str, engine: Engine, other_tenant: Tenant
) -> None:
    for n in range(3):
        console.post("/console/token/permanent", data={"csrf_token": csrf, "name": f"tok-{n}"})
    page = console.get("/console/audit")
    assert page.status_code == 200
    assert 'aria-current="page">Audit<' in page.text
    assert page.text.index("tok-2") < page.text.index("tok-0")  # newest first
    assert "Tenant B" not in page.text  # another account's creation is not here

    only = console.get("/console/audit", params={"action": "token.created", "actor": DEMO_EMAIL})
    assert "tok-1" in only.text

    nothing = console.get("/console/audit", params={"actor": "nobody@example.com"})
    assert "No event matches." in nothing.text

    # Fifty to a page: the 51st event is on the next, through the Older link.
    for n in range(3, 52):
        console.post("/console/token/permanent", data={"csrf_token": csrf, "name": f"tok-{n}"})
    first = console.get("/console/audit", params={"action": "token."})
    older = re.search(r'href="\?([^"]*before=\d+)" rel="next"', first.text)
    assert older, first.text
    second = console.get("/console/audit?" + html.unescape(older.group(1)))
    assert ">tok-0<" not in first.text
    assert ">tok-0<" in second.text
    assert ">tok-51<" not in second.text


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"sim": "12"}, "ICCID"),
        ({"since": "yesterday"}, "2026-12-01T04:00"),
        ({"before": str(2**64)}, "start from the newest"),
    ],
)
def test_a_bad_audit_filter_is_a_400_that_says_why(
    console: TestClient, csrf: str, params: dict[str, str], problem: str
) -> None:
    response = console.get("/console/audit", params=params)
    assert response.status_code == 400
    assert problem in response.text
