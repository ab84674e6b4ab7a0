"""The dashboard API over real HTTP on 127.0.0.1, as dashboard_reader, for the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import httpx
import uvicorn
from fastapi.routing import APIRoute

from api.access import issue_token
from api.app import create_app, router
from api.settings import ApiSettings, as_reader
from resources.warehouse import WarehouseResource
from sandbox.server import free_port

READER_PASSWORD = "reader-test-password"
RESPONSE_MODELS = {
    route.path: route.response_model for route in router.routes if isinstance(route, APIRoute)
}


@dataclass
class Served:
    url: str
    warehouse: WarehouseResource  # the owner's connection, for the truth and for tokens

    def token(self, targetologist: str | None = None) -> str:
        return issue_token(self.warehouse, targetologist=targetologist).token

    def get(self, path: str, token: str | None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(self.url + path, params=params or None, headers=headers, timeout=30)
        _matches_its_model(path, response)
        return response


def _matches_its_model(path: str, response: httpx.Response) -> None:
    """Every 200 answer has the shape its response model declares (and /docs shows)."""
    model = RESPONSE_MODELS.get(path.partition("?")[0])
    if model is not None and response.status_code == 200:
        model.model_validate(response.json())


@contextmanager
def serve(
    warehouse: WarehouseResource, instance: dg.DagsterInstance | None = None
) -> Iterator[Served]:
    warehouse.configure_dashboard_role(READER_PASSWORD)
    settings = ApiSettings(reader_url=as_reader(warehouse.url, READER_PASSWORD))
    port = free_port()
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
