"""The vendor's clock, read from the `Date` header of its responses.

Windows ("up to now minus a lag", "today in the account's zone") end at the vendor's now, not
ours: a skewed local clock must not move them, and a simulator's world sets its own time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx


class VendorClock:
    def __init__(self) -> None:
        self.last: datetime | None = None

    def note(self, response: httpx.Response) -> None:
        header = response.headers.get("date")
        if header:
            try:
                self.last = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                pass

    def now(self) -> datetime:
        """As of the last response, else our own clock."""
        return self.last or datetime.now(UTC)
