"""deploy/ without Docker or Kubernetes: every manifest and values file loads as YAML; the
instance the Helm chart renders (deploy/helm/instance.yaml) parses with Dagster's own loader,
its classes accept their config (all but dagster-k8s's run launcher, which only the image
installs: `make deploy-check` checks it there) and it agrees with deploy/helm/values.yaml; the
image's install step is valid shell; run retention deletes old finished runs and their event
logs but keeps every asset's latest materialization. Simulated: a temporary Dagster instance."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import dagster as dg
import yaml

from deploy import check, retention
from tests.conftest import ROOT


def test_given_deploy_folder_then_every_yaml_file_loads():
    files = check.yaml_files()
    names = {p.relative_to(ROOT / "deploy").as_posix() for p in files}
    assert {"helm/values.yaml", "helm/instance.yaml", "kubernetes/external-secrets.yaml",
            "kubernetes/run-retention-cronjob.yaml"} <= names  # fmt: skip
    for path in files:
        assert check.load_all(path), path


def test_given_chart_rendering_then_dagsters_loader_accepts_it_and_values_agree():
    ref = check.instance_ref()
    assert ref.run_launcher_data.class_name == "K8sRunLauncher"
    assert ref.run_storage_data.class_name == "PostgresRunStorage"
    assert ref.event_storage_data.class_name == "PostgresEventLogStorage"
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"  # the default
    problems, unchecked = check.class_config_problems(ref)
    assert problems == []
    assert all("dagster_k8s" in line for line in unchecked), unchecked

    values = check.load_all(check.VALUES)[0]
    rendered = yaml.safe_load(check.INSTANCE.read_text())
    assert check.values_mismatches(values, rendered) == []
    assert "run_coordinator" not in rendered  # no legacy module path
    # the same run queue as the local instance
    local = yaml.safe_load((ROOT / "instance" / "dagster.yaml").read_text())
    assert rendered["concurrency"] == local["concurrency"]


def test_given_values_then_secrets_come_from_the_cluster_store_never_the_values():
    values_text = check.VALUES.read_text()
    for needle in ("postgresqlPassword", "TOKEN", "SECRET=", "password:"):
        assert needle not in values_text, needle
    secrets = check.load_all(ROOT / "deploy" / "kubernetes" / "external-secrets.yaml")
    assert {s["spec"]["target"]["name"] for s in secrets} == {
        "traffic-warehouse-env",
        "traffic-warehouse-dagster-pg",
    }


def test_given_image_install_step_then_it_is_valid_shell():
    for script in ("deploy/image/install.sh", "deploy/systemd/install.sh"):
        result = subprocess.run(["sh", "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@dg.asset
def retained() -> int:
    return 1


@dg.asset
def broken() -> int:
    raise RuntimeError("a failed run")


def test_given_old_runs_when_retention_purges_then_latest_materialization_is_kept():
    with dg.instance_for_test() as instance:
        first = dg.materialize([retained], instance=instance).run_id
        second = dg.materialize([retained], instance=instance).run_id
        failed = dg.materialize([broken], instance=instance, raise_on_error=False).run_id
        assert len(instance.get_run_ids()) == 3
        # nothing is old enough yet
        assert retention.purge(instance, days=90) == (0, 0)
        later = datetime.now(UTC) + timedelta(days=91)
        assert retention.purge(instance, days=90, now=later, dry_run=True) == (2, 1)
        assert len(instance.get_run_ids()) == 3
        assert retention.purge(instance, days=90, now=later) == (2, 1)
        assert instance.get_run_ids() == [second]
        assert not instance.all_logs(first) and not instance.all_logs(failed)
        latest = instance.get_latest_materialization_event(dg.AssetKey("retained"))
        assert latest is not None and latest.run_id == second
