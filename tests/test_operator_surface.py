"""What an operator sees: `make run` with no settings (one line per source naming every missing
variable, no stack trace), each command line's configuration error (one line, exit 2, never a
traceback), the diagnostics' `not_configured`, the defaults `.env.example` and the README state
(parsed, compared with the code's), the checks' descriptions and thresholds, the marts' column
descriptions (the README's words), a credential check and `source_freshness`'s preview after a
failed load. Simulated: an empty environment (subprocesses get no `.env`: ENV_FILE points away);
the Supabase simulator with a wrong key; the minimal-environment pipeline is the shared loaded
warehouse, which conftest fills with only the variables a user must set."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dagster as dg
import pytest

from assets.columns import COLUMNS
from assets.sources import SOURCES
from checks.diagnostics import NOT_CONFIGURED, Thresholds, report, run_all
from tests.conftest import ROOT, point_env_at, run_job

ENV_EXAMPLE = ROOT / ".env.example"
README = (ROOT / "README.md").read_text(encoding="utf-8")
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example() -> tuple[dict[str, str], set[str]]:
    """({variable: the default a commented line states}, {variables a user must set})."""
    defaults, required = {}, set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line.strip())
        if not match:
            continue
        commented, name, value = match.groups()
        if not commented:
            required.add(name)
        elif value:
            defaults[name] = value
    return defaults, required


def code_defaults() -> dict[str, str]:
    """Every default the code applies, read from where the code keeps it."""
    from api.__main__ import DEFAULT_PORT
    from health.probe import DEFAULT_HEARTBEAT_BOUND, DEFAULT_RUN_FACTOR
    from health.watchdog import STATE_FILE_NAME
    from resources import amocrm, embedded_pg, facebook, settings, telegram

    found = {
        "REPORTING_TZ": settings.DEFAULT_REPORTING_TZ,
        "REPORTING_CURRENCY": settings.DEFAULT_REPORTING_CURRENCY,
        "FX_RATES": settings.DEFAULT_FX_RATES,
        "AMOCRM_MAX_RPS": f"{amocrm.DEFAULT_RATE:g}",
        "FACEBOOK_GRAPH_URL": facebook.DEFAULT_GRAPH_URL,
        "FACEBOOK_API_VERSION": facebook.DEFAULT_API_VERSION,
        "TELEGRAM_API_URL": telegram.DEFAULT_API_URL,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(DEFAULT_PORT),
        "HEALTH_HEARTBEAT_SECONDS": f"{DEFAULT_HEARTBEAT_BOUND.total_seconds():g}",
        "HEALTH_RUN_FACTOR": f"{DEFAULT_RUN_FACTOR:g}",
        "HEALTH_STATE_FILE": f"$DAGSTER_HOME/{STATE_FILE_NAME}",
        "CONTRACT_FILE": "contract.yaml",
        embedded_pg.PORT_VARIABLE: str(embedded_pg.DEFAULT_PORT),
    }
    for name, value in vars(Thresholds()).items():
        found[f"DIAGNOSTICS_{name.upper()}"] = f"{value:g}"
    return found


def test_given_env_example_then_its_defaults_are_the_codes_and_every_source_setting_is_listed():
    defaults, required = env_example()
    assert defaults == code_defaults()
    needed = {name for source in SOURCES for name in required_settings(source)}
    assert needed <= required, needed - required
    from api.__main__ import _parser

    assert _parser().parse_args(["serve"]).host == defaults["API_HOST"]


def required_settings(source: str) -> list[str]:
    """The variables the source's resource cannot load without, whatever is set."""
    from definitions import resources

    resource = resources[source]
    return [resource.variables()[field] for field in resource.REQUIRED]


def test_given_readme_configuration_then_its_defaults_are_the_codes():
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    defaults = code_defaults()
    stated = 0
    for row in rows:
        names, meaning = row.split("|")[1], "|".join(row.split("|")[2:])
        for name in re.findall(r"`([A-Z_]+)`", names):
            if name in defaults and "default" in meaning:
                stated += 1
                assert defaults[name] in meaning, (name, row)
    assert stated >= 6  # REPORTING_TZ, FX_RATES, the two Facebook ones, Telegram, the API's


# (command, the wrong setting, the variable its line must name); `python -m commands.backfill`
# (a colleague's) once it is in the checkout
ENTRY_POINTS = {
    "authorize": (["-m", "resources.amocrm", "authorize", "CODE"], {}, "AMOCRM_BASE_URL"),
    "diagnose": (["-m", "commands.diagnose"], {"REPORTING_TZ": "Mars/Base"}, "REPORTING_TZ"),
    "discover": (["-m", "contract", "discover"], {"CONTRACT_FILE": "/nonexistent/c.yaml"},
                 "CONTRACT_FILE"),
    "backfill": (["-m", "commands.backfill", "facebook", "--from", "2026-09-01"], {}, "FACEBOOK_"),
    "run": (["refresh.py"], {"FX_RATES": "USD=lots"}, "FX_RATES"),
    "api": (["-m", "api", "serve"], {"API_PORT": "eighty"}, "API_PORT"),
    "health": (["-m", "health"], {"HEALTH_RUN_FACTOR": "fast"}, "HEALTH_RUN_FACTOR"),
}  # fmt: skip


def test_given_an_empty_environment_and_a_wrong_setting_when_each_command_runs_then_one_line_exit_2(
    pg_server, dagster_home, tmp_path
):
    from resources import embedded_pg

    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "ENV_FILE": str(tmp_path / "no.env"),  # a developer's .env must not count
        "DAGSTER_HOME": str(dagster_home),
        "WAREHOUSE_URL": embedded_pg.database_uri(pg_server, "warehouse_template"),
        "DAGSTER_PG_URL": os.environ["DAGSTER_PG_URL"],
    }
    commands = {k: v for k, v in ENTRY_POINTS.items()
                if k != "backfill" or (ROOT / "commands" / "backfill.py").exists()}  # fmt: skip
    # side by side: each is mostly Python starting up
    running = {
        name: subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**base, **setting},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (argv, setting, _) in commands.items()
    }  # fmt: skip
    lines = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        said = [line for line in (out + err).splitlines() if line.strip()]
        assert process.returncode == 2, (name, said)
        assert "Traceback" not in out + err, name
        assert len(said) == 1 and commands[name][2] in said[0], (name, said)
        lines[name] = said[0]
    # with nothing set, the line names every variable the source lacks, not only the first
    assert all(n in lines["backfill"] for n in required_settings("facebook")), lines["backfill"]
    first_pair = set(required_settings("amocrm")) - {"AMOCRM_ACCESS_TOKEN"}  # what it fetches
    assert all(n in lines["authorize"] for n in first_pair), lines["authorize"]


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults, required = env_example()
    anon = {f"SUPABASE_{p}_ANON_KEY" for p in ("MAIN", "TRIPWIRE", "TRAFFIC")}
    for name in {*defaults, *required, *anon, "AMOCRM_REFRESH_TOKEN"} - {"WAREHOUSE_URL"}:
        monkeypatch.delenv(name, raising=False)


def test_given_no_settings_when_each_source_runs_then_one_line_each_naming_every_missing_variable(
    monkeypatch, warehouse, dagster_instance, capfd
):
    from commands.runs import run_all

    clear_settings(monkeypatch)
    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url)
    outcome = run_all(dagster_instance, warehouse, models=False)
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert not any(outcome.values())
    assert len(lines) == len(SOURCES), lines
    assert "Traceback" not in out + err and "Stack Trace" not in out + err
    for source, line in zip(SOURCES, lines, strict=True):
        assert "FAILED" in line and "not configured" in line, line
        for name in required_settings(source):
            assert name in line, (name, line)


def test_given_no_settings_then_diagnostics_say_not_configured_never_ok(monkeypatch, warehouse):
    from definitions import resources

    clear_settings(monkeypatch)
    diagnostics = {d.name: d for d in run_all({**resources, "warehouse": warehouse})}
    assert diagnostics["Landing BD Sync"].status == NOT_CONFIGURED
    assert diagnostics["Sales Reconciliation"].status == NOT_CONFIGURED
    facebook = diagnostics["Facebook Token"]
    assert facebook.status == NOT_CONFIGURED
    assert all(n in facebook.message for n in ("FACEBOOK_ACCESS_TOKEN", "FACEBOOK_APP_SECRET"))
    assert [d.name for d in diagnostics.values() if d.status == "ok"] == ["Quarantine"]
    result = report(list(diagnostics.values()))
    assert result["success"] is True
    assert result["data"]["overall_status"] == "warning"
    assert result["data"]["summary"][NOT_CONFIGURED] == len(diagnostics) - 1


def test_given_the_minimal_environment_then_the_documented_defaults_apply(loaded):
    """The loaded warehouse ran without FX_RATES, REPORTING_TZ, REPORTING_CURRENCY: USD spend
    converted with the default rates, every mart equal to the truth computed with them."""
    from sandbox import ground_truth
    from sandbox.truth import MART_COLUMNS

    warehouse, sandbox = loaded
    usd = warehouse.fetch_all(
        "SELECT count(*), count(spend_reporting) FROM core.ad_spend_daily WHERE currency = 'USD'"
    )[0]
    assert usd[0] > 0 and usd[1] == usd[0]  # every USD row converted: 480 per dollar
    table = "marts.targetologist_daily"
    expected = ground_truth.all_marts(sandbox.world)[table]
    actual = warehouse.fetch_all(f"SELECT {MART_COLUMNS[table]} FROM {table} ORDER BY 1, 2")  # noqa: S608
    assert actual == expected


def test_given_each_diagnostic_check_then_its_description_says_what_and_its_thresholds():
    from checks.asset_checks import diagnostic_checks

    descriptions = {}
    for checks in diagnostic_checks:
        for spec in checks.check_specs:
            descriptions[spec.name] = spec.description or ""
    assert len(set(descriptions.values())) == len(descriptions)
    assert "95%" in descriptions["express_course_webhook"]
    assert "50%" in descriptions["express_course_webhook"]
    assert "30 days" in descriptions["facebook_token"] and "7" in descriptions["facebook_token"]
    assert "20%" in descriptions["express_course_sales"]


def test_given_the_readme_contract_then_the_marts_columns_carry_its_words(loaded):
    from assets.metadata import table_metadata

    warehouse, _ = loaded
    section = README.split("## Dashboard contract", 1)[1].split("\n## ", 1)[0]
    for row in (r for r in section.splitlines() if r.startswith("| `")):
        table, _grain, columns = (cell.strip() for cell in row.split("|")[1:4])
        described = COLUMNS[f"marts.{table.strip('`')}"]
        for name, note in re.findall(r"`([a-z_]+)`(?: \(([^)]*(?:\([^)]*\))?[^)]*)\))?", columns):
            assert name in described, (table, name)
            assert note in described[name], (table, name, note)
        schema = table_metadata(warehouse, "marts", table.strip("`"))["dagster/column_schema"]
        assert all(c.description for c in schema.columns), table
    for table in ("core.leads", "core.sales", "core.ad_spend_daily"):
        schema = table_metadata(warehouse, *table.split("."))["dagster/column_schema"]
        assert all(c.description for c in schema.columns), table


def test_given_a_wrong_key_when_the_load_fails_then_the_key_check_and_freshness_say_so(
    monkeypatch, warehouse, shared_sandbox, dagster_instance
):
    point_env_at(monkeypatch, warehouse, shared_sandbox)
    monkeypatch.setenv("SUPABASE_TRIPWIRE_SERVICE_ROLE_KEY", "not-the-key")
    result = run_job(dagster_instance, "refresh_supabase_tripwire")
    assert not result.success
    key = dg.AssetCheckKey(dg.AssetKey(["raw_supabase_tripwire", "tripwire_users"]),
                           "supabase_tripwire_key")  # fmt: skip
    record = dagster_instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
    assert not evaluation.passed
    assert "Invalid API key" in (evaluation.description or "")
    freshness = dagster_instance.get_latest_materialization_event(
        dg.AssetKey(["marts", "source_freshness"])
    )
    preview = freshness.asset_materialization.metadata["preview"].value  # type: ignore[union-attr]
    assert re.search(r"supabase_tripwire .*\| error", preview), preview
