"""The reliability suite's report: every fault-matrix row the session ran, printed as one table at
the end of the run (what was injected, what the run did, whether the source recovered exactly)."""

from __future__ import annotations

import pytest
from tabulate import tabulate

from tests.reliability.harness import MATRIX


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not MATRIX.rows:
        return
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(tabulate(MATRIX.table(), MATRIX.HEADERS, disable_numparse=True))
    terminalreporter.write_line(MATRIX.summary())
