"""The dashboard API over real HTTP on 127.0.0.1, as dashboard_reader, for the tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import httpx
import uvicorn

from api.access import issue_token
from api.app import create_app
from api.settings import ApiSettings, as_reader
from resources.warehouse import WarehouseResource

READER_PASSWORD = "reader-test-password"


@dataclass
class Served:
    url: str
    warehouse: WarehouseResource  # the owner's connection, for the truth and for tokens

    def token(self, targetologist: str | None = None) -> str:
        return issue_token(self.warehouse, targetologist=targetologist).token

    def get(self, path: str, token: str | None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, params=params or None, headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    warehouse: WarehouseResource, instance: dg.DagsterInstance | None = None
) -> Iterator[Served]:
    warehouse.configure_dashboard_role(READER_PASSWORD)
    settings = ApiSettings(reader_url=as_reader(warehouse.url, READER_PASSWORD))
    port = _free_port()
    config = uvicorn.Config(create_app(settings, instance), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start within 20 s"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", warehouse)
    finally:
        server.should_exit = True
        thread.join(10)
