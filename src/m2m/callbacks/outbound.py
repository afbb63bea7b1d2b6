"""Outbound callback requests that cannot reach internal addresses.

Customers choose the URLs the server POSTs callbacks to. Unguarded, a customer could aim one at the
server's own network: the cloud metadata service on 169.254.169.254, an admin port on 127.0.0.1, a
database on 10.x (server-side request forgery). Four measures close that, all applied by
``callbacks.poster.CallbackPoster``, the only client that sends callbacks:

- **Host names are judged after resolution**, by ``GuardedResolver``. The poster connects only to
  the addresses this resolver returns, so the address judged is the address connected to: a DNS
  answer that changes between a check and the connection (DNS rebinding) has nothing to slip
  through.
- **IP-literal hosts are judged by** ``check_url``, because no resolver is asked about them.
  Every notation the OS or a browser accepts is recognised (``2130706433``, ``0x7f.1``,
  ``[::ffff:127.0.0.1]`` ...): judging only the dotted form would let the others through.
- **Redirects are never followed**: a public server could redirect to an internal one, and the
  redirect's target would be contacted with our request.
- **No proxy from the environment**: a proxy resolves and connects on our behalf, past the resolver.
"""

from __future__ import annotations

import functools
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import TYPE_CHECKING, Self
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

if TYPE_CHECKING:
    from m2m.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class ForbiddenTarget(Exception):
    """A callback target that may not be contacted; the message says which address and why."""


class InvalidCallbackUrl(ValueError):
    """A callback URL that is not an acceptable absolute http(s) URL."""


# What is refused besides loopback (which ``allow_loopback`` opens), first match naming the reason.
# ``is_global`` (the IANA special-purpose registries, as known to the running Python) stays the
# backstop after these tables; the tables give precise reasons and add what ``is_global`` misses
# or has missed in some Python release (marked "is_global misses").
_IPV4_REFUSED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(network), reason)
    for network, reason in (
        # Connecting to 0.0.0.0 reaches the local host on Linux.
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata services live here)"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a deprecated 6to4 relay anycast address"),  # is_global misses
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),  # is_global misses (224.0.1.0 and up)
        ("240.0.0.0/4", "a reserved address"),  # includes the broadcast 255.255.255.255
    )
)

_IPV6_REFUSED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(network), reason)
    for network, reason in (
        ("::/128", "an unspecified address"),
        # ::a.b.c.d (deprecated, RFC 4291): some stacks still tunnel it to the IPv4 address.
        ("::/96", "a deprecated IPv4-compatible address"),  # is_global misses
        ("64:ff9b:1::/48", "a local-use NAT64 address"),  # is_global misses before Python 3.12
        ("100::/64", "a discard-only address"),
        # Teredo and 6to4 embed IPv4 addresses that relays forward to; deprecated, and no
        # callback server needs them.
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:db8::/32", "a documentation address"),
        ("2002::/16", "a 6to4 tunnel address"),  # is_global misses before Python 3.12
        ("3fff::/20", "a documentation address"),  # is_global misses (RFC 9637, 2024)
        ("5f00::/16", "an SRv6 segment identifier"),  # is_global misses
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a deprecated site-local address"),  # is_global misses
        ("ff00::/8", "a multicast address"),  # is_global misses (global-scope multicast)
    )
)

# RFC 6052's well-known NAT64 prefix: a translator forwards 64:ff9b::a.b.c.d to a.b.c.d, so the
# embedded IPv4 address is what is contacted (is_global calls all of it global).
_NAT64 = IPv6Network("64:ff9b::/96")
# Everything outside 2000::/3 is unassigned or special-purpose: no public unicast there.
_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")


def _not_public(address: IPAddress) -> str | None:
    """Why ``address`` (not loopback, not IPv4-mapped) is not a public unicast address, or None."""
    if isinstance(address, IPv4Address):
        for network4, reason in _IPV4_REFUSED:
            if address in network4:
                return reason
    else:
        if address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFF_FFFF)
            if embedded.is_loopback:
                return f"a NAT64 address of {embedded}, a loopback address"
            inner = _not_public(embedded)
            return None if inner is None else f"a NAT64 address of {embedded}, {inner}"
        for network6, reason in _IPV6_REFUSED:
            if address in network6:
                return reason
        if address not in _IPV6_GLOBAL_UNICAST:
            return "outside the global unicast range 2000::/3"
    if not address.is_global:
        return "not a global address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses callbacks may reach: public unicast, plus what is opened explicitly.

    ``allow_loopback`` opens 127.0.0.0/8 and ::1 (tests, a local development receiver);
    ``allowed_networks`` opens exactly the listed networks (a receiver on a private network).
    """

    allow_loopback: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
        for network in self.allowed_networks:
            # Addresses are judged with IPv4-mapped ones turned into IPv4, so a mapped network
            # would silently never match.
            if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED):
                raise ValueError(f"write the IPv4-mapped network {network} as an IPv4 network")

    @classmethod
    def from_strings(cls, allow_loopback: bool, networks: Iterable[str]) -> Self:
        """Build a policy from configuration text; blank entries are skipped.

        Host bits must be zero (``10.0.0.1/8`` is refused): such an entry is most likely a typo,
        and guessing what it meant would open the wrong network.
        """
        parsed: list[IPNetwork] = []
        for entry in networks:
            text = entry.strip()
            if not text:
                continue
            try:
                parsed.append(ip_network(text))
            except ValueError as exc:
                raise ValueError(f"invalid allowed network {entry!r}: {exc}") from exc
        return cls(allow_loopback=allow_loopback, allowed_networks=tuple(parsed))

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Callbacks reach public addresses; loopback too in the sandbox; private networks only
        when listed in ``M2M_CALLBACK_ALLOWED_NETWORKS``."""
        return cls.from_strings(settings.sandbox, settings.callback_allowed_networks)

    def problem(self, address: IPAddress) -> str | None:
        """None if ``address`` may be contacted, else the reason ("127.0.0.1 is a loopback ...")."""
        shown = str(address)
        if isinstance(address, IPv6Address):
            if address.scope_id is not None:
                # The zone (fe80::1%eth0) picks an interface; it does not change the address class.
                address = IPv6Address(shown.partition("%")[0])
            if address.ipv4_mapped is not None:
                # A socket connecting to ::ffff:a.b.c.d talks IPv4 to a.b.c.d.
                shown = f"{shown} (IPv4-mapped {address.ipv4_mapped})"
                address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return None
        if address.is_loopback:
            if self.allow_loopback:
                return None
            reason: str | None = "a loopback address"
        else:
            reason = _not_public(address)
        return None if reason is None else f"{shown} is {reason}"

    def check(self, address: IPAddress) -> None:
        reason = self.problem(address)
        if reason is not None:
            raise ForbiddenTarget(reason)


# Full stops that IDNA mapping (UTS 46), as browsers apply it, turns into ".".
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if the URL host ``host`` is an IP literal in any accepted notation, else None.

    Besides dotted quads and IPv6 (bracketed or not, with or without a zone), the legacy IPv4
    notations that ``inet_aton`` -- and so the OS resolver -- and browsers accept: one to four
    parts, each decimal, octal (``0177``) or hex (``0x7f``), the last filling the remaining bytes
    (``2130706433``, ``127.1``, ``0x7f.1``). Browsers also percent-decode and IDNA-map the host and
    ignore one trailing dot, so that is done too.
    """
    text = unicodedata.normalize("NFKC", unquote(host)).translate(_DOTS).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ip_address(text)
        except ValueError:
            return None
    text = text.removesuffix(".")
    # inet_aton stops at whitespace and ignores the rest ("127.0.0.1 x"); no resolver or browser
    # takes that for an address, so only the characters of the numeric notations are accepted.
    if not text or not all(char.isascii() and (char.isalnum() or char == ".") for char in text):
        return None
    try:
        return IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _redacted(url: URL) -> str:
    """The URL for an error message, without the credentials it may carry."""
    if url.raw_user is None and url.raw_password is None:
        return str(url)
    return str(url.with_user(None)) if url.absolute else "<a URL with credentials>"


def check_parsed_url(url: URL, policy: AddressPolicy, *, require_https: bool) -> None:
    _check_url_once(url, policy, require_https)


@functools.lru_cache(maxsize=8192)
def _check_url_once(url: URL, policy: AddressPolicy, require_https: bool) -> None:
    """The check is pure (DNS is judged later, by the resolver), and a callback URL is checked
    for every message sent to it: a URL that passed once is not parsed again. (Refusals raise,
    so they are never cached.)"""
    if not url.absolute or not url.raw_host:
        raise InvalidCallbackUrl(f"{_redacted(url)!r} is not an absolute URL")
    schemes = ("https",) if require_https else ("http", "https")
    if url.scheme not in schemes:
        raise InvalidCallbackUrl(f"{_redacted(url)!r}: the scheme must be {' or '.join(schemes)}")
    if url.raw_user is not None or url.raw_password is not None:
        # Credentials in the URL would be sent as Basic auth and end up in logs.
        raise InvalidCallbackUrl(f"{_redacted(url)!r}: the URL must not contain credentials")
    # raw_host is what the poster connects to; parse_ip_literal percent-decodes it as browsers do.
    address = parse_ip_literal(url.raw_host)
    if address is None:
        if ":" in url.raw_host:  # bracketed, so meant as an IPv6 address, but not one
            raise InvalidCallbackUrl(f"[{url.raw_host}] is not a valid IPv6 address")
        try:
            # What name resolution will do with it: empty or over-long labels fail here.
            url.raw_host.encode("idna")
        except UnicodeError as exc:
            raise InvalidCallbackUrl(f"{url.raw_host!r} is not a valid host name") from exc
        return
    reason = policy.problem(address)
    if reason is not None:
        written = "" if url.raw_host == str(address) else f" (the host {url.raw_host!r})"
        raise ForbiddenTarget(f"{reason}{written}")


def check_url(url: str, policy: AddressPolicy, *, require_https: bool) -> None:
    """Refuse a callback URL that must not be requested, before anything is sent.

    Raises ``InvalidCallbackUrl`` for a URL that is not absolute, whose scheme is not https (or
    http, unless ``require_https``) or that carries credentials, and ``ForbiddenTarget`` for an
    IP-literal host the policy refuses. Host names pass: they are judged after resolution, by
    ``GuardedResolver``. The URL is parsed with yarl, as the poster parses it, so both see one
    host.
    """
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise InvalidCallbackUrl(f"not a valid URL: {exc}") from exc
    check_parsed_url(parsed, policy, require_https=require_https)


class GuardedResolver(AbstractResolver):
    """aiohttp's threaded (OS ``getaddrinfo``) resolver, returning only the allowed addresses.

    A name with no allowed address raises ``ForbiddenTarget``, so nothing is sent; a DNS failure
    propagates as it is (an ``OSError``, which the poster reports as ``CannotConnect``).
    Must be created inside a running event loop (``ThreadedResolver`` binds to it).
    """

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver if resolver is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if not results:
            # An error, not an empty list, for a name without addresses.
            raise OSError(f"{host} resolved to no address")
        allowed: list[ResolveResult] = []
        problems: dict[str, None] = {}  # ordered and without duplicates
        for result in results:
            try:
                reason = self.policy.problem(ip_address(result["host"]))
            except ValueError:
                reason = f"{result['host']!r} is not an IP address"
            if reason is None:
                allowed.append(result)
            else:
                problems[reason] = None
        if not allowed:
            raise ForbiddenTarget(
                f"{host} resolves only to refused addresses: {'; '.join(problems)}"
            )
        return allowed

    async def close(self) -> None:
        await self._resolver.close()
