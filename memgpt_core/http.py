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
import re
from collections.abc import Iterator
from contextlib import contextmanager
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
    BackendResponseError (200 but not JSON, or a body cut short). The API key is sent as a bearer token and never
    appears in a message.
    """
    response = _send(method, url, backend=backend, json=json, headers=headers, api_key=api_key, timeout=timeout)
    body = response.text
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


def stream_lines(
    method: str,
    url: str,
    *,
    backend: str,
    json: Any = None,
    headers: dict[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 600.0,
) -> Iterator[str]:
    """Send one request and yield its body line by line as the server writes it, decoded as UTF-8, without the line
    endings (CRLF, LF or a lone CR, as server-sent events allow; bytes that are not UTF-8 become U+FFFD).

    Nothing is sent before the first ``next()``. Failures are those of ``request_json``, raised from the iterator:
    BackendUnavailableError, BackendTimeoutError (no byte for ``timeout`` seconds, before or during the body),
    BackendHTTPError (status >= 400: the whole body is read first, so a backend's error translation works on it as
    on a plain answer). A body the server breaks off (a connection dropped mid-chunk, fewer bytes than its
    Content-Length) raises BackendResponseError. A server that ends a body without a length by closing the connection
    cannot be told from one that crashed at that moment: the reader of the lines must know what a whole answer looks
    like. The response is closed when the iterator ends, fails or is closed early.
    """
    response = _send(
        method, url, backend=backend, json=json, headers=headers, api_key=api_key, timeout=timeout, stream=True
    )
    try:
        pending = b""
        while True:
            with _failures(url, backend, api_key, timeout, answering=True):
                # read1 returns what has arrived (at least one byte), where read(n) would wait for n bytes.
                chunk = response.raw.read1(_READ_SIZE)
            pending += chunk
            lines, pending = _split_lines(pending, final=not chunk)
            for line in lines:
                yield line.decode("utf-8", errors="replace")
            if not chunk:
                return
    finally:
        response.close()


_READ_SIZE = 65536
_LINE_END = re.compile(rb"\r\n|\n|\r")


def _split_lines(data: bytes, *, final: bool) -> tuple[list[bytes], bytes]:
    """The whole lines in ``data`` and the rest. A CR at the very end is kept back until the next read (or the end,
    ``final``) says whether an LF follows it; at the end, the rest is a last line of its own."""
    lines: list[bytes] = []
    start = 0
    for match in _LINE_END.finditer(data):
        if match.group() == b"\r" and match.end() == len(data) and not final:
            break
        lines.append(data[start : match.start()])
        start = match.end()
    rest = data[start:]
    if final and rest:
        return [*lines, rest], b""
    return lines, rest


def _send(
    method: str,
    url: str,
    *,
    backend: str,
    json: Any,
    headers: dict[str, str] | None,
    api_key: str | None,
    timeout: float,
    stream: bool = False,
) -> Any:
    """Send the request and return the ``requests`` response; a status >= 400 raises BackendHTTPError, its whole
    body read (and the response closed)."""
    all_headers = dict(headers or {})
    if api_key:
        all_headers.setdefault("Authorization", f"Bearer {api_key}")
    proxies = proxies_for(url)
    with _failures(url, backend, api_key, timeout, proxies=proxies):
        response = _get_session().request(
            method, url, json=json, headers=all_headers, timeout=(5.0, timeout), proxies=proxies, stream=stream
        )
    if response.status_code < 400:
        return response
    try:
        with _failures(url, backend, api_key, timeout, answering=True):
            body = response.text
    finally:
        response.close()
    raise BackendHTTPError(
        f"the {backend} server at {url} answered {response.status_code} {response.reason}: {_snippet(body, api_key)}",
        url=url,
        fix=_http_fix(response.status_code, backend),
        status=response.status_code,
        body=redact(body, api_key),
    )


@contextmanager
def _failures(
    url: str,
    backend: str,
    api_key: str | None,
    timeout: float,
    *,
    proxies: dict[str, str] | None = None,
    answering: bool = False,
) -> Iterator[None]:
    """Turn what ``requests`` (or urllib3, when a streamed body is read) raises into the BackendError it means.
    ``answering``: the server has begun its answer (a timeout then means it went quiet mid-way)."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    try:
        yield
    except requests.exceptions.ProxyError as exc:
        proxy = _proxy_used(url, proxies or {}) or "the proxy"
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
    except (requests.exceptions.ReadTimeout, ReadTimeoutError):
        raise _timed_out(url, backend, timeout, answering) from None
    except (
        requests.exceptions.ChunkedEncodingError,
        ProtocolError,
        requests.exceptions.ContentDecodingError,
        DecodeError,
        SSLError,
    ):
        raise _cut_short(url, backend) from None
    except requests.exceptions.ConnectionError as exc:
        # requests reports a read timeout while it reads a body as a ConnectionError around urllib3's error.
        if any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
            raise _timed_out(url, backend, timeout, answering) from None
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


def _timed_out(url: str, backend: str, timeout: float, answering: bool) -> BackendTimeoutError:
    what = (
        f"stopped sending for {timeout:g} s in the middle of its answer"
        if answering
        else (f"did not answer within {timeout:g} s")
    )
    return BackendTimeoutError(
        f"the {backend} server at {url} {what}",
        url=url,
        fix="the model may be too slow for this prompt: use a smaller model or context, or raise MEMGPT_TIMEOUT "
        "(seconds per request, default 600)",
    )


def _cut_short(url: str, backend: str) -> BackendResponseError:
    return BackendResponseError(
        f"the {backend} server at {url} closed the stream before the answer was complete",
        url=url,
        fix=f"the {backend} server may have crashed, restarted or run out of memory: look at its own log, then try "
        "again",
    )


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
