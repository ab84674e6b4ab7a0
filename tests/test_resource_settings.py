"""Resources declare their settings as fields bound to variables, so Dagster (the UI's resources
page, `dagster definitions validate`) shows what each reads; a missing or bad one is one line."""

import pytest

from resources.amocrm import AmoCrmResource
from resources.errors import ConfigError
from resources.facebook import FacebookResource
from resources.settings import SettingsResource
from resources.supabase import SupabaseResource
from resources.telegram import TelegramResource

# every variable .env.example documents for a vendor, by the resource that reads it
EXPECTED = {
    "amocrm": {"AMOCRM_BASE_URL", "AMOCRM_CLIENT_ID", "AMOCRM_CLIENT_SECRET", "AMOCRM_REDIRECT_URI",
               "AMOCRM_ACCESS_TOKEN", "AMOCRM_REFRESH_TOKEN", "AMOCRM_MAX_RPS"},
    "facebook": {"FACEBOOK_ACCESS_TOKEN", "FACEBOOK_AD_ACCOUNT_IDS", "FACEBOOK_APP_ID",
                 "FACEBOOK_APP_SECRET", "FACEBOOK_GRAPH_URL", "FACEBOOK_API_VERSION"},
    "telegram": {"TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "TELEGRAM_API_URL"},
    **{f"supabase_{p}": {f"SUPABASE_{p.upper()}_{s}" for s in (
        "URL", "SERVICE_ROLE_KEY", "SECRET_KEY", "ANON_KEY", "PUBLISHABLE_KEY", "DB_URL")}
       for p in ("main", "tripwire", "traffic")},
    "warehouse": {"WAREHOUSE_URL"},
}  # fmt: skip


def test_every_resource_lists_its_settings_as_bound_variables():
    """The repository snapshot is what the UI's resources page shows (and what `dagster
    definitions validate` builds): every setting is an env var there, by name, never a value."""
    from dagster._core.remote_representation.external_data import (
        RepositorySnap,
        ResourceConfigEnvVarSnap,
    )

    from definitions import defs, resources

    snap = RepositorySnap.from_def(defs.get_repository_def())
    shown = {
        r.name: {
            v.name for v in r.configured_values.values() if isinstance(v, ResourceConfigEnvVarSnap)
        }
        for r in snap.resources or []
    }
    assert {k: v for k, v in shown.items() if v} == EXPECTED
    assert set(defs.resources or {}) == set(resources)
    for key, resource in resources.items():
        if isinstance(resource, SettingsResource):  # the messages name what Dagster binds
            assert set(resource.variables().values()) == EXPECTED[key]


@pytest.mark.parametrize(
    ("resource", "use", "unset", "expected"),
    [
        (FacebookResource, lambda r: r.open(), "FACEBOOK_ACCESS_TOKEN",
         "Facebook: FACEBOOK_ACCESS_TOKEN is not set (a system-user or long-lived user token "
         "with ads_read)."),
        (FacebookResource, lambda r: r.accounts(), "FACEBOOK_AD_ACCOUNT_IDS",
         "Facebook: FACEBOOK_AD_ACCOUNT_IDS is not set (a comma list of ad account ids, e.g. "
         "act_123,act_456)."),
        (TelegramResource, lambda r: r.send("x"), "TELEGRAM_BOT_TOKEN",
         "Telegram: TELEGRAM_BOT_TOKEN is not set (the bot's token from @BotFather)."),
        (AmoCrmResource, lambda r: r.open(None, None), "AMOCRM_BASE_URL",
         "AmoCRM: AMOCRM_BASE_URL is not set (https://SUBDOMAIN.amocrm.ru)."),
    ],
)  # fmt: skip
def test_given_a_blank_setting_then_its_first_use_is_one_line(
    monkeypatch, resource, use, unset, expected
):
    monkeypatch.setenv(unset, " ")
    with pytest.raises(ConfigError) as caught:
        use(resource(**resource.bound()))
    assert caught.value.message == expected


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AMOCRM_MAX_RPS", "fast",
         "AmoCRM: AMOCRM_MAX_RPS must be a positive number (got 'fast')."),
        ("AMOCRM_BASE_URL", "amocrm.ru", "AmoCRM: AMOCRM_BASE_URL must start with https:// (got "
         "'amocrm.ru')."),
    ],
)  # fmt: skip
def test_given_a_bad_amocrm_setting_then_one_line(monkeypatch, variable, value, expected):
    monkeypatch.setenv("AMOCRM_BASE_URL", "https://x.amocrm.ru")
    monkeypatch.setenv(variable, value)
    config = AmoCrmResource(**AmoCrmResource.bound())
    with pytest.raises(ConfigError) as caught:
        config.rate() if variable == "AMOCRM_MAX_RPS" else config.open(None, None)  # type: ignore[arg-type]
    assert caught.value.message == expected


def test_given_unset_facebook_settings_when_its_job_runs_then_steps_fail_with_the_one_line(
    monkeypatch, warehouse, dagster_instance
):
    """In a run, Dagster resolves the bound fields (an unset variable is declared blank, so
    Dagster's own config error for the whole run never replaces ours) and each step fails with
    the resource's sentence alone."""
    from assets.jobs import source_job_name
    from tests.conftest import run_job, step_failures

    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("FACEBOOK_AD_ACCOUNT_IDS", "act_1")
    monkeypatch.delenv("FACEBOOK_ACCESS_TOKEN", raising=False)
    result = run_job(dagster_instance, source_job_name("facebook"))
    failures = step_failures(result)
    assert not result.success and failures
    expected = ("Facebook: FACEBOOK_ACCESS_TOKEN is not set (a system-user or long-lived user "
                "token with ads_read).")  # fmt: skip
    assert set(failures.values()) == {expected}, failures


def test_a_supabase_resource_names_its_own_projects_variables(monkeypatch):
    from resources.supabase import supabase_resource

    project: SupabaseResource = supabase_resource("Tripwire", "SUPABASE_TRIPWIRE")
    monkeypatch.setenv("SUPABASE_TRIPWIRE_URL", "")
    monkeypatch.delenv("SUPABASE_TRIPWIRE_DB_URL", raising=False)
    with pytest.raises(ConfigError) as caught, project.open():
        pass
    assert caught.value.message.startswith("Supabase Tripwire: SUPABASE_TRIPWIRE_URL is not set")


def test_given_a_launchpad_config_naming_one_field_then_the_others_keep_their_bindings(
    monkeypatch,
):
    """The Definitions' resources are configured at launch: a run config (the launchpad's, the
    reliability harness's) sets the fields it names and the bindings give the rest. A resource
    configured in full would take the run config as its whole config, its credentials blank."""
    import dagster as dg

    from definitions import defs, resources

    monkeypatch.setenv("AMOCRM_BASE_URL", "https://x.amocrm.ru")
    config = {"amocrm": {"config": {"timeout_seconds": 1.0}}}
    with dg.build_resources(
        {"amocrm": (defs.resources or {})["amocrm"]}, resource_config=config
    ) as built:
        assert (built.amocrm.base_url, built.amocrm.timeout_seconds) == ("https://x.amocrm.ru", 1.0)
    with dg.build_resources({"amocrm": resources["amocrm"]}, resource_config=config) as built:
        assert built.amocrm.base_url is None  # the trap configure_at_launch avoids
