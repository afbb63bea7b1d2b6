"""Outbound callbacks cannot reach internal addresses, whatever the URL's notation.

The address table runs every vector through ``check_url`` in each notation an OS resolver or a
browser accepts; the live tests send real requests to a real aiohttp server on 127.0.0.1 and look
at what it received. Coroutines run under ``asyncio.run`` (no pytest plugin needed).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import NamedTuple

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from m2m.callbacks.outbound import (
    AddressPolicy,
    ForbiddenTarget,
    GuardedResolver,
    InvalidCallbackUrl,
    check_url,
    parse_ip_literal,
)
from m2m.callbacks.poster import CallbackPoster, CannotConnect

DEFAULT = AddressPolicy()
LOOPBACK = AddressPolicy(allow_loopback=True)
# Opens exactly one private network; 10.0.x and 10.2.x are its neighbours.
ALLOW_LIST = AddressPolicy.from_strings(False, ["10.1.0.0/16"])
POLICIES = {"default": DEFAULT, "allow_loopback": LOOPBACK, "allow_list": ALLOW_LIST}


class Vector(NamedTuple):
    address: str
    default: bool  # allowed under DEFAULT
    allow_loopback: bool  # allowed under LOOPBACK
    allow_list: bool  # allowed under ALLOW_LIST

    def expected(self, policy_name: str) -> bool:
        return bool(getattr(self, policy_name))


def refused(address: str) -> Vector:
    return Vector(address, False, False, False)


def public(address: str) -> Vector:
    return Vector(address, True, True, True)


IPV4_VECTORS = [
    Vector("127.0.0.1", False, True, False),
    Vector("127.255.255.254", False, True, False),
    Vector("10.1.2.3", False, False, True),
    Vector("10.1.255.255", False, False, True),
    refused("10.0.255.255"),  # just below the opened network
    refused("10.2.0.1"),  # just above it
    refused("172.16.0.1"),
    refused("172.31.255.254"),
    refused("192.168.1.1"),
    refused("169.254.169.254"),  # cloud metadata
    refused("169.254.0.1"),
    refused("0.0.0.0"),
    refused("0.1.2.3"),
    refused("100.64.0.1"),  # shared address space
    refused("100.127.255.254"),
    refused("198.18.0.1"),  # benchmarking
    refused("198.19.255.254"),
    refused("192.0.2.1"),  # documentation
    refused("198.51.100.7"),
    refused("203.0.113.9"),
    refused("192.0.0.8"),  # IETF protocol assignments
    refused("192.88.99.1"),  # 6to4 relay anycast
    refused("224.0.0.1"),  # multicast
    refused("224.0.1.1"),
    refused("239.255.255.250"),
    refused("240.0.0.1"),  # reserved
    refused("255.255.255.255"),
    public("8.8.8.8"),
    public("1.1.1.1"),
    public("93.184.215.14"),
    public("172.15.255.254"),  # just outside 172.16/12
    public("172.32.0.1"),
    public("100.63.255.254"),  # just outside 100.64/10
    public("100.128.0.1"),
    public("11.0.0.1"),
]

IPV6_VECTORS = [
    Vector("::1", False, True, False),
    refused("::"),
    refused("fe80::1"),
    refused("fc00::1"),
    refused("fd12:3456::1"),
    refused("fec0::1"),  # site-local
    refused("ff02::1"),  # multicast
    refused("ff0e::1"),  # global-scope multicast
    refused("2001:db8::1"),  # documentation
    refused("3fff::1"),
    refused("2001:2::1"),  # benchmarking
    refused("100::1"),  # discard-only
    refused("::7f00:1"),  # IPv4-compatible ::127.0.0.1
    refused("::808:808"),  # IPv4-compatible ::8.8.8.8 (deprecated, refused)
    refused("2002:7f00:1::1"),  # 6to4 of 127.0.0.1
    refused("2002:808:808::1"),  # 6to4 of 8.8.8.8
    refused("2001:0:4136:e378:8000:63bf:3fff:fdd2"),  # Teredo
    refused("64:ff9b:1::a00:1"),  # local-use NAT64
    refused("5f00::1"),  # SRv6
    refused("4000::1"),  # outside 2000::/3
    refused("64:ff9b::7f00:1"),  # NAT64 of 127.0.0.1: not loopback, even with allow_loopback
    refused("64:ff9b::a01:203"),  # NAT64 of 10.1.2.3: not opened by the IPv4 allow-list
    refused("64:ff9b::a9fe:a9fe"),  # NAT64 of 169.254.169.254
    public("64:ff9b::808:808"),  # NAT64 of 8.8.8.8
    public("2606:4700:4700::1111"),
    public("2a00:1450:4001:81b::200e"),
]


def ipv4_notations(dotted: str) -> list[str]:
    """URL hosts that all mean ``dotted`` to inet_aton or a browser (the IPv4 notations)."""
    a, b, c, d = (int(part) for part in dotted.split("."))
    number = int(IPv4Address(dotted))
    return [
        dotted,
        str(number),  # decimal: 2130706433
        ".".join(f"0{part:o}" for part in (a, b, c, d)),  # octal: 0177.00.00.01
        ".".join(hex(part) for part in (a, b, c, d)),  # hex parts: 0x7f.0x0.0x0.0x1
        hex(number),  # hex: 0x7f000001
        f"{a}.{b}.{(c << 8) | d}",  # short: 127.0.1
        f"{a}.{(b << 16) | (c << 8) | d}",  # short: 127.1
        f"{hex(a)}.{(b << 16) | (c << 8) | d}",  # mixed: 0x7f.1
        f"0{a:o}.{hex(b)}.{(c << 8) | d}",  # mixed: 0177.0x0.1
        f"{dotted}.",  # trailing dot (browsers)
        "".join(f"%{ord(char):02x}" for char in dotted),  # percent-encoded (browsers)
    ]


def ipv4_in_ipv6_notations(dotted: str) -> list[str]:
    """Bracketed IPv4-mapped IPv6 hosts for ``dotted``: the same address to a dual-stack socket."""
    mapped = IPv6Address(f"::ffff:{dotted}")
    return [f"[::ffff:{dotted}]", f"[{mapped.compressed}]", f"[{mapped.exploded}]"]


def ipv6_notations(address: str) -> list[str]:
    parsed = IPv6Address(address)
    return [f"[{parsed.compressed}]", f"[{parsed.exploded}]", f"[{parsed.exploded.upper()}]"]


def allowed(host: str, policy: AddressPolicy) -> bool:
    try:
        check_url(f"http://{host}:8080/callback", policy, require_https=False)
    except ForbiddenTarget:
        return False
    return True


def mismatches(vector: Vector, hosts: list[str], expected_address: object) -> list[str]:
    wrong: list[str] = []
    for host in hosts:
        parsed = parse_ip_literal(host)
        if parsed is None or (
            parsed != expected_address and getattr(parsed, "ipv4_mapped", None) != expected_address
        ):
            wrong.append(f"{host}: parsed as {parsed}")
            continue
        for name, policy in POLICIES.items():
            if allowed(host, policy) != vector.expected(name):
                wrong.append(f"{host} under {name}: expected allowed={vector.expected(name)}")
    return wrong


@pytest.mark.parametrize("vector", IPV4_VECTORS, ids=lambda v: v.address)
def test_ipv4_vectors_in_every_notation(vector: Vector) -> None:
    address = IPv4Address(vector.address)
    hosts = ipv4_notations(vector.address) + ipv4_in_ipv6_notations(vector.address)
    assert mismatches(vector, hosts, address) == []


@pytest.mark.parametrize("vector", IPV4_VECTORS, ids=lambda v: v.address)
def test_ipv4_legacy_notations_mean_the_same_to_the_os(vector: Vector) -> None:
    packed = IPv4Address(vector.address).packed
    for host in ipv4_notations(vector.address)[:9]:  # the inet_aton notations
        assert socket.inet_aton(host) == packed, host


@pytest.mark.parametrize("vector", IPV4_VECTORS, ids=lambda v: v.address)
def test_nat64_is_judged_by_the_embedded_ipv4_address(vector: Vector) -> None:
    # A NAT64 translator forwards to the embedded address; it is never loopback nor allow-listed.
    nat64 = IPv6Address(int(IPv6Address("64:ff9b::")) | int(IPv4Address(vector.address)))
    nat64_vector = Vector(str(nat64), vector.default, vector.default, vector.default)
    hosts = [f"[64:ff9b::{vector.address}]", f"[{nat64.compressed}]"]
    assert mismatches(nat64_vector, hosts, nat64) == []


@pytest.mark.parametrize("vector", IPV6_VECTORS, ids=lambda v: v.address)
def test_ipv6_vectors(vector: Vector) -> None:
    address = IPv6Address(vector.address)
    assert mismatches(vector, ipv6_notations(vector.address), address) == []


def test_ipv6_allow_list_opens_exactly_its_network() -> None:
    policy = AddressPolicy.from_strings(False, [" fd00:1::/32 ", ""])
    assert policy.problem(IPv6Address("fd00:1::5")) is None
    assert policy.problem(IPv6Address("fd00:1:ffff::5")) is None
    assert policy.problem(IPv6Address("fd00:2::5")) == "fd00:2::5 is a unique-local address"
    assert policy.problem(IPv6Address("fd00::5")) is not None
    assert policy.problem(IPv6Address("::1")) == "::1 is a loopback address"


def test_scoped_ipv6_literals_are_judged_by_the_address() -> None:
    assert not allowed("[fe80::1%25eth0]", LOOPBACK)
    assert parse_ip_literal("fe80::1%eth0") == ip_address("fe80::1%eth0")


def test_reasons_name_the_address() -> None:
    assert DEFAULT.problem(IPv4Address("127.0.0.1")) == "127.0.0.1 is a loopback address"
    assert DEFAULT.problem(IPv4Address("169.254.169.254")) == (
        "169.254.169.254 is a link-local address (cloud metadata services live here)"
    )
    assert DEFAULT.problem(IPv6Address("::ffff:10.0.0.1")) == (
        "::ffff:a00:1 (IPv4-mapped 10.0.0.1) is a private address"
    )
    assert DEFAULT.problem(IPv6Address("64:ff9b::7f00:1")) == (
        "64:ff9b::7f00:1 is a NAT64 address of 127.0.0.1, a loopback address"
    )
    with pytest.raises(ForbiddenTarget, match=r"^10\.0\.0\.1 is a private address$"):
        DEFAULT.check(IPv4Address("10.0.0.1"))
    with pytest.raises(ForbiddenTarget, match=r"127\.0\.0\.1 is a loopback .*'2130706433'"):
        check_url("https://2130706433/callback", DEFAULT, require_https=True)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "127.0.0.1.nip.io",
        "0x",
        "08.0.0.1",  # not octal: a name to the resolver
        "1.2.3.4.5",
        "4294967296",  # beyond 32 bits
        "127.0.0.1 x",  # inet_aton would stop at the space; resolvers and browsers do not
        "[not-an-address]",
    ],
)
def test_names_are_not_ip_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


def test_public_literals_and_names_pass_check_url() -> None:
    for url in ["https://8.8.8.8/cb", "https://[2606:4700:4700::1111]:8443/cb", "https://x.com/"]:
        check_url(url, DEFAULT, require_https=True)
    check_url("http://example.com/cb?x=1", DEFAULT, require_https=False)


@pytest.mark.parametrize(
    "url",
    [
        "/callback",
        "callback",
        "example.com/callback",
        "//example.com/callback",
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http:///callback",
        "https://user:secret@example.com/",
        "https://user@example.com/",
        "ftp://user:secret@example.com/",
        "//user:secret@example.com/",
        "https://[::1/",
        "http://example.com/",  # plain http while https is required
    ],
)
def test_invalid_callback_urls(url: str) -> None:
    with pytest.raises(InvalidCallbackUrl) as caught:
        check_url(url, LOOPBACK, require_https=True)
    assert "secret" not in str(caught.value)


def test_allowed_networks_from_strings() -> None:
    policy = AddressPolicy.from_strings(True, ["10.1.0.0/16", " 192.168.7.0/24", "", "fd00::/8"])
    assert policy.allow_loopback
    assert [str(network) for network in policy.allowed_networks] == [
        "10.1.0.0/16",
        "192.168.7.0/24",
        "fd00::/8",
    ]
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8'"):
        AddressPolicy.from_strings(False, ["10.1.0.0/16", "10.0.0.300/8"])
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1/8'.*host bits"):
        AddressPolicy.from_strings(False, ["10.0.0.1/8"])
    with pytest.raises(ValueError, match="IPv4-mapped"):
        AddressPolicy.from_strings(False, ["::ffff:10.0.0.0/104"])


# --- resolver ---------------------------------------------------------------------------------


class StaticResolver(AbstractResolver):
    """Answers every name with fixed addresses: a name that resolves to public and private."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


def test_resolver_refuses_names_of_loopback() -> None:
    async def scenario() -> None:
        with pytest.raises(ForbiddenTarget, match="localhost resolves only to refused addresses"):
            await GuardedResolver(DEFAULT).resolve("localhost", 80, socket.AF_UNSPEC)
        # getaddrinfo reads the hex notation as 127.0.0.1; aiohttp hands it to the resolver.
        with pytest.raises(ForbiddenTarget, match=r"127\.0\.0\.1 is a loopback address"):
            await GuardedResolver(DEFAULT).resolve("0x7f.1", 80, socket.AF_UNSPEC)
        results = await GuardedResolver(LOOPBACK).resolve("localhost", 80, socket.AF_UNSPEC)
        assert results
        assert all(ip_address(result["host"]).is_loopback for result in results)

    asyncio.run(scenario())


def test_resolver_drops_refused_addresses_and_keeps_the_rest() -> None:
    async def scenario() -> None:
        inner = StaticResolver("10.0.0.1", "93.184.215.14", "::1", "2606:4700:4700::1111")
        results = await GuardedResolver(DEFAULT, inner).resolve("mixed.example", 443)
        assert [result["host"] for result in results] == ["93.184.215.14", "2606:4700:4700::1111"]
        only_internal = GuardedResolver(DEFAULT, StaticResolver("10.0.0.1", "169.254.169.254"))
        with pytest.raises(ForbiddenTarget, match=r"10\.0\.0\.1 is a private address; 169"):
            await only_internal.resolve("internal.example", 443)

    asyncio.run(scenario())


def test_resolver_lets_dns_failures_through() -> None:
    async def scenario() -> None:
        with pytest.raises(socket.gaierror):
            await GuardedResolver(DEFAULT).resolve("does-not-exist.invalid", 80)

    asyncio.run(scenario())


# --- real requests ----------------------------------------------------------------------------


@dataclass
class Receiver:
    """A callback receiver on 127.0.0.1, recording (path, body, content type) of each request."""

    port: int
    received: list[tuple[str, bytes, str]] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for path, _, _ in self.received]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    received: list[tuple[str, bytes, str]] = []
    release = asyncio.Event()

    async def record(request: web.Request) -> None:
        received.append((request.path, await request.read(), request.content_type))

    async def callback(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=204)

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=302, headers={"Location": "/target"})

    async def target(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=200)

    async def slow(request: web.Request) -> web.StreamResponse:
        await record(request)
        await asyncio.wait_for(release.wait(), timeout=10)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/cb", callback)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_route("*", "/target", target)
    app.router.add_route("*", "/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state = Receiver(port=runner.addresses[0][1], received=received)
        yield state
    finally:
        release.set()
        await runner.cleanup()


def http_poster(policy: AddressPolicy, timeout_seconds: float) -> CallbackPoster:
    """The test receiver speaks plain http."""
    return CallbackPoster(policy, timeout_seconds=timeout_seconds, require_https=False)


BODY = b'{"event":"sim.activated","iccid":"8988247000000000001"}'


def test_loopback_is_refused_without_allow_loopback_and_nothing_is_sent() -> None:
    async def scenario() -> None:
        async with receiver() as server, http_poster(DEFAULT, 5) as poster:
            for host in ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"]:
                with pytest.raises(ForbiddenTarget, match="loopback"):
                    await poster.post(server.url("/cb", host), BODY, {})
            assert server.received == []

    asyncio.run(scenario())


def test_loopback_is_delivered_with_allow_loopback() -> None:
    async def scenario() -> None:
        async with receiver() as server, http_poster(LOOPBACK, 5) as poster:
            started = time.perf_counter()
            headers = {"Content-Type": "application/json", "X-Sig": "s"}
            status, latency = await poster.post(server.url("/cb"), BODY, headers)
            assert status == 204
            assert 0 < latency <= time.perf_counter() - started
            assert server.received == [("/cb", BODY, "application/json")]

    asyncio.run(scenario())


def test_a_name_resolving_to_loopback_is_refused_without_allow_loopback() -> None:
    async def scenario() -> None:
        async with receiver() as server:
            async with http_poster(DEFAULT, 5) as poster:
                with pytest.raises(ForbiddenTarget, match="localhost resolves only to refused"):
                    await poster.post(server.url("/cb", "localhost"), BODY, {})
            assert server.received == []
            async with http_poster(LOOPBACK, 5) as poster:
                status, _ = await poster.post(server.url("/cb", "localhost"), BODY, {})
            assert status == 204
            assert server.paths == ["/cb"]

    asyncio.run(scenario())


def test_an_unresolvable_name_is_a_connection_error() -> None:
    async def scenario() -> None:
        async with receiver() as server, http_poster(LOOPBACK, 5) as poster:
            url = f"http://does-not-exist.invalid:{server.port}/cb"
            with pytest.raises(CannotConnect, match=r"cannot connect to does-not-exist\.invalid"):
                await poster.post(url, BODY, {})
            assert server.received == []

    asyncio.run(scenario())


def test_redirects_are_returned_not_followed() -> None:
    async def scenario() -> None:
        async with receiver() as server, http_poster(LOOPBACK, 5) as poster:
            status, _ = await poster.post(server.url("/redirect"), BODY, {})
            assert status == 302
            await asyncio.sleep(0.1)
            assert server.paths == ["/redirect"]

    asyncio.run(scenario())


def test_https_only_posters_refuse_plain_http() -> None:
    async def scenario() -> None:
        async with receiver() as server:
            policy = AddressPolicy(allow_loopback=True)
            async with CallbackPoster(policy, timeout_seconds=5, require_https=True) as poster:
                with pytest.raises(InvalidCallbackUrl, match="https"):
                    await poster.post(server.url("/cb"), BODY, {})
            assert server.received == []

    asyncio.run(scenario())


def test_requests_time_out() -> None:
    async def scenario() -> None:
        async with receiver() as server, http_poster(LOOPBACK, 0.3) as poster:
            started = time.perf_counter()
            with pytest.raises(TimeoutError):
                await poster.post(server.url("/slow"), BODY, {})
            assert time.perf_counter() - started < 5
            assert server.paths == ["/slow"]

    asyncio.run(scenario())
