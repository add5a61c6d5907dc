"""Base-URL normalisation: the wrong URLs MemGPT users pasted most, fixed or refused with the right one shown."""

from __future__ import annotations

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
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    who = f"the {backend} backend" if backend else "the backend"
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{who} URL {url!r} has the scheme {parts.scheme!r}; memgpt speaks http(s)",
            fix=f"use {urlunsplit(('http', parts.netloc, '', '', ''))}",
        )
    if not parts.hostname:
        raise ConfigError(f"{who} URL {url!r} has no host", fix=f"use a URL like {default or 'http://127.0.0.1:8080'}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"{who} URL {url!r} has an invalid port", fix=f"use a URL like {default}") from None
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


def redact(text: str, secret: str | None) -> str:
    """Remove a secret (an API key) from text that is about to be shown or logged."""
    if secret:
        text = text.replace(secret, "***")
    return text
