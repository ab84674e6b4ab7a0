"""The Definitions: they load with no environment at all and make no network or database call at
import; `dagster definitions validate` accepts them; the schedule and automation are as designed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent

NO_IO_IMPORT = """
import socket, psycopg, httpx
def refuse(*a, **k):
    raise AssertionError("I/O at import time")
socket.socket.connect = refuse
psycopg.connect = refuse
httpx.Client.send = refuse
import definitions
print(len(list(definitions.defs.resolve_all_asset_keys())))
"""


def clean_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_given_no_environment_when_definitions_imported_then_no_io_happens():
    out = subprocess.run(
        [sys.executable, "-c", NO_IO_IMPORT],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout.strip()) >= 11


def test_dagster_definitions_validate_accepts_the_project(dagster_home: Path):
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "definitions",
        ],
        cwd=ROOT,
        env={
            **clean_env(),
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_URL": os.environ["DAGSTER_PG_URL"],
        },
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_make_settings_lists_every_resource_with_its_variables_never_a_value(tmp_path: Path):
    """`make settings`: one line per resource; here one variable set (its value not shown), the
    rest unset, and no settings file."""
    from definitions import resources
    from resources.settings import bound_variables

    secret = "Zq7settingsNeverShown"
    env = {**clean_env(), "ENV_FILE": str(tmp_path / "absent.env"), "AMOCRM_CLIENT_SECRET": secret}
    out = subprocess.run([sys.executable, "-m", "commands.settings"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    lines = out.stdout.splitlines()
    assert len(lines) == len(resources) and secret not in out.stdout + out.stderr
    for (key, resource), line in zip(resources.items(), lines, strict=True):
        variables = list(bound_variables(resource).values())
        stands_in = " (the embedded PostgreSQL stands in)"
        unset = ", ".join(v + (stands_in if v == "WAREHOUSE_URL" else "")
                          for v in variables if v != "AMOCRM_CLIENT_SECRET")  # fmt: skip
        assert line == (f"Resource {key} ({type(resource).__name__}) reads "
                        f"{', '.join(variables)}; unset: {unset}."), line  # fmt: skip


def test_hourly_schedule_runs_each_source_apart_and_models_follow_by_automation():
    from definitions import defs

    schedule = defs.resolve_schedule_def("hourly_refresh")
    assert schedule.cron_schedule == "5 * * * *"
    assert schedule.execution_timezone == "Asia/Almaty"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=__import__("datetime").datetime(2026, 11, 1, 10, 5)
    )
    requests = schedule.evaluate_tick(context).run_requests or []
    assert sorted(r.tags["source"] for r in requests) == [
        "amocrm",
        "facebook",
        "supabase_main",
        "supabase_traffic",
        "supabase_tripwire",
    ]
    graph = defs.resolve_asset_graph()
    for key in (dg.AssetKey(["core", "leads"]), dg.AssetKey(["marts", "leads_total"])):
        assert graph.get(key).automation_condition is not None
    raw = dg.AssetKey(["raw_supabase_main", "landing_leads"])
    assert graph.get(raw).automation_condition is None
    assert defs.resolve_job_def("refresh_supabase_main").executor_def.name == "in_process"
