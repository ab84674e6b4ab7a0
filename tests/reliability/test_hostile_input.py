"""Hostile input through the real clients and the sandbox's servers (issue 15, defect 4).

Simulated: a small sandbox world of the module's own. Poison records are planted on the wire,
first in the first page each simulator serves (`Fault.plant`: raw bytes, even ones no JSON
library writes: a NUL, a lone surrogate, bytes that are not UTF-8, an integer beyond 64 bits, a
number beyond numeric), for Supabase Main's landing leads, AmoCRM's leads and Facebook's
insights; hostile but storable values (a 1 MB string, SQL, HTML, an integer beyond 64 bits and
JSON nested 300 levels in a jsonb column) are written into world rows; one answer per source is
a body that is not JSON at all. Then every source loads once through Dagster, and the models
are rebuilt.

Then the quarantine replay: a contract mapping that refuses every new lead not yet synced,
the world moved on and loaded with it, the contract fixed, `quarantine replay supabase_main`:
those leads are in raw and the marts, the poison records stay quarantined.

Each poison record must be in ops.quarantine with its source, table, key (when it has one),
reason and payload; every hostile value of a world row must be in raw byte-exact; and raw and
the marts must equal the world's ground truth, which the planted records are no part of.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from commands import replay as quarantine
from resources import vendor_json
from resources.errors import SourceError
from resources.supabase import BY_UPDATED_AT, supabase_resource
from sandbox.postgrest import WHOLE_ROWS_QUERY
from sandbox.truth import compare_amocrm, compare_facebook
from tests.conftest import ROOT, load_everything, run
from tests.reliability.small_world import SmallWorld, small_world

CONTRACT = ROOT / "contract.yaml"
STAMP = b'"created_at":"2026-09-01T00:00:00+00:00","updated_at":"2026-09-01T00:00:00+00:00"'
AMO = b'"pipeline_id":1,"status_id":142,"created_at":1756684800,"updated_at":1756684800'
FB = b'"date_start":"2026-09-01","date_stop":"2026-09-01","spend":"1.00"'


@dataclass(frozen=True)
class Poison:
    """One planted record and where it must end up in ops.quarantine."""

    source: str
    entity: str  # ops.quarantine's entity; for Facebook, its prefix (one per account)
    key: str | None
    reason: str  # how the reason begins
    element: bytes  # the record as the wire carries it
    marker: str  # text its stored payload must contain


def _landing(key: int, extra: bytes) -> bytes:
    return b'{"id":%d,%s,"funnel":"express","synced_to_amocrm":false,%s}' % (key, STAMP, extra)


def _lead(key: bytes, extra: bytes) -> bytes:
    return b'{"id":%s,%s,%s}' % (key, AMO, extra)


def _insight(ad: bytes, extra: bytes) -> bytes:
    return b'{"ad_id":"%s",%s,%s}' % (ad, FB, extra)


SUPA = ("supabase_main", "landing_leads")
POISON = {
    "supabase NUL in a text column": Poison(
        *SUPA, "990001", "name: a NUL character", _landing(990001, b'"name":"a\\u0000b"'), "a"
    ),
    "supabase NUL in _raw only": Poison(
        *SUPA, "990002", "_raw: unsupported Unicode escape sequence",
        _landing(990002, b'"note":"n\\u0000l"'), "n\\u0000l",
    ),
    "supabase lone surrogate": Poison(
        *SUPA, "990003", "name: not valid UTF-8", _landing(990003, b'"name":"\\ud800"'),
        "\\ud800",
    ),
    "supabase bytes not UTF-8": Poison(
        *SUPA, "990004", "name: not valid UTF-8", _landing(990004, b'"name":"x\xff\xfey"'),
        "\\udcff",
    ),
    "supabase integer over 64 bits in bigint": Poison(
        *SUPA, "990005", "amocrm_lead_id: 123456789012345678901234567890 is not a valid bigint",
        _landing(990005, b'"amocrm_lead_id":123456789012345678901234567890'),
        "123456789012345678901234567890",
    ),
    "supabase number beyond numeric": Poison(
        *SUPA, "990006", "_raw: value overflows numeric format",
        _landing(990006, b'"score":1e1000000'), "score",
    ),
    "supabase element not an object": Poison(
        *SUPA, None, "not a JSON object but a str", b'"just a string"', "just a string"
    ),
    "supabase row without its key": Poison(
        *SUPA, None, "id: the key is missing",
        b'{%s,"funnel":"express","name":"keyless"}' % STAMP, "keyless",
    ),
    "supabase wrong type": Poison(
        *SUPA, "990009", "created_at: 'yesterday' is not a valid timestamptz",
        b'{"id":990009,"created_at":"yesterday","updated_at":"2026-09-01T00:00:00+00:00"}',
        "yesterday",
    ),
    "supabase required column missing": Poison(
        *SUPA, "990010", "created_at: missing, and the models need it",
        b'{"id":990010,"updated_at":"2026-09-01T00:00:00+00:00","funnel":"express"}',
        "990010",
    ),
    "amocrm lead without id": Poison(
        "amocrm", "leads", None, "id: Field required",
        b'{"name":"no id",%s}' % AMO, "no id",
    ),
    "amocrm element not an object": Poison(
        "amocrm", "leads", None, "not a JSON object but a int", b"42", "42"
    ),
    "amocrm lone surrogate": Poison(
        "amocrm", "leads", "99000003", "name: not valid UTF-8",
        _lead(b"99000003", b'"name":"\\udfff"'), "\\udfff",
    ),
    "amocrm NUL": Poison(
        "amocrm", "leads", "99000004", "name: a NUL character",
        _lead(b"99000004", b'"name":"a\\u0000"'), "99000004",
    ),
    "amocrm id over 64 bits": Poison(
        "amocrm", "leads", "1180591620717411303424", "id: value \"1180591620717411303424\" is out",
        _lead(b"1180591620717411303424", b'"name":"big"'), "1180591620717411303424",
    ),
    "amocrm price beyond the models' money": Poison(
        "amocrm", "leads", "99000006", "price: Input should be less than",
        _lead(b"99000006", b'"price":1e15'), "99000006",
    ),
    "amocrm wrong type": Poison(
        "amocrm", "leads", "99000007", "status_id: Input should be a valid integer",
        b'{"id":99000007,"pipeline_id":1,"status_id":"won","created_at":1,"updated_at":1}',
        "won",
    ),
    "facebook insight without ad_id": Poison(
        "facebook", "insights:", None, "ad_id: Field required", b'{%s}' % FB, "2026-09-01"
    ),
    "facebook element not an object": Poison(
        "facebook", "insights:", None, "not a JSON object but a list", b"[1,2]", "[1"
    ),
    "facebook lone surrogate": Poison(
        "facebook", "insights:", "hostile-3/2026-09-01", "ad_name: not valid UTF-8",
        _insight(b"hostile-3", b'"ad_name":"\\ud83d"'), "\\ud83d",
    ),
    "facebook impressions over 64 bits": Poison(
        "facebook", "insights:", "hostile-4/2026-09-01", "impressions: value",
        _insight(b"hostile-4", b'"impressions":"99999999999999999999999"'), "hostile-4",
    ),
    "facebook spend beyond the models' money": Poison(
        "facebook", "insights:", "hostile-5", "spend: Input should be less than",
        b'{"ad_id":"hostile-5","date_start":"2026-09-01","spend":"1e13"}', "hostile-5",
    ),
    "facebook 1 MB of garbage date": Poison(
        "facebook", "insights:", "hostile-6", "date_start: Input should be a valid date",
        b'{"ad_id":"hostile-6","date_start":"%s"}' % (b"<b>" * 350_000), "hostile-6",
    ),
}  # fmt: skip
# where each source's first page gets its planted records
PLANT_AT = {
    "supabase_main": ("supabase_main", "/rest/v1/landing_leads", WHOLE_ROWS_QUERY, b"["),
    "amocrm": ("amocrm", "/api/v4/leads", None, b'"leads":['),
    "facebook": ("facebook", r".*/insights", None, b'"data":['),
}
# one answer per source that is not JSON at all: retried by the client, then loaded
NOT_JSON = {
    "supabase_tripwire": ("/rest/v1/tripwire_users", b"\xff\xfe<html>upstream error</html>"),
    "amocrm": ("/api/v4/events", b"<html><body>502 from a proxy, answered 200</body></html>"),
    "facebook": (r".*/adsets", b'{"data": [{"id": "1"'),  # a cut body
}
MEGABYTE = "M" * 1_048_576
HOSTILE_TEXT = {
    "name": MEGABYTE,
    "email": "x'); DROP TABLE raw_supabase_main.landing_leads; -- \\N \\. ",
    "phone": '<script>alert("x")</script><img src=x onerror=alert(1)> 👩‍💻',
}
NESTED: Any = "bottom"
for _ in range(300):
    NESTED = {"down": NESTED}
HOSTILE_PAYLOAD = {"big": 2**70, "negative": -(2**70), "nested": NESTED, "sql": "'; --"}


def _plant(state: SmallWorld) -> None:
    for source, (server, path, query, after) in PLANT_AT.items():
        elements = b",".join(p.element for p in POISON.values() if p.source == source)
        state.sandbox.servers[server].faults.add(path, method="GET", query=query, plant=elements,
                                                 plant_after=after)  # fmt: skip
    for server, (path, body) in NOT_JSON.items():
        state.sandbox.servers[server].faults.add(path, status=200, body=body)
    main = state.sandbox.world.supabase["main"]
    leads = main["landing_leads"]
    first = sorted(leads.rows)[0]
    leads.put({**leads.rows[first], **HOSTILE_TEXT})
    sales = main["express_course_sales"]
    sale = sorted(sales.rows)[0]
    sales.put({**sales.rows[sale], "payload": HOSTILE_PAYLOAD})
    state.sandbox.sync()


@pytest.fixture(scope="module")
def hostile(pg_server, warehouse_template, dagster_instance) -> Iterator[SmallWorld]:
    with small_world(pg_server, warehouse_template, dagster_instance, "hostile_input") as state:
        _plant(state)
        state.refresh()
        yield state


@pytest.mark.parametrize("poison", POISON.values(), ids=POISON.keys())
def test_given_poison_record_when_loaded_then_quarantined_with_reason_and_payload(hostile, poison):
    found = hostile.sql(
        "SELECT entity, reason, coalesce(record::text, record_text) FROM ops.quarantine"
        " WHERE source = %s AND entity LIKE %s AND record_key IS NOT DISTINCT FROM %s"
        " AND reason LIKE %s",
        poison.source, poison.entity + "%", poison.key, poison.reason.replace("%", "%%") + "%",
    )  # fmt: skip
    assert len(found) == 1, hostile.sql(
        "SELECT source, entity, record_key, reason FROM ops.quarantine"
    )
    assert poison.marker in found[0][2]


def test_given_poison_records_then_nothing_else_quarantined(hostile):
    assert hostile.sql("SELECT count(*) FROM ops.quarantine") == [(len(POISON),)]


def test_given_hostile_values_in_world_rows_then_raw_holds_them_byte_exact(hostile):
    main = hostile.sandbox.world.supabase["main"]
    first = sorted(main["landing_leads"].rows)[0]
    stored = hostile.sql(
        "SELECT name, email, phone FROM raw_supabase_main.landing_leads WHERE id = %s", first
    )
    assert stored == [tuple(HOSTILE_TEXT.values())]
    sale = sorted(main["express_course_sales"].rows)[0]
    (payload, raw_payload) = hostile.sql(
        "SELECT payload, _raw->'payload' FROM raw_supabase_main.express_course_sales"
        " WHERE id = %s", sale,
    )[0]  # fmt: skip
    assert payload == raw_payload == HOSTILE_PAYLOAD


def test_given_poison_and_broken_bodies_then_raw_and_marts_equal_the_world(hostile):
    for server, (path, _) in NOT_JSON.items():
        answered = [r for r in hostile.sandbox.servers[server].requests if r.fault]
        assert any(r.status == 200 for r in answered), f"{server} {path} was never broken"
    assert compare_amocrm(hostile.warehouse, hostile.sandbox.world) == []
    assert compare_facebook(hostile.warehouse, hostile.sandbox.world) == []
    assert hostile.marts_differences() == []


def test_given_body_never_json_when_scanned_then_one_sentence_after_retries(hostile):
    server = hostile.sandbox.servers["supabase_traffic"]
    server.faults.add("/rest/v1/targetologists", status=200, body=b"<html>", times=-1)
    project = supabase_resource("Traffic", "SUPABASE_TRAFFIC",
                               max_attempts=2, backoff_seconds=0.01)  # fmt: skip
    try:
        with project.open() as api, pytest.raises(SourceError) as caught:
            next(iter(api.scan("targetologists", BY_UPDATED_AT, None)))
    finally:
        server.faults.clear()
    assert caught.value.message == (
        "Supabase Traffic: table targetologists answered HTTP 200, but it is not JSON "
        "(Expecting value: line 1 column 1 (char 0); it starts '<html>') (after 2 attempts)."
    )
    assert caught.value.transient


@pytest.mark.parametrize(
    ("body", "value"),
    [(b'[{"n": 1e400}]', 10**400), (b'[{"n": 123456789012345678901234567890}]',
     123456789012345678901234567890), (b'[{"s": "\\ud83d\\ude80 \\u00e9"}]', "🚀 é")],
)  # fmt: skip
def test_given_numbers_beyond_a_double_then_parsed_and_written_exactly(hostile, body, value):
    parsed = vendor_json.loads(body)
    (stored,) = hostile.sql("SELECT (%s::jsonb)->0->>0 IS NULL, %s::jsonb", "[]",
                            vendor_json.dumps(parsed))[0][1]  # fmt: skip
    assert next(iter(stored.values())) == value


# ---- quarantine replay (runs last: it moves the world on) ---------------------------------------

WRONG_MAPPING = "created_at (column synced_at): missing, and the models need it"


def test_given_bad_arguments_when_replay_then_one_line_and_exit_2(capsys):
    assert quarantine.main(["replay", "nowhere"]) == 2
    assert quarantine.main(["purge", "amocrm"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("quarantine: argument") for line in lines)


def test_given_contract_mismatch_fixed_when_replayed_then_records_in_raw_and_marts(
    hostile, tmp_path, monkeypatch
):
    # a contract that feeds created_at from synced_at: every new lead not yet synced is refused
    wrong = CONTRACT.read_text().replace(
        "    landing_leads: {}", "    landing_leads: {columns: {created_at: synced_at}}"
    )
    (tmp_path / "contract.yaml").write_text(wrong)
    monkeypatch.setenv("CONTRACT_FILE", str(tmp_path / "contract.yaml"))
    hostile.sandbox.advance(4)
    load_everything(hostile.instance, restate=True)  # the world restates spend as it moves
    refused = {key for (key,) in hostile.sql(
        "SELECT record_key FROM ops.quarantine WHERE reason = %s", WRONG_MAPPING)}  # fmt: skip
    assert refused and not hostile.sql(
        "SELECT id FROM raw_supabase_main.landing_leads WHERE id::text = ANY(%s)", list(refused)
    )
    monkeypatch.delenv("CONTRACT_FILE")  # the contract fixed
    args = quarantine.parse(["replay", "supabase_main"])
    assert quarantine.run(args, hostile.instance) == 1  # the poison records still fail
    assert not hostile.sql("SELECT 1 FROM ops.quarantine WHERE reason = %s", WRONG_MAPPING)
    loaded = hostile.sql(
        "SELECT id::text FROM raw_supabase_main.landing_leads WHERE id::text = ANY(%s)",
        list(refused),
    )
    assert {key for (key,) in loaded} == refused
    # the other sources' new rows, as the automation builds them after their runs
    run(hostile.instance, "rebuild_models")
    assert hostile.marts_differences() == []
    still = hostile.sql("SELECT count(*) FROM ops.quarantine WHERE source = 'supabase_main'")
    assert still == [(sum(1 for p in POISON.values() if p.source == "supabase_main"),)]


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"[" * 6000 + b"]" * 6000, "it nests deeper than 5000 levels"),
     (b"\xff\xfe<html>", "it is not JSON"), (b'{"data": [', "it is not JSON")],
)  # fmt: skip
def test_given_body_beyond_any_record_then_a_vendor_fault_not_a_crash(body, why):
    with pytest.raises(vendor_json.BodyError, match=why):
        vendor_json.loads(body)
