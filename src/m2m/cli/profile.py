"""Where the client commands find their server and credentials: environment and profile file.

The profile file is TOML, ``$XDG_CONFIG_HOME/m2m/config.toml`` (``~/.config/m2m/config.toml``)
unless ``--config``/``M2M_CONFIG`` names another::

    default_profile = "sandbox"

    [profiles.sandbox]
    base_url = "http://127.0.0.1:8000"
    client_id = "sandbox-client"
    client_secret = "sandbox-secret"
    api_key = "sandbox-api-key"

    [profiles.production]
    base_url = "https://api.example.com"
    api_key = "…"
    token = "…"              # a permanent token, instead of client_id/client_secret
    ca_bundle = "/etc/m2m/ca.pem"   # a private CA or self-signed certificate to trust

The profile is ``--profile``, else ``M2M_PROFILE``, else ``default_profile``, else one named
``default`` if there is one. Environment variables (``M2M_BASE_URL``, ``M2M_CLIENT_ID``, …) win
over the profile's values, field by field. The file holds secrets: like ssh, we warn when other
users may read it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

FIELDS = (
    "base_url",
    "client_id",
    "client_secret",
    "api_key",
    "token",
    "callback_token",
    "ca_bundle",
)
SECRET_FIELDS = frozenset({"client_secret", "api_key", "token"})
ENVIRONMENT = {name: "M2M_" + name.upper() for name in FIELDS}


class ProfileError(Exception):
    """The configuration is missing something or cannot be read; the message says what."""


@dataclass(frozen=True, slots=True)
class Connection:
    base_url: str
    api_key: str
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    callback_token: str | None = None
    ca_bundle: str | None = None  # PEM file of the certificates to trust instead of the system's
    warnings: list[str] = field(default_factory=list)


def default_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "m2m" / "config.toml"


def _readable_by_others(path: Path) -> bool:
    return os.name == "posix" and bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def read_profile(path: Path, name: str | None, explicit: bool) -> tuple[dict[str, str], list[str]]:
    """The chosen profile's fields (empty if none applies) and warnings about the file."""
    if not path.exists():
        if explicit:
            raise ProfileError(f"no configuration file at {path}")
        return {}, []
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ProfileError(f"cannot read {path}: {error}") from error
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ProfileError(f"{path}: 'profiles' must be a table of [profiles.NAME] sections")
    chosen = (
        name or document.get("default_profile") or ("default" if "default" in profiles else None)
    )
    if chosen is None:
        return {}, []
    if chosen not in profiles or not isinstance(profiles[chosen], dict):
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileError(f"no profile {chosen!r} in {path} (profiles: {known})")
    values = profiles[chosen]
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ProfileError(
            f"{path}: profile {chosen!r} has unknown keys {', '.join(unknown)}; "
            f"known: {', '.join(FIELDS)}"
        )
    if not all(isinstance(v, str) for v in values.values()):
        raise ProfileError(f"{path}: profile {chosen!r}: every value must be a string")
    warnings = []
    holds_secrets = any(
        isinstance(profile, dict) and SECRET_FIELDS & set(profile) for profile in profiles.values()
    )
    if holds_secrets and _readable_by_others(path):
        warnings.append(f"{path} holds secrets and other users can read it; run: chmod 600 {path}")
    return dict(values), warnings


def resolve(
    environ: Mapping[str, str],
    profile: str | None = None,
    config: Path | None = None,
    ca_bundle: Path | None = None,
) -> Connection:
    """The connection to use, from ``--profile``/``--config``/``--ca-bundle`` and the
    environment."""
    profile = profile or environ.get("M2M_PROFILE") or None
    explicit_config = config or (Path(environ["M2M_CONFIG"]) if environ.get("M2M_CONFIG") else None)
    path = explicit_config or default_config_path(environ)
    values, warnings = read_profile(path, profile, explicit=explicit_config is not None)
    for name, variable in ENVIRONMENT.items():
        if environ.get(variable):
            values[name] = environ[variable]
    if ca_bundle is not None:
        values["ca_bundle"] = str(ca_bundle)
    if values.get("ca_bundle") and not Path(values["ca_bundle"]).is_file():
        raise ProfileError(f"no CA bundle file at {values['ca_bundle']}")
    for name, what in (("base_url", "server"), ("api_key", "API key")):
        if not values.get(name):
            raise ProfileError(
                f"no {what} configured: set {ENVIRONMENT[name]} or add a profile to {path}"
            )
    if not values.get("token") and not (values.get("client_id") and values.get("client_secret")):
        raise ProfileError(
            "no credentials configured: give client_id and client_secret, or a permanent token "
            f"(M2M_CLIENT_ID/M2M_CLIENT_SECRET or M2M_TOKEN, or in {path})"
        )
    return Connection(
        base_url=values["base_url"],
        api_key=values["api_key"],
        client_id=values.get("client_id"),
        client_secret=values.get("client_secret"),
        token=values.get("token"),
        callback_token=values.get("callback_token"),
        ca_bundle=values.get("ca_bundle"),
        warnings=warnings,
    )
