"""What of deploy/ can be checked without Docker or Kubernetes: `python -m deploy.check [--strict]`.

- every YAML file under deploy/ loads (all documents);
- deploy/helm/instance.yaml (what the chart renders from values.yaml) parses with Dagster's own
  instance loader, and each configurable class in it (storage, run launcher, ...) accepts its
  config under its own schema: classes whose package is not installed are reported as not
  checked (dagster-k8s is in the image's `deploy` group, not the dev venv), an error with
  --strict (`make deploy-check` runs this inside the image's install, where it is there);
- the rendering agrees with values.yaml where they say the same thing (run queue, retention,
  storage, the run pods' secrets).
One line per finding; exit 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
VALUES = DEPLOY / "helm" / "values.yaml"
INSTANCE = DEPLOY / "helm" / "instance.yaml"
# what the chart's pods have in their environment (the ConfigMap and Secret names it creates)
CHART_ENV = {
    "DAGSTER_PG_PASSWORD": "from-the-secret",
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "traffic-warehouse-dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "traffic-warehouse-dagster-pg",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "traffic-warehouse-dagster-pipeline-env",
}


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


@contextmanager
def chart_environment() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in CHART_ENV}
    os.environ.update(CHART_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def instance_ref(path: Path = INSTANCE) -> Any:
    """Dagster's InstanceRef of the config: its loader validates the sections and resolves each
    configurable class's module path (the chart's legacy `dagster.core...` ones included)."""
    from dagster._core.instance.ref import InstanceRef

    with tempfile.TemporaryDirectory() as home, chart_environment():
        shutil.copyfile(path, Path(home) / "dagster.yaml")
        return InstanceRef.from_dir(home)


def class_config_problems(ref: Any) -> tuple[list[str], list[str]]:
    """(problems, not checked): each configurable class's config under the class's own schema."""
    from dagster._config import process_config
    from dagster._serdes.config_class import ConfigurableClassData

    problems: list[str] = []
    unchecked: list[str] = []
    with chart_environment():
        for field, data in ref._asdict().items():
            if not isinstance(data, ConfigurableClassData):
                continue
            name = f"{field.removesuffix('_data')} ({data.module_name}.{data.class_name})"
            try:
                klass = getattr(importlib.import_module(data.module_name), data.class_name)
            except ImportError as exc:
                unchecked.append(f"{name}: not installed here ({exc.name})")
                continue
            result = process_config(klass.config_type(), yaml.safe_load(data.config_yaml) or {})
            if not result.success:
                problems.extend(f"{name}: {error.message}" for error in result.errors or [])
    return problems, unchecked


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def values_mismatches(values: dict[str, Any], instance: dict[str, Any]) -> list[str]:
    """Where instance.yaml says something values.yaml also says, they must agree."""
    out = []
    runs = values["concurrency"]["runs"]
    rendered_runs = instance["concurrency"]["runs"]
    if runs["maxConcurrentRuns"] != rendered_runs["max_concurrent_runs"]:
        out.append("concurrency.runs.maxConcurrentRuns differs from the rendering")
    if runs["tagConcurrencyLimits"] != rendered_runs["tag_concurrency_limits"]:
        out.append("concurrency.runs.tagConcurrencyLimits differs from the rendering")
    for kind, days in values["retention"].items():
        if kind != "enabled" and instance["retention"][_snake(kind)] != {
            "purge_after_days": days["purgeAfterDays"]
        }:
            out.append(f"retention.{kind} differs from the rendering")
    pg = values["postgresql"]
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        db = instance[section]["config"]["postgres_db"]
        expected = {
            "username": pg["postgresqlUsername"],
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg["postgresqlParams"],
            "scheme": pg["postgresqlScheme"],
        }
        if {k: db.get(k) for k in expected} != expected:
            out.append(f"{section}: postgres_db differs from values.yaml's postgresql")
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    secrets = [s["name"] for s in launcher["envSecrets"]]
    if instance["run_launcher"]["config"].get("env_secrets") != secrets:
        out.append("run_launcher.env_secrets differs from runLauncher's envSecrets")
    if values["dagsterDaemon"]["runCoordinator"]["enabled"] and "run_coordinator" in instance:
        out.append("run_coordinator: the legacy module path is rendered")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.check", description=__doc__)
    parser.add_argument("--strict", action="store_true", help="a class not installed fails")
    args = parser.parse_args(argv)
    failed = False
    for path in yaml_files():
        try:
            docs = load_all(path)
            print(f"ok      {path.relative_to(DEPLOY.parent)}: {len(docs)} document(s)")
        except yaml.YAMLError as exc:
            print(f"FAILED  {path.relative_to(DEPLOY.parent)}: {exc}")
            failed = True
    ref = instance_ref()
    print(f"ok      {INSTANCE.relative_to(DEPLOY.parent)}: Dagster's instance loader accepts it")
    problems, unchecked = class_config_problems(ref)
    for line in problems:
        print(f"FAILED  {line}")
    for line in unchecked:
        print(f"{'FAILED' if args.strict else 'skipped'} {line}")
    mismatches = values_mismatches(load_all(VALUES)[0], yaml.safe_load(INSTANCE.read_text()))
    for line in mismatches:
        print(f"FAILED  {line}")
    if not (problems or mismatches):
        checked = "every" if not unchecked else "every installed"
        print(f"ok      {checked} configurable class accepts its config; values.yaml agrees")
    failed = failed or bool(problems or mismatches or (unchecked and args.strict))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
