"""Progress of long loads: counts, rate and an ETA in the run's log at a steady interval, and a
progress bar when a terminal is watching (`python -m commands.backfill` attaches one).

A load reports what it has done (`advance(units, rows)`) against what it plans (`total` units:
account-days for Facebook, seconds of the source's timeline for AmoCRM and Supabase scans);
a timer thread writes one line every `interval` seconds while the load runs, so a load waiting
on a throttled vendor still says so. Loads shorter than one interval log nothing extra.
"""

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

PROGRESS_INTERVAL_SECONDS = 10.0


class Bar(Protocol):
    """What a terminal progress bar (tqdm) offers us."""

    def update(self, n: float) -> Any: ...

    def set_postfix_str(self, s: str) -> Any: ...

    def close(self) -> Any: ...


# The CLI's bar factory: (description, total units, unit name) -> bar. None: log lines only.
_bar_factory: Callable[[str, float | None, str], Bar] | None = None


def attach_bar(factory: Callable[[str, float | None, str], Bar] | None) -> None:
    """Draw a progress bar per load from now on (None: stop drawing)."""
    global _bar_factory
    _bar_factory = factory


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    def __init__(
        self,
        log: Callable[[str], None],
        what: str,
        total: float | None,
        unit: str,
        interval: float | None = None,
    ) -> None:
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.interval = PROGRESS_INTERVAL_SECONDS if interval is None else interval
        self.done = 0.0
        self.rows = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = _bar_factory(what, total, unit) if _bar_factory else None

    def expect(self, units: float) -> None:
        """More planned work (accounts plan their days as they start)."""
        with self._lock:
            self.total = (self.total or 0) + units
            if self._bar is not None:
                self._bar.total = self.total  # type: ignore[attr-defined]
                self._bar.refresh()  # type: ignore[attr-defined]

    def advance(self, units: float = 0.0, rows: int = 0) -> None:
        with self._lock:
            self.done += units
            self.rows += rows
            if self._bar is not None:
                self._bar.update(units)
                self._bar.set_postfix_str(f"{self.rows} rows")

    def line(self) -> str:
        with self._lock:
            done, rows = self.done, self.rows
        elapsed = max(time.monotonic() - self.started, 1e-9)
        parts = [f"{self.what}: {rows} rows in {_duration(elapsed)} ({rows / elapsed:.0f} rows/s)"]
        if self.total:
            share = min(done / self.total, 1.0)
            eta = elapsed * (1 - share) / share if share > 0 else None
            parts.append(
                f"{done:.0f}/{self.total:.0f} {self.unit} ({share:.0%}), ETA "
                + (_duration(eta) if eta is not None else "unknown")
            )
        return "; ".join(parts)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.log(self.line())

    @contextmanager
    def running(self) -> Iterator["Progress"]:
        ticker = threading.Thread(target=self._tick, name=f"progress {self.what}", daemon=True)
        ticker.start()
        try:
            yield self
        finally:
            self._stop.set()
            ticker.join()
            if self._bar is not None:
                self._bar.close()
            if time.monotonic() - self.started >= self.interval:
                self.log(self.line() + " (done)")


def timeline_progress(
    pages: Iterable[list[dict[str, Any]]],
    log: Callable[[str], None],
    what: str,
    since: float,
    until: float,
    field: str,
) -> Iterator[list[dict[str, Any]]]:
    """Pass pages through, reporting progress along the source's timeline: a scan ordered by
    `field` (unix seconds) from `since` to `until` is as far along as its last row's value."""
    progress = Progress(log, what, max(until - since, 1.0), "s of the timeline")
    reached = since
    with progress.running():
        for page in pages:
            values = [float(v) for r in page if isinstance(r, dict)
                      and isinstance(v := r.get(field), int | float)]  # fmt: skip
            step = max(0.0, max(values, default=reached) - reached)
            reached += step
            progress.advance(step, len(page))
            yield page
