"""The reliability suite's report: every fault-matrix row the session ran, printed as one table at
the end of the run (what was injected, what the run did, whether the source recovered exactly),
and the crash tests' kills (survived, rows lost, rows duplicated).
Under pytest-xdist each worker sends its rows and kills to the controller, which prints them; the
hooks are registered by tests/conftest.py, since the controller never loads a sub-folder's
conftest (it collects nothing). The matrix is imported inside the hooks: its module imports
tests.conftest."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from tabulate import tabulate

WORKER_KEY, CRASHES_KEY = "fault_matrix", "crash_consistency"
RECOVERIES_KEY = "fault_matrix_recoveries"


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.reliability.harness import CRASHES, MATRIX

    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: the controller prints
        output[WORKER_KEY] = [asdict(row) for row in MATRIX.rows.values()]
        output[RECOVERIES_KEY] = MATRIX.recoveries
        output[CRASHES_KEY] = asdict(CRASHES)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: known only where xdist is loaded
def pytest_testnodedown(node: Any, error: object) -> None:
    from tests.reliability.harness import CRASHES, MATRIX, MatrixRow

    output = getattr(node, "workeroutput", {})
    for row in output.get(WORKER_KEY, []):
        MATRIX.record(MatrixRow(**row))
    MATRIX.recoveries.update(output.get(RECOVERIES_KEY, {}))
    CRASHES.merge(output.get(CRASHES_KEY))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.reliability.harness import CRASHES, MATRIX

    if MATRIX.rows:
        terminalreporter.section("fault matrix")
        table = tabulate(MATRIX.table(), MATRIX.HEADERS, disable_numparse=True)
        terminalreporter.write_line(table)
        terminalreporter.write_line(MATRIX.summary())
    if CRASHES.kills:
        terminalreporter.section("crash consistency")
        for name, problems in CRASHES.failed():
            terminalreporter.write_line(f"{name}: {'; '.join(problems)}")
        terminalreporter.write_line(CRASHES.summary())
