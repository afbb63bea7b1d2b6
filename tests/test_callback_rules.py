"""The documented header whitelist, as properties."""

from __future__ import annotations

import re
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2m.callbacks.rules import (
    URL_PATTERN,
    CallbackConfigError,
    header_problem,
    masked,
    validate_headers,
)

token_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
names = st.text(token_chars, min_size=1, max_size=30)
safe_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=100)


@given(suffix=names, value=safe_values)
def test_x_headers_are_allowed(suffix: str, value: str) -> None:
    name = "x-" + suffix
    if name.lower() == "x-callback-token":
        return
    assert header_problem(name, value) is None
    assert header_problem(name.upper(), value) is None


@given(value=safe_values)
def test_authorization_is_allowed_in_any_case(value: str) -> None:
    for name in ("Authorization", "authorization", "AUTHORIZATION"):
        assert header_problem(name, value) is None


@given(name=names, value=safe_values)
def test_other_headers_are_refused(name: str, value: str) -> None:
    if name.lower().startswith("x-") or name.lower() == "authorization":
        return
    assert header_problem(name, value) is not None


@given(
    name=st.sampled_from(["x-test", "Authorization"]),
    before=safe_values,
    bad=st.sampled_from(["\r", "\n", "\0", "\r\n", "\x01", "\x1b", "\x7f"]),
    after=safe_values,
)
def test_values_with_cr_lf_nul_are_refused(name: str, before: str, bad: str, after: str) -> None:
    problem = header_problem(name, before + bad + after)
    assert problem is not None
    assert "control character" in problem


@pytest.mark.parametrize("name", ["x-callback-token", "X-Callback-Token"])
def test_callback_token_cannot_be_configured(name: str) -> None:
    assert "per request" in (header_problem(name, "v") or "")


@pytest.mark.parametrize("name", ["x test", "x-é", "", "x:y", "Host", "Content-Type", "Cookie"])
def test_invalid_or_reserved_names(name: str) -> None:
    assert header_problem(name, "v") is not None


def test_validate_and_mask() -> None:
    headers = {"Authorization": "Bearer abc", "x-test": "Another custom header"}
    assert validate_headers(headers) == headers
    assert masked(headers) == {"Authorization": "****", "x-test": "****"}
    assert validate_headers({"x-a": "1", "X-A": "2"}) == {"X-A": "2"}  # one header, last wins
    with pytest.raises(CallbackConfigError, match="only Authorization"):
        validate_headers({"x-a": "1", "Cookie": "2"})


@pytest.mark.parametrize("url", ["HTTP://.UX6t7V#01/s", "http://a..b/", "http://" + "a" * 64 + "/"])
def test_the_url_pattern_refuses_hosts_name_resolution_refuses(url: str) -> None:
    """Schemathesis found a schema-valid URL (an empty label) that the server then refused."""
    assert re.fullmatch(URL_PATTERN, url) is None


def test_the_url_pattern_accepts_ordinary_hosts() -> None:
    for url in [
        "https://example.com/cb",
        "http://127.0.0.1:9000/callback",
        "https://xn--bcher-kva.example./x?y=1",
        "https://[2606:4700:4700::1111]:8443/cb",
        "http://[::1]/",
    ]:
        assert re.fullmatch(URL_PATTERN, url), url


@given(st.ip_addresses(v=6))
def test_the_url_pattern_accepts_every_ipv6_address(address: IPv6Address) -> None:
    for written in (str(address), address.exploded):
        assert re.fullmatch(URL_PATTERN, f"https://[{written}]:8443/cb"), written


@given(st.from_regex(r"\[[0-9a-f:.]{2,24}\]", fullmatch=True))
def test_the_url_pattern_accepts_only_ipv6_addresses_in_brackets(host: str) -> None:
    """What the schema lets through, the server parses: nothing that only looks like one."""
    try:
        IPv6Address(host[1:-1])
    except ValueError:
        valid = False
    else:
        valid = True
    assert bool(re.fullmatch(URL_PATTERN, f"https://{host}/")) == valid
