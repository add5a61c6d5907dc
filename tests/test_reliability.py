"""Endpoint URLs with a wrong scheme are refused with the URL to use, and proxies from the environment are honoured
for remote servers but never for this machine. Real sockets on 127.0.0.1 only; nothing leaves the machine."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memgpt_core.endpoints import normalize_base_url
from memgpt_core.errors import BackendUnavailableError, ConfigError
from memgpt_core.http import is_loopback, proxies_for, request_json

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

# -- 3. unknown schemes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "use"),
    [
        ("htp:/host", "htp", "http://host"),
        ("htpp://example.com:8080/v1/chat/completions", "htpp", "http://example.com:8080"),
        ("htps://api.example.com/v1", "htps", "https://api.example.com"),
        ("htps://localhost:8080", "htps", "http://localhost:8080"),
        ("ftp://192.168.1.5:5000", "ftp", "http://192.168.1.5:5000"),
        ("htp:/127.0.0.1:8080/completion", "htp", "http://127.0.0.1:8080"),
    ],
)
def test_an_unknown_scheme_is_refused_naming_it_and_the_url_to_use(url, scheme, use):
    with pytest.raises(ConfigError) as caught:
        normalize_base_url(url, backend="llamacpp", default="http://127.0.0.1:8080")
    assert f"scheme {scheme!r}" in caught.value.message and url in caught.value.message
    assert caught.value.fix == f"use {use}"


@pytest.mark.parametrize(
    ("url", "use"),
    [("http:/127.0.0.1:8080", "http://127.0.0.1:8080"), ("http//localhost:5000/v1", "http://localhost:5000")],
)
def test_http_with_mangled_slashes_is_not_read_as_a_host_named_http(url, use):
    with pytest.raises(ConfigError, match="missing the '://'") as caught:
        normalize_base_url(url)
    assert caught.value.fix == f"use {use}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("localhost:8080", "http://localhost:8080"),
        ("127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080"),
        ("http://192.168.1.5:5000/api/v1/generate/", "http://192.168.1.5:5000"),
        ("HTTPS://api.example.com/v1", "https://api.example.com"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("localhost", "http://localhost"),
    ],
)
def test_the_existing_normalisation_still_holds(url, expected):
    assert normalize_base_url(url) == expected


def test_https_to_loopback_and_bad_ports_are_still_refused():
    with pytest.raises(ConfigError, match="speak plain http") as caught:
        normalize_base_url("https://127.0.0.1:8080/v1")
    assert caught.value.fix == "use http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match="invalid port"):
        normalize_base_url("localhost:abc")
    with pytest.raises(ConfigError, match="no host"):
        normalize_base_url("http://")


# -- 4. proxies ----------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request itself with JSON and records the request line's target (absolute for a proxy)."""

    seen: list[str]
    label = "server"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(self.path)
        body = json.dumps({"answered_by": self.label, "target": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _serve(label: str) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type(f"{label.title()}Recorder", (_Recorder,), {"seen": seen, "label": label})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def proxy():
    yield from _serve("proxy")


@pytest.fixture
def local_server():
    yield from _serve("server")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "a.localhost"],
)
def test_loopback_urls_never_get_a_proxy(clean_proxy_env, host):
    clean_proxy_env.setenv("HTTP_PROXY", "http://proxy.example:3128")
    clean_proxy_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_proxy_env.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert is_loopback(host.strip("[]"))
    assert proxies_for(f"http://{host}:8080/v1/completions") == {}


def test_remote_urls_get_the_proxies_from_the_environment(clean_proxy_env):
    clean_proxy_env.setenv("HTTP_PROXY", "http://plain.proxy:3128")
    clean_proxy_env.setenv("HTTPS_PROXY", "http://secure.proxy:3129")
    proxies = proxies_for("https://api.example.com/v1/chat/completions")
    assert proxies["https"] == "http://secure.proxy:3129" and proxies["http"] == "http://plain.proxy:3128"
    assert proxies_for("http://192.168.1.5:5000")["http"] == "http://plain.proxy:3128"
    assert not is_loopback("192.168.1.5") and not is_loopback("example.com") and not is_loopback(None)


def test_no_proxy_and_lowercase_variables_are_honoured(clean_proxy_env):
    clean_proxy_env.setenv("https_proxy", "http://lower.proxy:3128")
    clean_proxy_env.setenv("no_proxy", "internal.example,10.0.0.0/8")
    assert proxies_for("https://api.example.com")["https"] == "http://lower.proxy:3128"
    assert proxies_for("https://gpu.internal.example/v1") == {}
    assert proxies_for("http://10.1.2.3:8080") == {}


def test_without_proxy_variables_nothing_is_proxied(clean_proxy_env):
    assert proxies_for("https://api.example.com") == {}


def test_a_remote_host_is_reached_through_the_proxy_from_the_environment(clean_proxy_env, proxy):
    proxy_url, seen = proxy
    clean_proxy_env.setenv("HTTP_PROXY", proxy_url)
    # memgpt-test.invalid cannot resolve: only the proxy (on 127.0.0.1) can answer for it.
    answer = request_json("POST", "http://memgpt-test.invalid:9/v1/completions", backend="test", json={"p": 1})
    assert answer == {"answered_by": "proxy", "target": "http://memgpt-test.invalid:9/v1/completions"}
    assert seen == ["http://memgpt-test.invalid:9/v1/completions"]


def test_a_loopback_server_is_reached_directly_even_with_a_proxy_set(clean_proxy_env, proxy, local_server):
    proxy_url, proxy_seen = proxy
    server_url, server_seen = local_server
    for name in ("HTTP_PROXY", "ALL_PROXY"):
        clean_proxy_env.setenv(name, proxy_url)
    answer = request_json("GET", f"{server_url}/v1/models", backend="test")
    assert answer["answered_by"] == "server"
    assert server_seen == ["/v1/models"] and proxy_seen == []


def test_a_proxy_that_is_down_is_named_in_the_error(clean_proxy_env):
    # A port that was just free on 127.0.0.1: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://user:secret@127.0.0.1:{probe.getsockname()[1]}"
    clean_proxy_env.setenv("HTTP_PROXY", dead)
    with pytest.raises(BackendUnavailableError) as caught:
        request_json("GET", "http://memgpt-test.invalid:9/v1/models", backend="test", timeout=5)
    text = str(caught.value)
    assert "through the proxy http://127.0.0.1:" in text and "secret" not in text
    assert "NO_PROXY" in text


# -- backends without a readiness check of their own: nothing answering is said before an agent is made ----------------


@pytest.mark.parametrize("backend", ["webui", "webui-legacy", "lmstudio"])
def test_no_agent_is_made_when_nothing_answers(backend: str, tmp_path) -> None:
    from click.testing import CliRunner

    from memgpt_core.cli import cli
    from memgpt_core.storage import Store
    from memgpt_core.testing import closed_port

    url = f"http://127.0.0.1:{closed_port()}"
    env = {"MEMGPT_HOME": str(tmp_path), "BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_API_KEY": None}
    args = ["send", "--agent", "fresh", "--backend", backend, "--endpoint", url, "hi"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert url in result.output
    with Store(tmp_path / "memgpt.db") as store:
        assert store.get_agent("fresh") is None, "a first start that cannot reach the server leaves no empty agent"


def test_webui_with_no_model_loaded_is_told_before_an_agent_is_made(httpserver, tmp_path) -> None:
    from click.testing import CliRunner

    from memgpt_core.cli import cli
    from memgpt_core.storage import Store

    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "None", "lora_names": []})
    env = {"MEMGPT_HOME": str(tmp_path), "BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_API_KEY": None}
    args = ["send", "--agent", "fresh", "--backend", "webui", "--endpoint", httpserver.url_for("/"), "hi"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1 and "no model loaded" in result.output and "Model tab" in result.output
    assert not any(req.path == "/v1/completions" for req, _ in httpserver.log)
    with Store(tmp_path / "memgpt.db") as store:
        assert store.get_agent("fresh") is None
