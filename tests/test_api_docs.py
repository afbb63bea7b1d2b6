"""The documentation pages carry a Content-Security-Policy allowing exactly what they load.

(Checked by hand in Chromium with the CDN's real swagger-ui-dist 5 and redoc 2 bundles served
in place of the CDN: both pages render, ReDoc's search runs, and no directive is violated.)
"""

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
    # Scripts: the page's own inline ones by hash, and the bundles' host; never any inline.
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    hosts = {source for source in policy["script-src"] if not source.startswith("'")}
    inline = {source for source in policy["script-src"] if source.startswith("'sha256-")}
    assert inline == _hashes(html)
    assert set(policy["script-src"]) == (hosts | inline or {"'none'"})
    for src in re.findall(r'<script src="([^"]+)"', html):
        assert any(src.startswith(host + "/") for host in hosts), src


def test_the_pages_load_from_the_cdn_they_name(client: TestClient) -> None:
    _, swagger = _policy(client, "/docs")
    assert "https://cdn.jsdelivr.net" in swagger["style-src"]
    assert swagger["connect-src"] == ["'self'"]
    redoc_html, redoc = _policy(client, "/redoc")
    assert redoc["worker-src"] == ["blob:"]  # ReDoc's search worker
    assert "https://fonts.googleapis.com" in redoc_html
    assert "https://fonts.googleapis.com" in redoc["style-src"]
    assert redoc["font-src"] == ["https://fonts.gstatic.com"]


def test_inline_script_hashes_are_those_of_the_scripts() -> None:
    html = "<script>a()</script><script src='x.js'></script><script>\nb()\n</script>"
    expected = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
        for s in (b"a()", b"\nb()\n")
    ]
    assert inline_script_hashes(html) == expected
