"""The reliability suite's report: every fault-matrix row the session ran, printed as one table at
the end of the run (what was injected, what the run did, whether the source recovered exactly).
Under pytest-xdist each worker sends its rows to the controller, which prints them all; the
hooks are registered by tests/conftest.py, since the controller never loads a sub-folder's
conftest (it collects nothing). The matrix is imported inside the hooks: its module imports
tests.conftest."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from tabulate import tabulate

WORKER_KEY = "fault_matrix"


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.reliability.harness import MATRIX

    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: the controller prints
        output[WORKER_KEY] = [asdict(row) for row in MATRIX.rows.values()]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: known only where xdist is loaded
def pytest_testnodedown(node: Any, error: object) -> None:
    from tests.reliability.harness import MATRIX, MatrixRow

    for row in getattr(node, "workeroutput", {}).get(WORKER_KEY, []):
        MATRIX.record(MatrixRow(**row))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.reliability.harness import MATRIX

    if not MATRIX.rows:
        return
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(tabulate(MATRIX.table(), MATRIX.HEADERS, disable_numparse=True))
    terminalreporter.write_line(MATRIX.summary())
