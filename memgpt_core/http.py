"""One HTTP call to a backend server, with every failure turned into a BackendError that names the URL and the fix.

All backends use this, so "server down", "wrong port", "HTML instead of JSON" read the same whichever server it is.
``requests`` is imported on first use, not at start-up.

Proxies: a request to this machine (127.0.0.0/8, ::1, localhost) never goes through a proxy, whatever the
environment says, because a corporate proxy would capture local-server traffic. A request to any other host honours
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` as ``requests`` does (see ``proxies_for``).
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from memgpt_core.endpoints import redact
from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    BackendTimeoutError,
    BackendUnavailableError,
)

_session: Any = None


def _get_session() -> Any:
    global _session
    if _session is None:
        import requests

        _session = requests.Session()
        # The environment is read per request by proxies_for, so that loopback traffic never meets a proxy.
        _session.trust_env = False
    return _session


def is_loopback(host: str | None) -> bool:
    """True for a host on this machine: 127.0.0.0/8, ::1 (also IPv4-mapped), 0.0.0.0, localhost, *.localhost."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def proxies_for(url: str) -> dict[str, str]:
    """The proxies a request to ``url`` goes through: none for a loopback host; otherwise what the environment says
    (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus hosts matched by ``NO_PROXY``), exactly as ``requests``
    reads it."""
    if is_loopback(urlsplit(url).hostname):
        return {}
    from requests.utils import get_environ_proxies

    return dict(get_environ_proxies(url))


def _proxy_used(url: str, proxies: dict[str, str]) -> str | None:
    """The proxy URL (without any user:password) that ``requests`` picks for ``url`` from ``proxies``."""
    from requests.utils import select_proxy

    proxy = select_proxy(url, proxies)
    if not proxy:
        return None
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def request_json(
    method: str,
    url: str,
    *,
    backend: str,
    json: Any = None,
    headers: dict[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 600.0,
    expect_json: bool = True,
) -> Any:
    """Send one request and return the decoded JSON body (or the text when ``expect_json`` is false).

    Raises BackendUnavailableError, BackendTimeoutError, BackendHTTPError (status >= 400, with the body) or
    BackendResponseError (200 but not JSON). The API key is sent as a bearer token and never appears in a message.
    """
    import requests

    all_headers = dict(headers or {})
    if api_key:
        all_headers.setdefault("Authorization", f"Bearer {api_key}")
    proxies = proxies_for(url)
    try:
        response = _get_session().request(
            method, url, json=json, headers=all_headers, timeout=(5.0, timeout), proxies=proxies
        )
    except requests.exceptions.ProxyError as exc:
        proxy = _proxy_used(url, proxies) or "the proxy"
        raise BackendUnavailableError(
            f"could not reach the {backend} server at {url} through the proxy {proxy} ({_reason(exc)})",
            url=url,
            fix="check HTTPS_PROXY / HTTP_PROXY, or add the server's host to NO_PROXY to connect directly",
        ) from None
    except requests.exceptions.ConnectTimeout:
        raise BackendUnavailableError(
            f"could not reach the {backend} server at {url} (the connection timed out)",
            url=url,
            fix="check the host in OPENAI_API_BASE (or --endpoint), and that a firewall does not block it",
        ) from None
    except requests.exceptions.ReadTimeout:
        raise BackendTimeoutError(
            f"the {backend} server at {url} did not answer within {timeout:g} s",
            url=url,
            fix="the model may be too slow for this prompt: use a smaller model or context, or raise MEMGPT_TIMEOUT "
            "(seconds per request, default 600)",
        ) from None
    except requests.exceptions.ConnectionError as exc:
        if _unknown_host(exc):
            host = urlsplit(url).hostname
            raise BackendUnavailableError(
                f"the host {host!r} in {url} could not be found (name or service not known)",
                url=url,
                fix="check the host in OPENAI_API_BASE (or --endpoint); for a server on this machine use 127.0.0.1",
            ) from None
        raise BackendUnavailableError(
            f"nothing is answering at {url} ({_reason(exc)})",
            url=url,
            fix=f"start the {backend} server, or point OPENAI_API_BASE (or --endpoint) at the right host and port",
        ) from None
    except requests.exceptions.RequestException as exc:
        raise BackendUnavailableError(
            f"the request to {url} failed: {redact(str(exc), api_key)}",
            url=url,
            fix="check OPENAI_API_BASE (or --endpoint)",
        ) from None

    body = response.text
    if response.status_code >= 400:
        raise BackendHTTPError(
            f"the {backend} server at {url} answered {response.status_code} {response.reason}: "
            f"{_snippet(body, api_key)}",
            url=url,
            fix=_http_fix(response.status_code, backend),
            status=response.status_code,
            body=redact(body, api_key),
        )
    if not expect_json:
        return body
    try:
        return jsonlib.loads(body)
    except ValueError:
        what = "an HTML page" if body.lstrip()[:1] == "<" else "text that is not JSON"
        raise BackendResponseError(
            f"the {backend} server at {url} answered with {what} instead of JSON: {_snippet(body, api_key)}",
            url=url,
            fix=f"this URL is not a {backend} API; check OPENAI_API_BASE (or --endpoint) and BACKEND_TYPE",
        ) from None


def _http_fix(status: int, backend: str) -> str:
    if status in (401, 403):
        return "the server wants an API key: set MEMGPT_API_KEY (or --api-key) to the key the server was started with"
    if status == 404:
        return f"this URL has no {backend} API at that path; check OPENAI_API_BASE (or --endpoint) and BACKEND_TYPE"
    if status == 503:
        return "the server is busy or still loading its model; wait and try again"
    if 400 <= status < 500:
        return "the server refused the request; run `memgpt doctor` to check the backend and wrapper settings"
    return "the server failed; look at its own log for the cause"


def _unknown_host(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        marker in text for marker in ("Name or service not known", "NameResolutionError", "nodename nor servname")
    )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "Temporary failure"):
        if marker in text:
            return marker.lower()
    return "connection failed"


def _snippet(body: str, secret: str | None, limit: int = 300) -> str:
    text = " ".join(redact(body, secret).split())
    return text if len(text) <= limit else text[:limit] + "…"
