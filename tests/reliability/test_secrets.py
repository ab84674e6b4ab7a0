"""Secrets: a distinctive fake value in every secret variable (the Supabase keys, AmoCRM's client
secret and first token pair, Facebook's token and app secret, the Telegram bot token, the
dashboard reader's password), which the sandbox accepts; `make run`'s refresh (refresh.py, a
process of its own) with faults (an expired AmoCRM token, so the pair rotates; Facebook refusing
its token; Supabase Traffic refusing its key), then the alert sensor's Telegram messages. Then
a scan of everything they could have reached: the refresh's stdout and stderr, every text of
every table of the Dagster database (event log, runs, everything) and of the warehouse but
`ops.oauth_tokens` (and `ops.api_tokens`' hashes), the files under `.local/` (the run's
DAGSTER_HOME is there; PostgreSQL's data files are not read, its log is) and PostgreSQL's own
server log. Zero hits of any secret (nor of the marker every fake secret carries, which a
truncated one would still show), and AmoCRM's rotated pair nowhere but in its table; nor in any
request line (URL path and query) a simulator received.

A positive control proves the scan sees each place: a canary planted in the Traffic refusal's
hint travels the paths a leaked secret would (the printed line, the event log, the warehouse);
one written to a file under `.local/` and one in a statement PostgreSQL logs; the scan must find
it in every place before its zero counts mean anything."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from resources import embedded_pg
from sandbox.stack import SUPABASE_PROJECTS, Sandbox
from tests.conftest import FAST_SANDBOX, ROOT, TEST_PGDATA, own_dagster_instance, point_env_at
from tests.reliability.harness import SMALL_SCALE
from tests.test_alerts import Ticker

MARK = "Zq7SCANME"  # in every fake secret: a prefix or a truncation would show it too
CANARY = "Zq7CANARY-positive-control"
SECRETS = {
    **{f"SUPABASE_{p.upper()}_SERVICE_ROLE_KEY": f"sb_secret_{MARK}{p}Srk9f31"
       for p in SUPABASE_PROJECTS},
    **{f"SUPABASE_{p.upper()}_ANON_KEY": f"sb_publishable_{MARK}{p}Anon2c7"
       for p in SUPABASE_PROJECTS},
    "AMOCRM_CLIENT_SECRET": f"{MARK}amoClientSecret41",
    "AMOCRM_ACCESS_TOKEN": f"{MARK}amoAccess88",
    "AMOCRM_REFRESH_TOKEN": f"{MARK}amoRefresh77",
    "FACEBOOK_ACCESS_TOKEN": f"EAA{MARK}fbToken55",
    "FACEBOOK_APP_SECRET": f"{MARK}fbAppSecret66",
    "TELEGRAM_BOT_TOKEN": f"424242:{MARK}tgBot33",
    "DASHBOARD_READER_PASSWORD": f"{MARK}readerPw22",
}  # fmt: skip
# the tables that hold secrets by design (the pair itself; salted hashes of API tokens)
HOLDERS = {("ops", "oauth_tokens"), ("ops", "api_tokens")}
# PostgreSQL's own files in a data dir: table and WAL pages (the holders' rows are in them)
DATA_FILES = {"base", "global", "pg_wal", "pg_xact", "pg_multixact", "pg_subtrans", "pg_stat",
              "pg_stat_tmp", "pg_commit_ts", "pg_logical", "pg_replslot", "pg_snapshots",
              "pg_serial", "pg_twophase", "pg_notify", "pg_dynshmem", "pg_tblspc"}  # fmt: skip


def accepting(sandbox: Sandbox) -> Sandbox:
    """The sandbox, before it starts, told to accept the fake secrets instead of its own."""
    sandbox.fb_token = SECRETS["FACEBOOK_ACCESS_TOKEN"]
    sandbox.facebook_app["app_secret"] = SECRETS["FACEBOOK_APP_SECRET"]
    sandbox.amocrm_client["client_secret"] = SECRETS["AMOCRM_CLIENT_SECRET"]
    sandbox.amocrm_pair = (SECRETS["AMOCRM_ACCESS_TOKEN"], SECRETS["AMOCRM_REFRESH_TOKEN"])
    sandbox.telegram_token = SECRETS["TELEGRAM_BOT_TOKEN"]
    for project in SUPABASE_PROJECTS:
        prefix = f"SUPABASE_{project.upper()}"
        sandbox.keys[project]["scan_secret"] = SECRETS[f"{prefix}_SERVICE_ROLE_KEY"]
        sandbox.keys[project]["scan_publishable"] = SECRETS[f"{prefix}_ANON_KEY"]
    return sandbox


def table_texts(dsn: str, skip: set[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """(table, the text of one row) for every row of every table of the database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type ="
            " 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, name in tables:
            if (schema, name) in skip:
                continue
            query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, name))
            for (text,) in conn.execute(query):
                yield f"{schema}.{name}", text


def local_files(root: Path) -> Iterator[tuple[str, str]]:
    """(path, text) of every file under `root`, PostgreSQL's data files aside (its log stays).
    Other xdist workers' servers create and drop databases while we walk, so a directory gone
    between listing and reading is skipped (os.walk's default), as is a file gone."""
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in DATA_FILES | {".venv", "uv"})
        for name in sorted(files):
            path = Path(top) / name
            try:
                yield str(path), path.read_bytes().decode("utf-8", "replace")
            except OSError:  # a socket or a file gone while we walk
                continue


def hits(places: dict[str, Iterator[tuple[str, str]]], needles: list[str]) -> dict[str, set[str]]:
    """{place: the sub-places (tables, files) where a needle occurs}; every place read whole."""
    found: dict[str, set[str]] = {place: set() for place in places}
    for place, texts in places.items():
        for where, text in texts:
            if any(needle in text for needle in needles):
                found[place].add(where)
    return found


@pytest.fixture
def scanned_world(
    pg_server: str, warehouse_template: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Sandbox, str, Path, dg.DagsterInstance]]:
    name = "secrets_scan"
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=warehouse_template)
    url = embedded_pg.database_uri(pg_server, name)
    home = ROOT / ".local" / "secrets_scan_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    options = {**FAST_SANDBOX, "scale": SMALL_SCALE}
    sandbox = accepting(Sandbox(pg_server, prefix=name, **options))
    from resources.warehouse import WarehouseResource, engine_for

    try:
        with sandbox:
            point_env_at(monkeypatch, WarehouseResource(url=url), sandbox)
            for variable, value in SECRETS.items():
                monkeypatch.setenv(variable, value)
            with own_dagster_instance(pg_server, home, monkeypatch, "dagster_secrets") as instance:
                yield sandbox, url, home, instance
    finally:
        engine_for(url).dispose()
        embedded_pg.drop_database(pg_server, name)
        shutil.rmtree(home, ignore_errors=True)


def test_given_fake_secrets_everywhere_when_refreshed_with_faults_then_found_nowhere(
    pg_server: str, scanned_world: tuple[Sandbox, str, Path, dg.DagsterInstance]
) -> None:
    sandbox, url, home, instance = scanned_world
    sandbox.amocrm.expire_access_tokens()  # the first pair answers 401: the run rotates it
    sandbox.servers["facebook"].faults.add(
        r"/v25\.0/act_\d+/insights", status=400, times=-1,
        body={"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException", "code": 190}},
    )  # fmt: skip
    sandbox.servers["supabase_traffic"].faults.add(
        r"/rest/v1/.*", status=401, times=-1, body={"message": "Invalid API key", "hint": CANARY}
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "refresh.py"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # Facebook and Traffic failed
    assert re.search(r"^ +amocrm +ok ", done.stdout, re.MULTILINE), done.stdout
    Ticker(instance).tick()  # the alerts: failed runs and checks, through the bot's URL
    assert sandbox.telegram.messages
    (home / "canary.txt").write_text(f"planted: {CANARY}\n")
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute(sql.SQL("SELECT {}::int").format(sql.Literal(CANARY)))  # logged by the server
    pair = psycopg.connect(url).execute("SELECT access_token, refresh_token FROM ops.oauth_tokens")
    rotated = [t for t in pair.fetchone() or () if t]
    assert rotated and SECRETS["AMOCRM_REFRESH_TOKEN"] not in rotated  # it rotated

    dagster_dsn = embedded_pg.database_uri(pg_server, "dagster_secrets")
    server_log = TEST_PGDATA / "log"

    def places() -> dict[str, Iterator[tuple[str, str]]]:
        return {
            "stdout and stderr": iter([("refresh.py", done.stdout + done.stderr)]),
            "Dagster database": table_texts(dagster_dsn, set()),
            "warehouse": table_texts(url, HOLDERS),
            ".local/ files": local_files(ROOT / ".local"),
            "PostgreSQL's server log": iter(
                [(str(server_log), server_log.read_text("utf-8", "replace"))]
            ),
        }

    control = hits(places(), [CANARY])
    assert all(control.values()), control  # every place read, the canary found in each
    leaks = hits(places(), [*SECRETS.values(), MARK, *rotated])
    assert leaks == {place: set() for place in leaks}, leaks
    assert request_lines_with_secrets(sandbox, [*SECRETS.values(), MARK, *rotated]) == []


def request_lines_with_secrets(sandbox: Sandbox, secrets: list[str]) -> list[str]:
    """Every request line (path and query) a simulator received that holds a secret, but the bot
    token in Telegram's path: the Bot API takes it nowhere else (`/bot<token>/sendMessage`)."""
    bot_path = f"/bot{SECRETS['TELEGRAM_BOT_TOKEN']}/"
    lines = [
        f"{name}: {r.method} {r.path.replace(bot_path, '/bot…/') if name == 'telegram' else r.path}"
        f"?{r.query}"
        for name, server in sandbox.servers.items()
        for r in server.requests
    ]
    assert any("debug_token" in line for line in lines)  # the token's own check was asked
    return [line for line in lines if any(secret in line for secret in secrets)]
