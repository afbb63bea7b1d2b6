"""What every console page shares: templates, the signed-in user, forms and their CSRF check,
and the errors a page can end with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.templating import Jinja2Templates

from m2m.audit import Actor, ActorKind, request_id_from
from m2m.console import auth, csrf
from m2m.services import Services, services_of
from m2m.storage.console import SessionUser

PREFIX = "/console"
# The largest valid form is a SIM's edit form: 32 labels of 200 characters, 7 custom fields and
# a cost center, each character of which a browser may send as three %XX-escaped bytes (~80 kB).
MAX_FORM_BYTES = 128 * 1024
HERE = Path(__file__).parent
T = TypeVar("T")


class ConsoleError(Exception):
    """Ends a request with an error page (status and a message for people)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class LoginRequired(Exception):
    """No live session: the visitor is sent to the login page, then back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


templates = Jinja2Templates(env=_environment())


def session_rules(services: Services) -> auth.SessionRules:
    settings = services.settings
    return auth.SessionRules(
        lifetime=timedelta(hours=settings.console_session_hours),
        idle=timedelta(minutes=settings.console_idle_minutes),
        lock=timedelta(minutes=settings.console_login_lock_minutes),
    )


@dataclass(frozen=True, slots=True)
class Visitor:
    """The signed-in user of a request, with what their forms need."""

    user: SessionUser
    session_token: str
    services: Services
    request_id: str | None = None  # the request's X-Request-ID, when it is sane

    @property
    def account_id(self) -> int:
        return self.user.account_id

    @property
    def actor(self) -> Actor:
        """Who the audit trail says made a change from this page: the user, by their email."""
        return Actor(ActorKind.CONSOLE, self.user.email, self.request_id)

    @property
    def csrf_token(self) -> str:
        return csrf.token_for_session(self.session_token)

    async def read(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a storage query on a connection of its own, off the event loop."""

        def run() -> T:
            with self.services.engine.connect() as conn:
                return query(conn, *args, **kwargs)

        return await run_in_threadpool(run)


def _path_with_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


# --- cookies ---------------------------------------------------------------------------------
#
# Over HTTPS the console's cookies are ``__Host-`` cookies: the browser keeps them only if they
# are Secure, for the whole host (Path=/) and without a Domain, so nothing on another subdomain
# (or on plain HTTP) can set or shadow them. Over plain HTTP (the sandbox on a laptop) the prefix
# cannot be used, and they keep their plain names and the console's paths.


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request, name: str) -> str:
    return f"__Host-{name}" if _https(request) else name


def read_cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(cookie_name(request, name))


def set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    *,
    path: str,
    samesite: Literal["lax", "strict"],
    max_age: int | None = None,
) -> None:
    https = _https(request)
    response.set_cookie(
        cookie_name(request, name),
        value,
        max_age=max_age,
        path="/" if https else path,
        secure=https,
        httponly=True,
        samesite=samesite,
    )


def delete_cookie(
    response: Response,
    request: Request,
    name: str,
    *,
    path: str,
    samesite: Literal["lax", "strict"],
) -> None:
    """Delete a cookie with the attributes it was set with (a browser may ignore a deleting
    Set-Cookie of a __Host- cookie that is not Secure)."""
    https = _https(request)
    response.delete_cookie(
        cookie_name(request, name),
        path="/" if https else path,
        secure=https,
        httponly=True,
        samesite=samesite,
    )


async def signed_in(request: Request) -> Visitor:
    services = services_of(request)
    token = read_cookie(request, auth.SESSION_COOKIE)
    user = await run_in_threadpool(
        auth.session_user, services.engine, services.clock, session_rules(services), token
    )
    if user is None or token is None:
        raise LoginRequired(_path_with_query(request) if request.method == "GET" else PREFIX + "/")
    return Visitor(user, token, services, request_id_from(request.headers.get("x-request-id")))


SignedIn = Annotated[Visitor, Depends(signed_in)]


def require_active_subscription(visitor: Visitor, refused: str) -> None:
    """A suspended account makes no new credentials (keys, applications, permanent tokens);
    it may still revoke, delete and rotate them."""
    if visitor.user.subscription != "active":
        raise ConsoleError(403, f"The account's subscription is suspended: {refused}.")


def form_time(raw: str, what: str) -> datetime | None:
    """A time typed in a filter form (a datetime-local field sends 2026-12-01T04:00), as UTC;
    ValueError saying how to write it."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"Give the {what} time as 2026-12-01T04:00 (UTC).") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def page_cursor(before: int | None) -> int | None:
    """A newest-first page's ``before`` (an id from the pager's link), checked against the id
    columns' range; ValueError when no page can start there."""
    if before is not None and not 0 < before < 2**63:
        raise ValueError("That page does not exist; start from the newest.")
    return before


@dataclass(frozen=True, slots=True)
class Form:
    fields: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.fields if k == name), default)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


async def read_form(request: Request) -> Form:
    """An url-encoded form body (what the console's forms send), size-limited."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise ConsoleError(415, "Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleError(413, "The form is too large.")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as error:
        raise ConsoleError(400, "The form is not valid UTF-8.") from error
    return Form(fields)


async def checked_form(request: Request, visitor: SignedIn) -> Form:
    """The form of a signed-in POST, once its CSRF token proves it came from our page."""
    form = await read_form(request)
    if not csrf.session_token_matches(visitor.session_token, form.get(csrf.FIELD)):
        raise ConsoleError(
            403, "This form has expired or did not come from the console. Reload it and retry."
        )
    return form


CheckedForm = Annotated[Form, Depends(checked_form)]


def safe_next(value: str | None) -> str:
    """A console path to return to after login; anything else (another site, a scheme-relative
    //host, backslashes browsers treat as slashes) becomes the overview."""
    if not value or "\\" in value or any(ord(c) < 0x20 for c in value):
        return PREFIX + "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return PREFIX + "/"
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return PREFIX + "/"
    return value


def login_url(next_path: str) -> str:
    return f"{PREFIX}/login?next={quote(next_path, safe='/')}"


def render(
    request: Request,
    template: str,
    visitor: Visitor | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    page: dict[str, Any] = {
        "visitor": visitor,
        "csrf_token": visitor.csrf_token if visitor else "",
        "csrf_field": csrf.FIELD,
        "prefix": PREFIX,
        "sandbox": services_of(request).settings.sandbox,
        **context,
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, template, page, status_code=status_code
    )
    return response


def shown_once(
    request: Request, visitor: Visitor, title: str, values: dict[str, str], note: str, back: str
) -> HTMLResponse:
    """The answer to a POST that made a secret: the only page that ever shows it."""
    return render(
        request, "shown_once.html", visitor, title=title, values=values, note=note, back=back
    )
