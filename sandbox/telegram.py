"""A Telegram Bot API simulator: `sendMessage` as the Bot API answers it, recording messages.

`GET /messages` (not a Bot API method) lists what was sent, for a person watching the sandbox.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class TelegramSimulator:
    def __init__(self, token: str, chat_id: str) -> None:
        self.token = token
        self.chat_id = chat_id
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/bot{token}/sendMessage", self._send, methods=["POST", "GET"]),
                Route("/messages", self._list, methods=["GET"]),
            ]
        )

    async def _list(self, request: Request) -> JSONResponse:
        return JSONResponse(self.messages)

    async def _send(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        body: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if raw:
            body |= orjson.loads(raw) if "json" in request.headers.get("content-type", "") else {}
            body |= (
                dict(await request.form())
                if "form" in request.headers.get("content-type", "")
                else {}
            )
        if not body.get("text"):
            return _error(400, "Bad Request: message text is empty")
        if str(body.get("chat_id")) != self.chat_id:
            return _error(400, "Bad Request: chat not found")
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(self.chat_id), "type": "group"},
            "text": body["text"],
        }
        self.messages.append(message)
        return JSONResponse({"ok": True, "result": message})


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": code, "description": description}, code)
