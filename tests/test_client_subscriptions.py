"""Event subscriptions from the SDK (sync and async) and from ``m2m events subscribe``,
``subscriptions``, ``replay`` and ``unsubscribe``, against the real server on loopback (its
worker running) and a real receiver."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.client import AsyncM2MClient, EventVerifier, M2MClient, NotFoundError
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from tests.support.receiver import Receiver
from tests.support.waiting import wait_for

# The sandbox's SIMs 1-50 are Active.
ACTIVE = [str(32470000000 + n) for n in range(1, 6)]


@pytest.fixture
def m2m(sandbox_server: str) -> Iterator[M2MClient]:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        yield client


def test_the_sdk_subscribes_verifies_replays_and_unsubscribes(
    m2m: M2MClient, receiver: Receiver
) -> None:
    made = m2m.subscribe(receiver.url, ["sim.*"], headers={"x-env": "ci"})
    assert made.secret is not None
    since = made.created_at  # the server's clock (the test's app runs a manual one)
    m2m.deactivate(ACTIVE[:1], callback_token="t")
    wait_for(lambda: receiver.count() == 1, 30, "the subscription's event")
    verifier = EventVerifier(signing_secret=made.secret)
    [sent] = receiver.received
    event = verifier.verify(sent.body, sent.headers)
    assert event.type == "sim.state_changed"
    assert event.sim is not None
    assert event.sim.msisdn == ACTIVE[0]

    [listed] = m2m.event_subscriptions()
    assert listed.id == made.id
    assert listed.secret is None
    assert listed.headers == {"x-env": "****"}
    paused = m2m.update_event_subscription(made.id, {"status": "paused"})
    assert paused.status == "paused"
    m2m.update_event_subscription(made.id, {"status": "enabled"})

    m2m.replay_subscription(made.id, since)
    wait_for(
        lambda: receiver.count() == 2,
        30,
        lambda: (
            f"the replayed event: {receiver.count()} received, {m2m.event_subscription(made.id)}"
        ),
    )
    again = receiver.received[1]
    assert verifier.verify(again.body, again.headers).id == event.id

    rotated = m2m.rotate_subscription_secret(made.id)
    assert rotated.secret not in (None, made.secret)
    m2m.unsubscribe(made.id)
    assert m2m.event_subscriptions() == []
    with pytest.raises(NotFoundError):
        m2m.event_subscription(made.id)


def test_the_async_sdk_lists_what_it_subscribed(sandbox_server: str, receiver: Receiver) -> None:
    async def run() -> tuple[str, list[str]]:
        async with AsyncM2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
            made = await client.subscribe(receiver.url, ["request.completed"], paused=True)
            return made.id, [s.id for s in await client.event_subscriptions()]

    made, listed = asyncio.run(run())
    assert listed == [made]


def _cli(sandbox_server: str, xdg: Path, *args: str) -> Result:
    env = {
        "M2M_BASE_URL": sandbox_server,
        "M2M_CLIENT_ID": CLIENT_ID,
        "M2M_CLIENT_SECRET": CLIENT_SECRET,
        "M2M_API_KEY": API_KEY,
        "XDG_CONFIG_HOME": str(xdg),
    }
    result = CliRunner().invoke(app, ["events", *args], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_the_cli_subscribes_lists_replays_and_unsubscribes(
    sandbox_server: str, tmp_path: Path, receiver: Receiver
) -> None:
    made = _cli(
        sandbox_server,
        tmp_path,
        "subscribe",
        receiver.url,
        "--type",
        "sim.*",
        "--label",
        "site=gent",
        "--header",
        "x-env=ci",
    )
    found = re.search(r"Subscription (sub_[0-9a-f]+)", made.stdout)
    assert found is not None
    subscription_id = found.group(1)
    assert re.search(r"Signing secret \(shown only now\): whsec_\S+", made.stdout)

    listed = _cli(sandbox_server, tmp_path, "subscriptions")
    assert subscription_id in listed.stdout
    assert "site=gent" in listed.stdout
    replayed = _cli(
        sandbox_server, tmp_path, "replay", subscription_id, "--since", "2026-01-01T00:00:00Z"
    )
    assert subscription_id in replayed.stdout
    _cli(sandbox_server, tmp_path, "unsubscribe", subscription_id)
    assert subscription_id not in _cli(sandbox_server, tmp_path, "subscriptions").stdout
