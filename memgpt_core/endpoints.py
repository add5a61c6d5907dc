"""Base-URL normalisation: the wrong URLs MemGPT users pasted most, fixed or refused with the right one shown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from memgpt_core.errors import ConfigError

# API paths people paste into the base URL. Longest first, so that /v1/completions goes before /v1.
_API_TAILS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/internal/model/info",
    "/api/v1/generate",
    "/api/v1/model",
    "/api/extra/generate/stream",
    "/completions",
    "/completion",
    "/generate",
    "/api/v1",
    "/v1",
    "/api",
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}

# A scheme with its slashes mangled: "htp:/host", "http:host" (but not "host:8080"), "http//host".
_BROKEN_SCHEMES = (
    re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/+(.*)$", re.DOTALL),
    re.compile(r"^(https?):(?!\d)(.+)$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^(https?)//+(.*)$", re.IGNORECASE | re.DOTALL),
)


def normalize_base_url(url: str, *, backend: str = "", default: str = "") -> str:
    """Return ``scheme://host:port[/prefix]`` with API paths and trailing slashes removed.

    Refuses (ConfigError) what cannot be fixed safely: no host, an unknown scheme, or https to a loopback port
    (local servers speak plain http; the message shows the http URL to use instead).
    """
    raw = url.strip()
    if not raw:
        raise ConfigError(
            "the backend URL is empty", fix=f"set OPENAI_API_BASE, for example {default or 'http://127.0.0.1:8080'}"
        )
    who = f"the {backend} backend" if backend else "the backend"
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
    else:
        broken = next((m for m in (p.match(raw) for p in _BROKEN_SCHEMES) if m), None)
        scheme, rest = (broken.group(1), broken.group(2)) if broken else ("http", raw)
        if broken and scheme.lower() in ("http", "https"):
            raise ConfigError(
                f"{who} URL {url!r} is missing the '://' after {scheme!r}",
                fix=f"use {_suggest(scheme.lower(), rest, backend, default)}",
            )
    if scheme.lower() not in ("http", "https"):
        meant = "https" if "s" in scheme.lower() else "http"
        raise ConfigError(
            f"{who} URL {url!r} has the scheme {scheme!r}; memgpt speaks only http:// and https://",
            fix=f"use {_suggest(meant, rest, backend, default)}",
        )
    parts = urlsplit(f"{scheme.lower()}://{rest}")
    if not parts.hostname:
        raise ConfigError(f"{who} URL {url!r} has no host", fix=f"use a URL like {default or 'http://127.0.0.1:8080'}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(
            f"{who} URL {url!r} has an invalid port", fix=f"use a URL like {default or 'http://127.0.0.1:8080'}"
        ) from None
    path = parts.path.rstrip("/")
    changed = True
    while changed:
        changed = False
        for tail in _API_TAILS:
            if path.lower().endswith(tail):
                path = path[: -len(tail)].rstrip("/")
                changed = True
                break
    fixed = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    if parts.scheme == "https" and parts.hostname in _LOOPBACK:
        plain = urlunsplit(("http", parts.netloc, path, "", ""))
        raise ConfigError(
            f"{who} URL {url!r} uses https, but local servers ({parts.hostname}) speak plain http",
            fix=f"use {plain}",
        )
    return fixed


def _suggest(scheme: str, rest: str, backend: str, default: str) -> str:
    """The URL to show in a refusal: ``rest`` (what followed the bad scheme) under ``scheme``, normalised."""
    rest = rest.lstrip("/")
    try:
        return normalize_base_url(f"{scheme}://{rest}", backend=backend, default=default)
    except ConfigError as exc:
        # https to a loopback host: its own refusal already names the plain-http URL.
        if exc.fix and exc.fix.startswith("use "):
            return exc.fix[len("use ") :]
        return default or "http://127.0.0.1:8080"


def redact(text: str, secret: str | None) -> str:
    """Remove a secret (an API key) from text that is about to be shown or logged."""
    if secret:
        text = text.replace(secret, "***")
    return text
