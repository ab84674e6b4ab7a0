"""A base for the vendor simulators: a real HTTP server on 127.0.0.1 with faults and a request log.

Each simulator is a Starlette app; `SimServer` runs it under uvicorn in a thread on a free port,
records every request, and injects faults per route on demand, in-process (`server.faults.add`)
or over HTTP (`POST /__sandbox__/faults`, for `python -m sandbox serve`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/__sandbox__"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server started by port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fault:
    """What to do instead of (or before) answering a matching request."""

    path: str  # a regular expression matched against the whole path
    status: int | None = None  # answer with this status and body instead of the app
    body: Any = None  # dict/list → JSON, str → text/html, bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    # a regular expression searched in the query string: pages (`select=*`) apart from counts
    query: str | None = None
    times: int = 1  # how many requests it hits; -1 = until cleared
    delay: float = 0.0  # seconds before answering (a slow response)
    reset: bool = False  # send half of the real body, then drop the connection
    # raw JSON text of one or more array elements (hostile records: any bytes, even ones no
    # JSON library would write) put first in the real answer's array that follows `plant_after`
    plant: bytes | None = None
    plant_after: bytes = b"["

    def matches(self, method: str, path: str, query: str = "") -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.query is not None and re.search(self.query, query) is None:
            return False
        return re.fullmatch(self.path, path) is not None


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, path: str, **kwargs: Any) -> Fault:
        fault = Fault(path=path, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str, query: str = "") -> Fault | None:
        """The first matching fault, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, query):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int
    started: float  # time.monotonic()
    fault: bool


def _encode_body(body: Any) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/html; charset=utf-8"
    if body is None:
        return b"", "text/plain"
    return orjson.dumps(body), "application/json; charset=utf-8"


class SandboxMiddleware:
    """Pure ASGI, so a fault can cut a response in the middle of its body."""

    def __init__(
        self,
        app: ASGIApp,
        faults: FaultInjector,
        log: list[RecordedRequest],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(scope, receive, send)
            return
        started = time.monotonic()
        query = scope.get("query_string", b"").decode()
        fault = self.faults.take(method, path, query)
        status_seen = {"status": 0}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
                if self.clock is not None:
                    date = format_datetime(self.clock().astimezone(UTC), usegmt=True)
                    message["headers"] = [
                        *[(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"],
                        (b"date", date.encode()),
                    ]
            await send(message)

        try:
            if fault and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault and fault.status is not None:
                await self._answer(recording_send, fault.status, fault.body, fault.headers)
            elif fault and fault.reset:
                await self.app(scope, receive, _half_body_then_reset(recording_send))
            elif fault and fault.plant is not None:
                await self.app(scope, receive, _planting(recording_send, fault))
            else:
                await self.app(scope, receive, recording_send)
        finally:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.log.append(
                RecordedRequest(
                    method, path, query, headers, status_seen["status"], started, fault is not None
                )
            )

    @staticmethod
    async def _answer(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
        payload, content_type = _encode_body(body)
        raw_headers = [(b"content-type", content_type.encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        action = scope["path"][len(CONTROL_PREFIX) :]
        if action == "/faults" and scope["method"] == "POST":
            spec = orjson.loads(body)
            for name in ("plant", "plant_after"):  # bytes, given as text over HTTP
                if isinstance(spec.get(name), str):
                    spec[name] = spec[name].encode()
            self.faults.add(**spec)
        elif action == "/faults" and scope["method"] == "DELETE":
            self.faults.clear()
        elif action == "/requests" and scope["method"] == "GET":
            rows = [r.__dict__ for r in self.log]
            await self._answer(send, 200, rows, {})
            return
        else:
            await self._answer(send, 404, {"message": "unknown control action"}, {})
            return
        await self._answer(send, 204, None, {})


def _planting(send: Send, fault: Fault) -> Callable[[Message], Any]:
    """Hold the app's answer, put `fault.plant` first in its array, fix Content-Length."""
    start: dict[str, Any] = {}
    body = bytearray()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        assert fault.plant is not None
        at = body.find(fault.plant_after)
        if at >= 0:
            at += len(fault.plant_after)
            empty = body[at : at + 1] == b"]"
            body[at:at] = fault.plant + (b"" if empty else b",")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": bytes(body)})

    return wrapped


class _ConnectionReset(Exception):
    """Raised inside the server to make uvicorn drop a connection mid-body."""


def _half_body_then_reset(send: Send) -> Callable[[Message], Any]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise _ConnectionReset("sandbox fault: connection reset mid-body")
        await send(message)

    return wrapped


class SimServer:
    """Runs one simulator app on 127.0.0.1:<free port> in a background thread.

    `clock`, when given, is the server's time: every response's `Date` header says it. Clients
    take "now" for their windows from the vendor's `Date`, so the sandbox world's clock rules.
    """

    def __init__(
        self, name: str, app: ASGIApp, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.name = name
        self.faults = FaultInjector()
        self.requests: list[RecordedRequest] = []
        self._app = SandboxMiddleware(app, self.faults, self.requests, clock)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, log_level="critical", lifespan="off", access_log=False, date_header=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"sim-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server {self.name} did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._server and self._thread:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
