"""The contract's `amocrm:` section end to end: course pipelines by name or by id resolved against
the pipelines the AmoCRM load stores (the same core.sales and marts as the sandbox's truth),
contract mistakes as one sentence instead of a SQL error, UTM custom fields by code, name or id,
and discovery (pipelines, statuses, lead custom fields) against the sandbox's AmoCRM simulator.
Variations are temporary contract files named by CONTRACT_FILE; real PostgreSQL throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import resources.amocrm
from assets.jobs import SOURCES, source_job_name
from checks.diagnostics import Thresholds, reconciliation, webhook
from contract.amocrm import (
    check_amocrm,
    discover_amocrm,
    propose_amocrm,
    render_amocrm,
    resolve_pipeline,
    resolve_pipelines,
)
from contract.amocrm_records import CustomField, CustomFieldValue, utm_values
from contract.config import AmoCrmEntry, ContractError, load_contract
from resources.amocrm import AmoCrmResource
from sandbox.amocrm import LEAD_FIELDS, PIPELINES, UTM_FIELD_IDS
from sandbox.truth import compare_amocrm, compare_marts
from sandbox.world import EXPRESS_PIPELINE, FLAGSHIP_PIPELINE
from tests.conftest import ROOT, point_env_at, run_job, step_failures

SEEN = "7001001 Express, 7001002 Flagship, 7001900 Старая воронка, 7001901 Тест"
BY_CODE = {name: name.upper() for name in UTM_FIELD_IDS}


@pytest.fixture
def env(monkeypatch, warehouse, fresh_sandbox):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return warehouse, fresh_sandbox


def with_contract(monkeypatch, tmp_path: Path, amocrm: dict | None) -> Path:
    """The shipped contract with its `amocrm:` section replaced (None: removed)."""
    document = yaml.safe_load((ROOT / "contract.yaml").read_text(encoding="utf-8"))
    document.pop("amocrm", None)
    if amocrm is not None:
        document["amocrm"] = amocrm
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("CONTRACT_FILE", str(path))
    return path


def run(instance, *jobs: str) -> None:
    for job in jobs:
        result = run_job(instance, job)
        assert result.success, step_failures(result)


def load_sources(instance) -> None:
    run(instance, *(source_job_name(s) for s in SOURCES))


def sales(warehouse) -> list[tuple]:
    return warehouse.fetch_all("SELECT * FROM core.sales ORDER BY sale_key")


# ---- pipelines --------------------------------------------------------------------------------


def test_given_pipelines_by_name_or_by_id_when_built_then_same_sales_and_marts_equal_truth(
    env, dagster_instance, monkeypatch, tmp_path
):
    warehouse, sandbox = env
    assert load_contract().amocrm.pipelines == {"express": "Express", "flagship": "Flagship"}
    load_sources(dagster_instance)
    run(dagster_instance, "rebuild_models")
    assert compare_marts(warehouse, sandbox.world) == []
    by_name = sales(warehouse)
    by_id = {"express": EXPRESS_PIPELINE, "flagship": FLAGSHIP_PIPELINE}
    with_contract(monkeypatch, tmp_path, {"pipelines": by_id})
    run(dagster_instance, "full_rebuild_models")
    assert sales(warehouse) == by_name
    assert compare_marts(warehouse, sandbox.world) == []


@pytest.mark.parametrize(
    ("pipelines", "sentence"),
    [
        (
            {"express": "Express", "flagship": "Flagshp"},
            "contract.yaml: amocrm.pipelines.flagship is 'Flagshp', but no AmoCRM pipeline has "
            f"that name (seen: {SEEN}); write the pipeline's id or exact name.",
        ),
        (
            None,
            "contract.yaml: amocrm.pipelines.express is not set; write the id or name of the "
            "Express course pipeline (make discover lists them).",
        ),
    ],
    ids=["misspelt_name", "not_set"],
)
def test_given_a_pipeline_that_does_not_resolve_when_built_then_one_sentence_sources_still_load(
    env, dagster_instance, monkeypatch, tmp_path, pipelines, sentence
):
    warehouse, _ = env
    path = with_contract(monkeypatch, tmp_path, None if pipelines is None else
                         {"pipelines": pipelines})  # fmt: skip
    load_sources(dagster_instance)
    result = run_job(dagster_instance, "rebuild_models")
    failures = step_failures(result)
    shown = sentence.replace("contract.yaml", str(path))
    assert {step for step in failures} == {"core__leads", "core__sales"}
    assert all(message.endswith(shown) for message in failures.values()), failures
    assert not any("operator does not exist" in message for message in failures.values())
    built = {r[0] for r in warehouse.fetch_all("SELECT model FROM ops.model_builds")}
    assert {"core.ad_spend_daily", "marts.source_freshness"} <= built
    assert warehouse.fetch_all("SELECT count(*) FROM raw_amocrm.leads")[0][0] > 0


def test_given_amocrm_never_loaded_then_a_name_waits_for_the_load_and_an_id_is_taken(warehouse):
    path = ROOT / "contract.yaml"
    with pytest.raises(ContractError) as caught:
        resolve_pipelines(warehouse, load_contract(path))
    assert caught.value.message == (
        "contract.yaml: amocrm.pipelines.express is 'Express', but the AmoCRM pipelines are not "
        "loaded yet; write the pipeline's id, or load AmoCRM first."
    )
    assert resolve_pipeline("express", EXPRESS_PIPELINE, None, path) == EXPRESS_PIPELINE


SANDBOX = [(p.id, p.name) for p in PIPELINES]


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        (EXPRESS_PIPELINE, EXPRESS_PIPELINE),
        ("Express", EXPRESS_PIPELINE),
        ("  flagship ", FLAGSHIP_PIPELINE),
        ("ТЕСТ", 7_001_901),
        (7_009_999, "contract.yaml: amocrm.pipelines.express is 7009999, but no AmoCRM pipeline "
                    f"has that id (seen: {SEEN}); write the pipeline's id or exact name."),
        ("Express course", "contract.yaml: amocrm.pipelines.express is 'Express course', but no "
                           f"AmoCRM pipeline has that name (seen: {SEEN}); write the pipeline's "
                           "id or exact name."),
    ],
)  # fmt: skip
def test_pipeline_resolution_by_id_or_whole_name_case_insensitive(value, outcome):
    path = ROOT / "contract.yaml"
    if isinstance(outcome, int):
        assert resolve_pipeline("express", value, SANDBOX, path) == outcome
        return
    with pytest.raises(ContractError) as caught:
        resolve_pipeline("express", value, SANDBOX, path)
    assert caught.value.message == outcome


def test_given_two_pipelines_with_one_name_then_the_id_is_asked_for():
    twins = [*SANDBOX, (7_002_000, "express")]
    with pytest.raises(ContractError) as caught:
        resolve_pipeline("express", "Express", twins, ROOT / "contract.yaml")
    assert caught.value.message == (
        "contract.yaml: amocrm.pipelines.express is 'Express', but 2 AmoCRM pipelines have that "
        "name (7001001, 7002000); write the id of the right one."
    )


# ---- UTM fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "utm_fields",
    [
        {name: name for name in UTM_FIELD_IDS},  # by field name
        dict(UTM_FIELD_IDS),  # by field id
        {},  # the default: by code, then name
    ],
    ids=["by_name", "by_id", "default"],
)
def test_given_utm_fields_by_name_or_by_id_when_loaded_then_the_same_values_as_truth(
    monkeypatch, warehouse, shared_sandbox, dagster_instance, tmp_path, utm_fields
):
    point_env_at(monkeypatch, warehouse, shared_sandbox)
    with_contract(monkeypatch, tmp_path, {"pipelines": {"express": "Express",
                                                        "flagship": "Flagship"},
                                          "utm_fields": utm_fields})  # fmt: skip
    run(dagster_instance, "refresh_amocrm")
    assert compare_amocrm(warehouse, shared_sandbox.world) == []
    filled = warehouse.fetch_all(
        "SELECT count(utm_source), count(utm_campaign) FROM raw_amocrm.leads"
    )
    assert filled[0][0] > 0 and filled[0][1] > 0


def test_utm_field_chosen_by_id_code_or_name_wins_over_the_default():
    fields = [
        CustomField(field_id=1001, field_name="utm_source", field_code="UTM_SOURCE",
                    values=[CustomFieldValue(value="facebook")]),
        CustomField(field_id=2001, field_name="Источник", field_code=None,
                    values=[CustomFieldValue(value="instagram")]),
    ]  # fmt: skip
    assert utm_values(fields, {})[0] == "facebook"
    for chosen in (2001, "2001", "источник", "ИСТОЧНИК"):
        assert utm_values(fields, {"utm_source": chosen})[0] == "instagram"
    assert utm_values(fields, {"utm_source": 9999})[0] is None


# ---- discovery --------------------------------------------------------------------------------


def test_given_sandbox_when_discovered_then_pipelines_statuses_and_custom_fields_listed(
    env, monkeypatch
):
    warehouse, sandbox = env
    monkeypatch.setattr(resources.amocrm, "CUSTOM_FIELDS_LIMIT", 3)  # several pages
    catalog = discover_amocrm(AmoCrmResource(**AmoCrmResource.bound()), warehouse)
    assert [(p.id, p.name) for p in catalog.pipelines] == SANDBOX
    express = catalog.pipelines[0]
    assert {142, 143, 61_000} <= {s.id for s in express.statuses}
    assert next(s for s in express.statuses if s.id == 61_000).type == 1
    assert [(f.id, f.name, f.code, f.type) for f in catalog.custom_fields] == [
        (f.id, f.name, f.code, f.type) for f in LEAD_FIELDS
    ]
    pages = [r for r in sandbox.servers["amocrm"].requests
             if r.path == "/api/v4/leads/custom_fields"]  # fmt: skip
    assert len(pages) == -(-len(LEAD_FIELDS) // 3)
    lines = [" ".join(line.split()) for line in render_amocrm(catalog).splitlines()]
    for expected in ("7001002 Flagship", "status id name type", "61000 Неразобранное 1 (unsorted)",
                     "142 Успешно реализовано 0 (won)", "143 Закрыто и не реализовано 0 (lost)",
                     "id name code type", "1001 utm_source UTM_SOURCE tracking_data",
                     "1002 Сумма оплаты numeric"):  # fmt: skip
        assert expected in lines


def test_given_an_empty_section_when_proposed_then_the_proposal_resolves_on_the_sandbox(
    env, monkeypatch, tmp_path
):
    warehouse, _ = env
    catalog = discover_amocrm(AmoCrmResource(**AmoCrmResource.bound()), warehouse)
    path = with_contract(monkeypatch, tmp_path, None)
    proposed = propose_amocrm(catalog, AmoCrmEntry())
    assert proposed == {"pipelines": {"express": "Express", "flagship": "Flagship"},
                        "utm_fields": BY_CODE}  # fmt: skip
    assert check_amocrm(catalog, AmoCrmEntry(**proposed), path) == []
    assert check_amocrm(catalog, AmoCrmEntry(), path) == [
        f"{path}: amocrm.pipelines.express is not set; write the id or name of the Express "
        "course pipeline (make discover lists them).",
        f"{path}: amocrm.pipelines.flagship is not set; write the id or name of the Flagship "
        "course pipeline (make discover lists them).",
    ]
    # the user's values are kept where they resolve, replaced where they do not
    mine = AmoCrmEntry({"express": EXPRESS_PIPELINE, "flagship": "Flagshp"},
                       {"utm_source": 1001, "utm_term": "Термин"})  # fmt: skip
    again = propose_amocrm(catalog, mine)
    assert again["pipelines"] == {"express": EXPRESS_PIPELINE, "flagship": "Flagship"}
    assert again["utm_fields"] == {**BY_CODE, "utm_source": 1001}
    problems = check_amocrm(catalog, mine, path)
    assert len(problems) == 2 and "amocrm.pipelines.flagship is 'Flagshp'" in problems[0]
    assert problems[1].startswith(
        f"{path}: amocrm.utm_fields.utm_term is 'Термин', but no lead custom field has that "
        "code, name or id (seen: 1001 utm_source, 1003 utm_medium,"
    )


def test_given_a_pipeline_not_set_then_the_pipeline_diagnostics_say_so_not_sql(
    warehouse, monkeypatch, tmp_path
):
    path = with_contract(monkeypatch, tmp_path, {"pipelines": {"flagship": FLAGSHIP_PIPELINE}})
    sentence = (
        f"{path}: amocrm.pipelines.express is not set; write the id or name of the Express "
        "course pipeline (make discover lists them)."
    )
    for diagnostic in (webhook(warehouse, "flagship", Thresholds()), reconciliation(warehouse)):
        assert (diagnostic.status, diagnostic.message) == ("error", sentence)


def test_given_amocrm_never_loaded_when_models_build_then_a_name_waits_as_none(warehouse):
    """The models may build before AmoCRM's first load (an outage from day one): no deal exists
    for a pipeline id to classify, so a name stays unresolved instead of stopping them."""
    contract = load_contract(ROOT / "contract.yaml")
    assert resolve_pipelines(warehouse, contract, before_load=True) == {
        "express": None,
        "flagship": None,
    }
