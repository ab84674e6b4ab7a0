"""Telegram Bot API: one `sendMessage` to the team's chat (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID)."""

from __future__ import annotations

import dagster as dg
import httpx

from resources.errors import SourceError, require_setting
from resources.settings import env

SOURCE = "Telegram"
DEFAULT_API_URL = "https://api.telegram.org"


class TelegramResource(dg.ConfigurableResource):
    """Where alerts go; the token is read when a message is sent, never logged."""

    timeout_seconds: float = 10.0

    def send(self, text: str) -> None:
        token = require_setting(SOURCE, "TELEGRAM_BOT_TOKEN", env("TELEGRAM_BOT_TOKEN"),
                                "the bot's token from @BotFather")  # fmt: skip
        chat = require_setting(SOURCE, "TELEGRAM_CHAT_ID", env("TELEGRAM_CHAT_ID"),
                               "the id of the chat the bot posts to")  # fmt: skip
        base = (env("TELEGRAM_API_URL") or DEFAULT_API_URL).rstrip("/")
        try:
            response = httpx.post(
                f"{base}/bot{token}/sendMessage",
                json={"chat_id": chat, "text": text, "disable_web_page_preview": True},
                timeout=self.timeout_seconds,
            )
        except httpx.TransportError as exc:
            raise SourceError(SOURCE, f"{SOURCE}: cannot reach TELEGRAM_API_URL "
                              f"({type(exc).__name__}).", transient=True) from None  # fmt: skip
        body = response.json() if response.headers.get("content-type", "").startswith(
            "application/json") else {}  # fmt: skip
        if response.status_code != 200 or not body.get("ok"):
            description = body.get("description") or response.reason_phrase
            raise SourceError(
                SOURCE,
                f"{SOURCE} refused the message (HTTP {response.status_code}: {description}); "
                "check TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID.",
                transient=response.status_code >= 500,
            )
