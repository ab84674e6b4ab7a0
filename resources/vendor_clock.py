"""The vendor's clock, read from the `Date` header of its responses.

Windows ("up to now minus a lag", "today in the account's zone") end at the vendor's now, not
ours: a skewed local clock must not move them, and a simulator's world sets its own time.
Waits the vendor asks for (a throttled account's `estimated_time_to_regain_access`, job polls)
go through `monotonic()` and `sleep()` here too, so a test can run the vendor's minutes faster
by substituting a clock (tests/test_facebook_backfill.py does) instead of sleeping for real.
"""

from __future__ import annotations

import time
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

    def monotonic(self) -> float:
        """Seconds on a steady clock, for deadlines (a breaker's reopening)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of the vendor's time (the calling thread only)."""
        time.sleep(seconds)
