"""Request bodies: a size limit decided before anything is parsed (ASGI middleware), and what
exactly is wrong with a body that is not JSON (for the 422's rule).

A body over FLUX_MAX_BODY_BYTES gets 413 from its Content-Length alone, unread; a body
without one (chunked) is read only until it passes the limit. A body within the limit is
kept in the scope (`BODY_KEY`) and replayed to the app, so a 422 can say whether the bytes
were not UTF-8, not JSON, or nested too deeply."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY_KEY = "flux.body"
METHODS_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def too_large_body(limit: int, size: int | None) -> bytes:
    said = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return json.dumps({"error": {
        "type": "BodyTooLarge",
        "message": f"the request body is {said}, over FLUX_MAX_BODY_BYTES={limit}",
        "hint": "send a smaller body (a prompt is at most 10000 characters); the server's "
                "operator may raise FLUX_MAX_BODY_BYTES"}}).encode()


def json_problem(body: bytes | None) -> str:
    """Why `body` is not a JSON document, in words a client can act on."""
    if not body:
        return "is empty: send a JSON object"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text (byte {exc.start} is invalid): send JSON encoded as UTF-8"
    try:
        json.loads(text)
    except RecursionError:
        return "is nested too deeply to parse: send a flat JSON object"
    except json.JSONDecodeError as exc:
        return (f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                f"(character {exc.pos})")
    return "must be a JSON object"


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes` before the app reads or parses them."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, None)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        scope[BODY_KEY] = body
        await self.app(scope, _replay([body], None, receive), send)

    async def _refuse(self, send: Send, size: int | None) -> None:
        content = too_large_body(self.max_bytes, size)
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"x-should-retry", b"false"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": content})


def _replay(bodies: list[bytes], first: Message | None, receive: Receive) -> Receive:
    """A receive that hands out the buffered body (or message) once, then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": b, "more_body": False}
                              for b in bodies]
    if first is not None:
        pending.append(first)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()
    return replay
