"""A figure of `make bench`: one measurement against its baseline in the same run and its target
(issue 14's table), whether the target is met computed from the measurement; the results file,
the printed table and the chart's data."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """`bound` on the ratio to the baseline (or on the value itself when `of_ratio` is False),
    at most or at least."""

    bound: float
    at_most: bool = True
    of_ratio: bool = True

    def text(self, unit: str) -> str:
        sign = "≤" if self.at_most else "≥"
        return f"ratio {sign} {self.bound:g}" if self.of_ratio else f"{sign} {self.bound:g} {unit}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: Target
    baseline: float | None = None
    ratio: float | None = None
    # a condition of the target beside the bound (AmoCRM's "zero 429"), already measured
    also: bool = True
    detail: str = ""

    @property
    def measured(self) -> float:
        """What the target's bound applies to."""
        if not self.target.of_ratio:
            return self.value
        if self.ratio is None:
            raise ValueError(f"{self.name}: a target on the ratio needs a baseline")
        return self.ratio

    @property
    def met(self) -> bool:
        within = (
            self.measured <= self.target.bound
            if self.target.at_most
            else (self.measured >= self.target.bound)
        )
        return within and self.also

    @property
    def share(self) -> float:
        """How much of the target's allowance the measurement uses: 1 is the target, below is
        better, whichever way the target points (the chart's bar)."""
        measured, bound = self.measured, self.target.bound
        if self.target.at_most and bound == 0:  # none allowed (models that rewrote a day)
            return 0.0 if measured == 0 else float("inf")
        if self.target.at_most:
            return measured / bound
        return bound / measured if measured else float("inf")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "target": self.target.text(self.unit),
            "met": self.met,
            "share_of_target": round(self.share, 4) if math.isfinite(self.share) else None,
            "detail": self.detail,
        }


class Partial(Exception):
    """A section measured some of its figures and failed the others."""

    def __init__(self, figures: list[Figure], failures: list[BaseException]) -> None:
        super().__init__("; ".join(f"{type(f).__name__}: {f}" for f in failures))
        self.figures = figures
        self.failures = failures


def median_of(runs: int, measure: Callable[[], T], key: Callable[[T], float]) -> tuple[T, list[T]]:
    """The run whose `key` is the median of `runs` runs (the lower middle one of an even number),
    and every run."""
    results = [measure() for _ in range(runs)]
    middle = statistics.median_low([key(r) for r in results])
    return next(r for r in results if key(r) == middle), results


def table(figures: Sequence[Figure]) -> str:
    """The printed table; "of target": the share of the target's allowance used (1 is the
    target, below is better), as the chart draws it."""
    rows = [
        [f.name, f"{f.value:,.3g} {f.unit}", "" if f.baseline is None else f"{f.baseline:,.3g}",
         "" if f.ratio is None else f"{f.ratio:.3g}", f.target.text(f.unit),
         f"{f.share:.2f}" if math.isfinite(f.share) else "∞", "yes" if f.met else "NO", f.detail]
        for f in figures
    ]  # fmt: skip
    return tabulate(
        rows, ["figure", "value", "baseline", "ratio", "target", "of target", "met", "detail"]
    )


# what `make bench` itself rewrites: a run before this one leaves them changed
RESULTS_FILES = ("bench/results.json", "bench/results.png")


def git_state() -> dict[str, Any]:
    """The commit and whether the tree differs from it (the results files aside)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", ".", *(f":!{f}" for f in RESULTS_FILES))
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}


def _machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def write_results(
    path: Path, figures: Sequence[Figure], settings: dict[str, Any], git: dict[str, Any]
) -> None:
    body = {
        "figures": [f.as_json() for f in figures],
        "machine": _machine(),
        "git": git,
        "settings": settings,
    }
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
