"""The documentation pages carry a Content-Security-Policy allowing exactly what they load,
and load it all from here (the browser test, tests/test_console_browser.py, renders both with
the network cut off)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from m2m.api.docs import inline_script_hashes


def _policy(client: TestClient, path: str) -> tuple[str, dict[str, list[str]]]:
    response = client.get(path)
    assert response.status_code == 200
    directives = {}
    for directive in response.headers["content-security-policy"].split(";"):
        name, *sources = directive.split()
        directives[name] = sources
    return response.text, directives


def _hashes(html: str) -> set[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    return {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    }


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_each_page_allows_only_what_it_loads(client: TestClient, path: str) -> None:
    html, policy = _policy(client, path)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    # Scripts: the page's own inline ones by hash, and bundles from here; never any inline, and
    # no other origin.
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    inline = {source for source in policy["script-src"] if source.startswith("'sha256-")}
    assert inline == _hashes(html)
    loads = re.findall(r'<script src="([^"]+)"', html)
    expected = ({"'self'"} if loads else set()) | inline
    assert set(policy["script-src"]) == (expected or {"'none'"})
    for src in loads:
        assert src.startswith("/docs/assets/"), src
    assert "https://" not in " ".join(sources for values in policy.values() for sources in values)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_every_asset_a_page_names_is_served_from_here(client: TestClient, path: str) -> None:
    html = client.get(path).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset  # nothing from another origin
        if asset != "/openapi.json":
            answer = client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000, asset


def test_the_pages_need_nothing_from_another_origin(client: TestClient) -> None:
    swagger_html, swagger = _policy(client, "/docs")
    assert swagger["style-src"] == ["'self'", "'unsafe-inline'"]
    assert swagger["connect-src"] == ["'self'"]
    assert '"validatorUrl": null' in swagger_html
    redoc_html, redoc = _policy(client, "/redoc")
    assert redoc["worker-src"] == ["blob:"]  # ReDoc's search worker
    assert "fonts.googleapis.com" not in redoc_html
    assert "font-src" not in redoc


def test_inline_script_hashes_are_those_of_the_scripts() -> None:
    html = "<script>a()</script><script src='x.js'></script><script>\nb()\n</script>"
    expected = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
        for s in (b"a()", b"\nb()\n")
    ]
    assert inline_script_hashes(html) == expected
