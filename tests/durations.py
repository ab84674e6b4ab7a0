"""The suite's durations profile, tests/durations.json: each test module's seconds (its tests'
setup, call and teardown summed) as `make test-profile` last measured them. tests/conftest.py
deals the modules to the xdist workers by these seconds. Every session measures the same sums
(under xdist the controller receives every worker's reports); at its end a module that took far
longer than the profile says, or a heavy one the profile lacks, is named in the summary with the
command that refreshes the profile, so the profile never goes stale silently."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

PROFILE = Path(__file__).with_name("durations.json")
ROOT = PROFILE.parent.parent
WRITE_OPTION = "--write-durations"
# a module is named as stale when it took this many times its profile's seconds and this many
# seconds more: the shares of the hand-out matter, and a busy machine stretches every module
STALE_FACTOR, STALE_MARGIN = 2.0, 30.0


def profile() -> dict[str, float]:
    """Seconds by test module (its path from the repository's root), {} before any profile."""
    return json.loads(PROFILE.read_text()) if PROFILE.exists() else {}


def addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        WRITE_OPTION,
        action="store_true",
        help=f"write the modules' measured seconds to {PROFILE.relative_to(ROOT)}",
    )


class Durations:
    """The plugin: sums each module's report durations, then writes or checks the profile."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.measured: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.measured[report.nodeid.partition("::")[0]] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        worker = hasattr(self.config, "workerinput")  # an xdist worker: the controller writes
        if worker or not self.config.getoption(WRITE_OPTION) or not self.measured:
            return
        # modules this session did not run keep their seconds; modules that are gone go
        kept = {m: s for m, s in profile().items() if (ROOT / m).exists()}
        merged = kept | {m: round(s) for m, s in self.measured.items()}
        ordered = dict(sorted(merged.items(), key=lambda item: (-item[1], item[0])))
        PROFILE.write_text(json.dumps(ordered, indent=1) + "\n")

    def stale(self) -> list[str]:
        known = profile()
        return [
            f"{module}: {seconds:.0f} s (profile: {known.get(module, 0):.0f} s)"
            for module, seconds in sorted(self.measured.items())
            if seconds > STALE_FACTOR * known.get(module, 0) + STALE_MARGIN
        ]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if hasattr(self.config, "workerinput") or self.config.getoption(WRITE_OPTION):
            return
        if stale := self.stale():
            terminalreporter.section("durations profile")
            for line in stale:
                terminalreporter.write_line(line)
            terminalreporter.write_line(
                f"{PROFILE.relative_to(ROOT)} is stale for these: `make test-profile` rewrites it"
            )
