"""The console in a real browser: Playwright driving Debian's Chromium against a live server
with its worker running, as a newcomer to the sandbox would use it.

These run on SQLite only: the console's queries are exercised on both databases by
``test_console_pages`` and ``test_console_auth``; here the browser, the pages' forms and their
script are what is tested, and a second database would only double the slowest tests of the
suite. Every page visited is saved as a screenshot under ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    expect,
    sync_playwright,
)
from sqlalchemy import Engine

from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, DEMO_EMAIL, DEMO_PASSWORD, demo_iccid
from m2m.storage import events as event_store
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.sims import add_sim
from tests.support.tenants import make_tenant

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts,
# which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
WAIT_MS = 30_000  # generous: the machine is shared; expectations return as soon as they hold

expect.set_options(timeout=WAIT_MS)
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/run.py test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, sandbox_server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=sandbox_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_on_screen(page: Page, element: Locator) -> None:
    """Within the window's width, without scrolling sideways (a phone user sees it)."""
    box = element.bounding_box()
    viewport = page.viewport_size
    assert box is not None
    assert viewport is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= viewport["width"], (box, viewport)


def go_to(page: Page, link: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()


def log_in(page: Page) -> None:
    page.goto("/console/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_a_wrong_password_is_refused_then_the_demo_user_logs_in(page: Page) -> None:
    page.goto("/console/login")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    shot(page, "login-refused")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(4)
    shot(page, "overview")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto("/console/token")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_find_a_sim_deactivate_it_and_watch_the_request_finish(page: Page) -> None:
    """The README's newcomer path: search 32470000001, deactivate it from its page, follow the
    request to its result, and see the new state and its history on the SIM's page."""
    log_in(page)
    go_to(page, "SIM cards")
    page.get_by_label("MSISDN, ICCID or IMSI").fill("32470000001")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.sims tbody tr")).to_have_count(1)
    shot(page, "sims-search")
    page.get_by_role("link", name="32470000001").click()
    expect(page.locator("#sim-state")).to_have_text("Active")
    shot(page, "sim")
    page.get_by_role("button", name="Deactivation").click()

    expect(page.get_by_role("heading", name="Request: deactivation")).to_be_visible()
    tracking = page.locator("#tracking-number").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", tracking)
    # The page polls its progress and shows the result once the worker is done.
    expect(page.locator("#request-status")).to_contain_text("Finished")
    expect(page.locator("td.result")).to_have_text("Success")
    expect(page.locator("#success-count")).to_have_text("1")
    shot(page, "request")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_on_screen(page, page.locator("table.devices th", has_text="Callback"))
    shot(page, "request-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name="32470000001").click()
    expect(page.locator("#sim-state")).to_have_text("Deactivated")
    expect(page.get_by_text("Active → Deactivated")).to_be_visible()
    expect(page.get_by_role("link", name=tracking)).to_be_visible()
    expect(page.get_by_role("button", name="Reactivation")).to_be_visible()
    go_to(page, "Overview")
    expect(page.get_by_text("Success 1")).to_be_visible()
    shot(page, "overview-after-a-request")


def test_add_a_permanent_token_use_it_then_delete_it_with_the_red_cross(
    page: Page, sandbox_server: str
) -> None:
    log_in(page)
    go_to(page, "TOKEN")
    expect(page.get_by_role("heading", name="Application keys")).to_be_visible()
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Add a new token").click()
    expect(page.get_by_text("will not be shown again")).to_be_visible()
    token = page.locator("code.secret").inner_text()
    assert token.startswith("m2mt_")
    shot(page, "token-shown-once")

    api = {"x-api-key": API_KEY, "Authorization": f"Bearer {token}"}
    url = f"{sandbox_server}/m2m/1.0.0/simcards?msisdn=32470000001"
    assert httpx.get(url, headers=api).json()[0]["State"] == "Active"

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name="laptop", exact=True)).to_be_visible()
    shot(page, "token")
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete the token laptop?"
    page.get_by_role("button", name="Delete token laptop").click()
    expect(page.get_by_role("cell", name="laptop", exact=True)).to_have_count(0)
    assert httpx.get(url, headers=api).status_code == 401


def test_every_other_page_in_a_laptop_and_a_phone_window(page: Page) -> None:
    log_in(page)
    for link, heading, name in [
        ("Requests", "Requests", "requests"),
        ("Callback", "Callback", "callback"),
        ("API keys", "API keys", "api-keys"),
        ("Audit", "Audit", "audit"),
    ]:
        go_to(page, link)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        shot(page, name)
    go_to(page, "SIM cards")
    page.get_by_label("Select 32470000049").check()
    page.get_by_label("Select 32470000050").check()
    page.get_by_label("Operation").select_option("termination")
    page.get_by_role("button", name="Request").click()
    expect(page.get_by_role("heading", name="Terminate 2 SIM cards?")).to_be_visible()
    shot(page, "confirm-termination")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="SIM cards")).to_be_visible()
    shot(page, "sims")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/console/sims")
    expect(page.get_by_label("MSISDN, ICCID or IMSI")).to_be_visible()
    assert_on_screen(page, page.locator("table.sims th", has_text="State"))
    shot(page, "sims-phone")
    page.goto("/console/")
    shot(page, "overview-phone")


def test_a_request_with_nothing_ticked_keeps_the_search(page: Page) -> None:
    log_in(page)
    go_to(page, "SIM cards")
    page.get_by_label("MSISDN, ICCID or IMSI").fill("3247000001")
    page.get_by_role("button", name="Search").click()
    page.get_by_label("Operation").select_option("deactivation")
    page.get_by_role("button", name="Request").click()
    expect(page.get_by_role("alert")).to_contain_text("Select at least one SIM card")
    expect(page.get_by_label("MSISDN, ICCID or IMSI")).to_have_value("3247000001")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    shot(page, "sims-nothing-selected")


def test_secrets_are_replaced_only_after_saying_what_stops_working(page: Page) -> None:
    """Regenerating an application's secret and rotating the signing secret ask first; saying
    no changes nothing."""
    log_in(page)
    asked: list[str] = []

    def refuse(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    go_to(page, "TOKEN")
    page.get_by_role("button", name="Regenerate secret").first.click()
    expect(page.get_by_role("heading", name="TOKEN", exact=True)).to_be_visible()
    go_to(page, "Callback")
    page.get_by_role("button", name="Rotate the signing secret").click()
    expect(page.get_by_role("heading", name="Callback", exact=True)).to_be_visible()
    assert len(asked) == 2
    assert "stops working at once" in asked[0]
    assert "for 24 hours they may still verify with the current one" in asked[1]
    assert page.get_by_text("whsec_").count() == 0  # nothing was rotated


def test_label_a_sim_from_its_page_in_a_laptop_and_a_phone_window(page: Page) -> None:
    """The SIM page reads the profile part by part; its edit form refuses a threshold that is not
    a number next to the field, then adds a label that the page shows. Both pages fit a phone's
    width, and nothing on them is refused by the console's CSP."""
    refused: list[str] = []  # a CSP violation is reported as "Refused to …" in the console

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error" and message.text.startswith("Refused"):
            refused.append(message.text)

    page.on("console", keep)
    log_in(page)
    go_to(page, "SIM cards")
    page.get_by_label("MSISDN, ICCID or IMSI").fill("32470000002")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="32470000002").click()
    expect(page.locator("#labels")).to_contain_text("No labels.")
    expect(page.locator("#service-data")).to_contain_text("M2M-DATA-10GB")
    expect(page.locator("#custom-fields")).to_contain_text("Asset 00002")
    shot(page, "sim-profile")

    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", name="Edit SIM 32470000002")).to_be_visible()
    page.get_by_label("Data daily threshold").fill("lots")
    page.get_by_label("Label 1 key").fill("site")
    page.get_by_label("Label 1 value").fill("ghent")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#data_daily_threshold-error")).to_have_text(
        "Enter a whole number, 0 or more."
    )
    expect(page.get_by_label("Label 1 key")).to_have_value("site")  # what was typed is kept
    shot(page, "sim-edit-refused")
    page.get_by_label("Data daily threshold").fill("12000")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.locator("#labels")).to_contain_text("site")
    expect(page.locator("#labels")).to_contain_text("ghent")
    expect(page.locator("#service-data")).to_contain_text("12,000")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    for part in ("#labels", "#custom-fields", "#service-data", "#service-voice", "#access-points"):
        assert_on_screen(page, page.locator(part))
    assert_on_screen(page, page.locator("#access-points dd", has_text="Fleet tracking APN"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "sim-profile-phone")
    page.get_by_role("link", name="Edit", exact=True).click()
    assert_on_screen(page, page.get_by_label("Label 1 value"))
    assert_on_screen(page, page.get_by_role("button", name="Save"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "sim-edit-phone")
    assert refused == []


def test_a_deactivation_shows_on_the_events_page_and_filters_find_it(
    page: Page, engine: Engine, clock: ManualClock
) -> None:
    """A real deactivation from the SIM's page: its state change and its request's completion
    are on the Events page, newest first, each opening to its envelope; the type and SIM filters
    keep what they select; another account's events (for a SIM number of its own) never show."""
    other = make_tenant(engine, clock, "Neighbour")
    add_sim(engine, clock, other.account_id, "32499000077")
    with write_transaction(engine) as conn:
        sim = event_store.sim_numbered(conn, other.account_id, "32499000077")
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    other.account_id,
                    "sim.updated",
                    1,
                    clock.now(),
                    {"fields": ["CostCenter"], "changes": {}},
                    sim_id=sim,
                    sim=event_store.sim_snapshot("8932019999499000077", "32499000077", {}),
                )
            ],
        )
    log_in(page)
    go_to(page, "SIM cards")
    page.get_by_label("MSISDN, ICCID or IMSI").fill("32470000003")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="32470000003").click()
    page.get_by_role("button", name="Deactivation").click()
    expect(page.locator("#request-status")).to_contain_text("Finished")

    go_to(page, "Events")
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("request.completed")
    expect(rows.nth(1)).to_contain_text("sim.state_changed")
    expect(rows.nth(1)).to_contain_text("Active -> Deactivated (deactivation)")
    envelope = rows.nth(1).locator("pre.envelope")
    expect(envelope).to_be_hidden()
    rows.nth(1).locator("summary").click()
    expect(envelope).to_be_visible()
    expect(envelope).to_contain_text('"MSISDN": "32470000003"')
    expect(envelope).to_contain_text('"to": "Deactivated"')
    shot(page, "events")
    expect(page.get_by_text("32499000077")).to_have_count(0)

    page.get_by_label("Type").select_option("sim.state_changed")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("32470000003")
    page.get_by_label("Type").select_option("")
    page.get_by_label("SIM (ICCID or MSISDN)").fill("32470000004")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_text(["No event matches."])
    page.get_by_label("SIM (ICCID or MSISDN)").fill("32499000077")  # the neighbour's SIM
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_text(["No event matches."])
    page.get_by_label("SIM (ICCID or MSISDN)").fill("32470000003")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "events-phone")


def test_subscribe_a_url_to_events_beside_the_callback_then_pause_it(page: Page) -> None:
    """From the Callback page: subscribe a URL to sim.* (the secret shown once), open the
    subscription's page, pause it; the form refuses an unknown label filter first."""
    log_in(page)
    go_to(page, "Callback")
    expect(page.get_by_role("heading", name="Event subscriptions")).to_be_visible()
    page.get_by_role("link", name="Subscribe a URL to events").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/events")
    page.get_by_label("* (every type)").uncheck()
    page.get_by_label("sim.*", exact=True).check()
    page.get_by_label("Only SIMs with the label (optional)").fill("site")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("key=value")
    expect(page.get_by_label("URL")).to_have_value("http://127.0.0.1:9/events")
    page.get_by_label("Only SIMs with the label (optional)").fill("site=ghent")
    page.get_by_role("button", name="Subscribe").click()

    expect(page.get_by_text("will not be shown again")).to_be_visible()
    secret = page.locator("code.secret").nth(1).inner_text()
    assert secret.startswith("whsec_")
    shot(page, "subscription-shown-once")
    page.get_by_role("link", name="Done").click()
    expect(page.locator("#subscription-status")).to_have_text("enabled")
    expect(page.get_by_text("site=ghent")).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#subscription-status")).to_have_text("paused")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    shot(page, "subscription")
    assert page.get_by_text(secret).count() == 0
    go_to(page, "Callback")
    expect(page.locator("table.subscriptions tbody tr")).to_have_count(1)
    expect(page.locator("table.subscriptions")).to_contain_text("paused")


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui [data-path='/m2m/1.0.0/simcards']"),
        ("/redoc", "[role=menuitem] >> text='SIM cards'"),
    ],
)
def test_the_api_docs_work_with_the_network_cut_off(page: Page, path: str, rendered: str) -> None:
    """Behind a firewall: every request to another host fails, as it would without Internet
    access. The page renders the API from what this server serves, asks nothing elsewhere,
    and its Content-Security-Policy refuses nothing it loads."""
    elsewhere: list[str] = []
    problems: list[str] = []

    def cut_off(route: Any) -> None:
        host = httpx.URL(route.request.url).host
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.context.route("**/*", cut_off)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
    page.goto(path)
    expect(page.locator(rendered).first).to_be_visible()
    expect(page.get_by_text("M2M API").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, f"api-docs-{path.strip('/')}-offline")
    assert elsewhere == []
    assert problems == []


def test_the_sim_list_filters_by_a_label(page: Page) -> None:
    """A label given to one SIM on its page finds that SIM, and only it, in the SIM list (as
    key=value and as the key alone); the filter survives paging; a malformed one is refused
    next to the form."""
    log_in(page)
    go_to(page, "SIM cards")
    page.get_by_label("MSISDN, ICCID or IMSI").fill("32470000003")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="32470000003").click()
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Label 1 key").fill("depot")
    page.get_by_label("Label 1 value").fill("antwerp")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")

    go_to(page, "SIM cards")
    rows = page.locator("table tbody tr")
    expect(rows).not_to_have_count(1)  # the whole sandbox fleet first
    for text in ("depot=antwerp", "depot"):
        page.get_by_label("Label", exact=True).fill(text)
        page.get_by_role("button", name="Search").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("32470000003")
        expect(page.get_by_label("Label", exact=True)).to_have_value(text)
    shot(page, "sims-label-filter")
    page.get_by_label("Label", exact=True).fill("depot=ghent")
    page.get_by_role("button", name="Search").click()
    expect(rows.filter(has_text="32470000003")).to_have_count(0)
    page.get_by_label("Label", exact=True).fill("=antwerp")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Filter by a label as key=value")).to_be_visible()


def test_the_overview_shows_the_accounts_usage_and_its_largest_users_on_a_phone_too(
    page: Page, engine: Engine, clock: ManualClock
) -> None:
    """Twelve SIMs used data today (the twelfth the most): the overview charts the account's 30
    days, and lists ten of them, the largest first, each a link to the SIM's page. Nothing on it
    is refused by the CSP, and it fits a phone's width."""
    refused: list[str] = []  # a CSP violation is reported as "Refused to …" in the console

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error" and message.text.startswith("Refused"):
            refused.append(message.text)

    page.on("console", keep)
    used = clock.now() - timedelta(minutes=5)
    records = [
        UsageRecord(demo_iccid(n), None, used, None, Totals(data_down_bytes=n * 45_000_000))
        for n in range(1, 13)
    ]
    with write_transaction(engine) as conn:
        assert usage_ingest.ingest(conn, "browser-overview", records, clock.now()).counted == 12
    log_in(page)
    expect(page.locator("svg.chart.data-days")).to_be_visible()
    expect(page.locator("#usage-30-days")).to_have_text("3.51 GB")  # 45 MB times 1 + 2 + … + 12
    rows = page.locator("table.consumers tbody tr")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("540 MB")
    expect(rows.first).to_contain_text("32470000012")
    shot(page, "overview-usage")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(rows).to_have_count(10)
    assert_on_screen(page, page.locator("table.consumers th", has_text="Used"))
    assert_on_screen(page, page.locator("svg.chart.data-days"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "overview-usage-phone")
    rows.first.get_by_role("link", name=demo_iccid(12)).click()
    expect(page.get_by_role("heading", name="SIM 32470000012")).to_be_visible()
    assert refused == []
