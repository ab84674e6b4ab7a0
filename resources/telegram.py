"""Telegram Bot API: one `sendMessage` to the team's chat (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID)."""

from __future__ import annotations

import httpx

from resources.errors import SourceError
from resources.settings import SettingsResource, field_value

SOURCE = "Telegram"
DEFAULT_API_URL = "https://api.telegram.org"


# The variable each setting field is bound to (definitions.py binds them, messages name them).
VARIABLES: dict[str, str] = {
    "bot_token": "TELEGRAM_BOT_TOKEN",
    "chat_id": "TELEGRAM_CHAT_ID",
    "api_url": "TELEGRAM_API_URL",
}


class TelegramResource(SettingsResource):
    """Where alerts go; the token is checked when a message is sent (alerts are optional, so
    an unset one fails only the sending), never logged."""

    SOURCE = SOURCE
    VARIABLES = VARIABLES

    bot_token: str | None = None  # the bot's token from @BotFather
    chat_id: str | None = None
    api_url: str | None = DEFAULT_API_URL  # blank means the default
    timeout_seconds: float = 10.0

    def send(self, text: str) -> None:
        token = self.setting("bot_token", "the bot's token from @BotFather")
        chat = self.setting("chat_id", "the id of the chat the bot posts to")
        base = (field_value(self.api_url) or DEFAULT_API_URL).rstrip("/")
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
