"""Reading what llama-server answered to ``POST /completion``, whole or streamed, for the pass-through proxies some
tests put in front of it.

A streamed answer (``"stream": true``, which the agent asks for) is server-sent events; its last ``data:`` object
(``"stop": true``) carries what a whole answer carries besides the text: ``generation_settings``, the counts, the stop
type and the timings (llama.cpp's tools/server README, "POST /completion").
"""

from __future__ import annotations

import json
from typing import Any


def final_object(body: bytes | str, content_type: str | None) -> dict[str, Any]:
    """The answer's JSON object: the body itself, or a stream's last ``data:`` object with its text joined in."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if "text/event-stream" not in (content_type or ""):
        return json.loads(text)
    pieces = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    final = dict(pieces[-1])
    final["content"] = "".join(str(piece.get("content", "")) for piece in pieces)
    return final


def record_completions(httpserver: Any, upstream: str) -> tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Put ``httpserver`` in front of the llama-server at ``upstream`` as a pass-through; returns its URL and the list
    it fills with each ``/completion`` body and the answer's object (:func:`final_object`)."""
    import re

    import requests
    from werkzeug import Request, Response

    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    session = requests.Session()
    session.trust_env = False

    def forward(request: Request) -> Response:
        answer = session.request(
            request.method,
            upstream + request.path,
            data=request.get_data(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            timeout=300,
        )
        content_type = answer.headers.get("Content-Type")
        if request.path == "/completion":
            seen.append((json.loads(request.get_data()), final_object(answer.content, content_type)))
        return Response(answer.content, status=answer.status_code, content_type=content_type)

    httpserver.expect_request(re.compile(".*")).respond_with_handler(forward)
    return httpserver.url_for("").rstrip("/"), seen
