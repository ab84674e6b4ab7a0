"""The embedded server from a data dir named relative to the working directory (as in
TEST_PGDATA=.local/x): the server runs inside its data dir, so every path it is given must be
absolute or its socket lock cannot be created."""

from __future__ import annotations

import psycopg
import pytest

from resources import embedded_pg
from sandbox.server import free_port


def test_given_a_relative_data_dir_when_started_stopped_and_started_then_it_serves(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pgdata = tmp_path / "relative"
    try:
        for _ in range(2):
            uri = embedded_pg.start(pgdata.relative_to(tmp_path), databases=(), port=free_port())
            with psycopg.connect(uri) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            embedded_pg.stop(pgdata)
    finally:
        embedded_pg.stop(pgdata)
