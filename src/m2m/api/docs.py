"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with their assets served
from here and a Content-Security-Policy that allows exactly what the page loads and nothing else.

The pages are FastAPI's own; their scripts, styles and favicon come from the installed
``fastapi-offline`` package (Swagger UI's and ReDoc's published bundles, with their licences),
served under ``/docs/assets/``: a deployment behind a firewall, without Internet access, gets
working docs, and the pages load nothing from another origin. They are served on the console's
origin, so the policy keeps anything else (an injected script, a form posting elsewhere,
framing) from running with that origin's cookies. Inline scripts are allowed by their hash,
computed from the page itself, so the policy follows FastAPI's templates when they change.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DOCS = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOC = "/redoc"
ASSETS = "/docs/assets"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))

# ReDoc's side bar shows Redocly's logo from their CDN (and hides it when it fails to load). The
# bundle is served with an empty source there instead: no request to another origin, nothing
# for the policy to refuse, and the same page as offline.
REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
REDOC_BUNDLE = f"{ASSETS}/redoc.standalone.js"


@functools.cache
def redoc_bundle() -> bytes:
    return (ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, b'""')


# What every page refuses: anything not listed, framing, a <base> and form posts elsewhere.
_COMMON = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
# Swagger UI: its bundle and stylesheet from here, its init script (by hash), inline style
# attributes it sets, SVG icons as data: URLs, the favicon, and fetching the OpenAPI document
# (and "Try it out" calls) from here. The online validator's badge is switched off (it would
# send the document's URL to a third party, and fail offline).
SWAGGER_UI_POLICY = (
    f"{_COMMON}; script-src {{scripts}}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'"
)
# ReDoc: its bundle from here, its search worker (made from a blob: URL), the styles it
# injects, data: images, the favicon, and the OpenAPI document from here. No web fonts: the
# page uses the system's (Google Fonts would be a request to another origin).
REDOC_POLICY = (
    f"{_COMMON}; script-src {{scripts}}; worker-src blob:; "
    "style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"
)
# The OAuth2 redirect page: one inline script, nothing loaded.
OAUTH2_REDIRECT_POLICY = f"{_COMMON}; script-src {{scripts}}"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """The CSP sources allowing exactly the inline scripts of ``html``."""
    digests = (hashlib.sha256(script.encode()).digest() for script in _INLINE_SCRIPT.findall(html))
    return [f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests]


def with_policy(
    page: HTMLResponse, policy: str, script_hosts: tuple[str, ...] = ()
) -> HTMLResponse:
    """``page`` with ``policy``, its script-src the hosts given and the page's inline scripts."""
    scripts = [*script_hosts, *inline_script_hashes(bytes(page.body).decode())]
    page.headers["Content-Security-Policy"] = policy.format(scripts=" ".join(scripts) or "'none'")
    return page


def add_docs(app: FastAPI) -> None:
    """Serve the documentation pages (the app is made with ``docs_url=redoc_url=None``)."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(_request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        return with_policy(page, SWAGGER_UI_POLICY, ("'self'",))

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return with_policy(get_swagger_ui_oauth2_redirect_html(), OAUTH2_REDIRECT_POLICY)

    async def redoc(_request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=REDOC_BUNDLE,
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return with_policy(page, REDOC_POLICY, ("'self'",))

    app.add_route(DOCS, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT, oauth2_redirect, include_in_schema=False)

    async def redoc_script(_request: Request) -> Response:
        return Response(redoc_bundle(), media_type="text/javascript")

    app.add_route(REDOC, redoc, include_in_schema=False)
    app.add_route(REDOC_BUNDLE, redoc_script, include_in_schema=False)  # before the mount
    app.mount(ASSETS, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
