"""The fault matrix: every fault the simulators can inject (the vendors' real error bodies:
AmoCRM's 401/402/403/429/5xx/204 and OAuth, Graph's codes 1, 2, 4, 17, 190, 200, 613, 3018,
80004, Supabase's gateway and PostgREST errors and its row cap, Telegram's refusals; resets,
timeouts, malformed bodies), each against the real client, assets and loader in a Dagster run of
the affected source. Per row: the run loads or fails as designed, with the designed one-line
message (what `make run` prints); a run that loads leaves the raw tables exactly as a clean load
did. Per source, once its rows are done: a clean run recovers to the exact raw state of the
clean load (same keys, same content, no duplicate); at the end the marts equal the ground truth.
Two refreshes with sources down show the others loading and the marts building beside them.

Cheap by design: one small world of the module's own (sandbox at scale 0.05), an in-memory
Dagster instance (the run storage is not under test here), re-reads of the whole small source
per run so every fault meets full pages, client timeouts of a second, back-offs shortened
(Facebook's waits through a fast vendor clock), Dagster's own step retries off. The `soak`
marker adds every failing row again inside a full refresh (`make soak`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import dagster as dg
import pytest

from assets.jobs import SOURCES
from resources.amocrm import authorize as amocrm_authorize
from resources.errors import SourceError
from resources.telegram import TelegramResource
from sandbox.amocrm import BODY_401, BODY_402, BODY_429, HTML_403, HTML_429, HTML_504
from sandbox.facebook import GRAPH_ERRORS, usage_headers
from sandbox.server import free_port
from sandbox.truth import compare_amocrm, compare_facebook, compare_marts
from tests.reliability.harness import (
    MATRIX,
    MatrixRow,
    OwnWorld,
    fingerprint,
    fingerprint_differences,
    one_line,
    own_world,
    quicken_vendor_waits,
    run_source,
)
from tests.test_alerts import Ticker

Inject = Callable[[OwnWorld, pytest.MonkeyPatch], None]
LOADS, FAILS, HELD = "loads", "fails", "held back"
STALE = r"Data from AmoCRM stays as of \d{4}-\d\d-\d\d \d\d:\d\d UTC\."
MORE = r"( \(\+\d+ other reasons?: see `make ui`\))?"  # the line's note of other steps' reasons
RE_AUTHORIZE = "authorize again with `python -m resources.amocrm authorize CODE`"
INSIGHTS = r"/v25\.0/act_\d+/insights"
NOT_JSON = r"it is not JSON \(.*; it starts '<html>oops</html>'\)"
SKIPPED = (r"; they load on a later run once Facebook lets them call again\. Other accounts"
           r" loaded\.")  # fmt: skip
GRAPH = r"/v25\.0/.*"


@dataclass(frozen=True)
class Fault:
    source: str
    name: str
    inject: Inject
    expected: str
    message: str = ""  # a regular expression the whole one-line message matches
    defect: str = ""  # the issue-15 defect whose fix this row waits for
    steps: tuple[str, ...] = ()  # the steps the fault can reach (default: the whole run)
    fix: Callable[[OwnWorld], None] | None = None  # what the operator does, as the line says

    def __str__(self) -> str:
        return f"{self.source}: {self.name}"


def http(server: str, path: str, **fault: object) -> Inject:
    def inject(world: OwnWorld, _: pytest.MonkeyPatch) -> None:
        world.sandbox.servers[server].faults.add(path, **fault)

    return inject


def graph(name: str, path: str = INSIGHTS, times: int = 1, **headers: str) -> Inject:
    status, body = GRAPH_ERRORS[name]
    return http("facebook", path, status=status, body=body, times=times, headers=headers)


def supabase_key(project: str, kind: str) -> Inject:
    """The project's key replaced by one the sandbox's gateway or PostgREST refuses."""

    def inject(world: OwnWorld, env: pytest.MonkeyPatch) -> None:
        key = world.sandbox.keys[project].get(kind, kind)
        env.setenv(f"SUPABASE_{project.upper()}_SERVICE_ROLE_KEY", key)

    return inject


def row_cap(project: str, rows: int) -> Inject:
    def inject(world: OwnWorld, _: pytest.MonkeyPatch) -> None:
        world.sandbox.postgrest[project].max_rows = rows

    return inject


def expired_amocrm_token(then: Inject | None = None) -> Inject:
    def inject(world: OwnWorld, env: pytest.MonkeyPatch) -> None:
        world.sandbox.amocrm.expire_access_tokens()
        if then is not None:
            then(world, env)

    return inject


def authorize_again(world: OwnWorld) -> None:
    """`python -m resources.amocrm authorize CODE` with a new code from the integration."""
    assert amocrm_authorize(world.sandbox.amocrm.issue_authorization_code()) == 0


def keys(project: str) -> str:
    prefix = f"SUPABASE_{project.upper()}"
    return f"{prefix}_SERVICE_ROLE_KEY or {prefix}_ANON_KEY"


def supabase_faults(project: str, table: str, name: str) -> list[Fault]:
    source, path = f"supabase_{project}", f"/rest/v1/{table}"
    server, src = source, f"Supabase {name}"
    key_var = f"SUPABASE_{project.upper()}_SERVICE_ROLE_KEY"
    invalid_key = (
        re.escape(f"{src}: Invalid API key (check {keys(project)}). Hint: Double check your ")
        + r"Supabase `anon` or `service_role` API key\."
    )
    not_jwt = re.escape(f"{src}: the key in {key_var} is not a valid JWT for this project (")
    faults = [
        Fault(source, "invalid API key (gateway 401)", supabase_key(project, "garbage"), FAILS,
              invalid_key),
        Fault(source, "JWT signed by another secret (PGRST301)",
              supabase_key(project, "wrong_secret"), FAILS,
              not_jwt + r"PGRST301: No suitable key or wrong key type\); copy it again .*"),
        Fault(source, "JWT expired (PGRST303)", supabase_key(project, "expired"), FAILS,
              re.escape(f"{src}: JWT expired (PGRST303): the key in {key_var} has expired; ")
              + ".*"),
        Fault(source, "503 twice", http(server, path, status=503, times=2,
                                         body={"message": "Service Unavailable"}), LOADS),
        Fault(source, "503 until cleared", http(server, path, status=503, times=-1,
                                                 body={"message": "Service Unavailable"}), FAILS,
              re.escape(f"{src}: table {table} still answers HTTP 503 after 5 attempts: ")
              + "Service Unavailable"),
        Fault(source, "520 HTML until cleared", http(server, path, status=520, times=-1,
                                                     body="<html>origin error</html>"), FAILS,
              re.escape(f"{src}: table {table} still answers HTTP 520 after 5 attempts") + ".*"),
        Fault(source, "connection reset mid-body", http(server, path, reset=True), LOADS),
        Fault(source, "resets until cleared", http(server, path, reset=True, times=-1), FAILS,
              re.escape(f"{src}: cannot read table {table} at SUPABASE_{project.upper()}_URL "
                        "after 5 attempts (") + r"\w+\)\. Check the URL and network\."),
        Fault(source, "timeout (2 s, client waits 1 s)", http(server, path, delay=2.0), LOADS),
        Fault(source, "table missing (PGRST205)", http(
            server, path, status=404, times=-1,
            body={"code": "PGRST205", "details": None, "hint": None,
                  "message": f"Could not find the table 'public.{table}' in the schema cache"}),
              FAILS, re.escape(f"{src}: table {table} not found (PGRST205: Could not find the "
                               f"table 'public.{table}' in the schema cache).")),
        Fault(source, "malformed body (200, not JSON) once", http(server, path, status=200,
                                                                  body="<html>oops</html>"), LOADS),
        Fault(source, "malformed bodies until cleared", http(
            server, path, status=200, body="<html>oops</html>", times=-1), FAILS,
              re.escape(f"{src}: table {table} answered HTTP 200, but ") + NOT_JSON
              + re.escape(" (after 5 attempts).")),
        Fault(source, "row cap of 7 per response (max-rows)", row_cap(project, 7), LOADS),
    ]  # fmt: skip
    return [replace(f, steps=(f"raw_{source}__{table}",)) for f in faults]


AMOCRM = "amocrm"
LEADS_STEP, EVENTS_STEP = ("raw_amocrm__leads",), ("raw_amocrm__lead_events",)
AMOCRM_FAULTS = [
    Fault(AMOCRM, "401 once (access token expired)", expired_amocrm_token(), LOADS),
    Fault(AMOCRM, "401 after the refresh too (access revoked)",
          http(AMOCRM, r"/api/v4/.*", status=401, body=BODY_401, times=-1), FAILS,
          re.escape("AmoCRM answered 401 Unauthorized again right after a token refresh: the "
                    f"integration was disabled or its access revoked; {RE_AUTHORIZE}. ") + STALE),
    Fault(AMOCRM, "402 Payment Required",
          http(AMOCRM, r"/api/v4/.*", status=402, body=BODY_402, times=-1), FAILS,
          re.escape("AmoCRM answered 402 Payment Required: the account's subscription has "
                    "expired; renew it. ") + STALE),
    Fault(AMOCRM, "403 nginx HTML (blocked)",
          http(AMOCRM, r"/api/v4/.*", status=403, body=HTML_403, times=-1), FAILS,
          re.escape("AmoCRM answered 403 Forbidden: the account or this server's IP address is "
                    "blocked (usually after repeated 429s); ask AmoCRM support to lift the "
                    "block. ") + STALE),
    Fault(AMOCRM, "429 JSON with Retry-After", http(AMOCRM, r"/api/v4/leads", status=429,
          body=BODY_429, headers={"Retry-After": "1"}), LOADS, steps=LEADS_STEP),
    Fault(AMOCRM, "429 HTML until cleared",
          http(AMOCRM, r"/api/v4/.*", status=429, body=HTML_429, times=-1), FAILS,
          re.escape("AmoCRM: still rate limited (HTTP 429) after 6 attempts. ") + STALE),
    Fault(AMOCRM, "504 on a big page", http(AMOCRM, r"/api/v4/leads", status=504,
                                             body=HTML_504), LOADS, steps=LEADS_STEP),
    Fault(AMOCRM, "503 until cleared",
          http(AMOCRM, r"/api/v4/.*", status=503, body="Service Unavailable", times=-1), FAILS,
          re.escape("AmoCRM: still failing after 6 attempts (HTTP 503 on /api/v4/") + r"[\w/]+\)\. "
          + STALE + MORE),
    Fault(AMOCRM, "500 once", http(AMOCRM, r"/api/v4/events", status=500, body=""), LOADS,
          steps=EVENTS_STEP),
    Fault(AMOCRM, "connection reset mid-body", http(AMOCRM, r"/api/v4/leads", reset=True), LOADS,
          steps=LEADS_STEP),
    Fault(AMOCRM, "timeout (2 s, client waits 1 s)", http(AMOCRM, r"/api/v4/leads", delay=2.0),
          LOADS, steps=LEADS_STEP),
    Fault(AMOCRM, "malformed body (200, not JSON) once",
          http(AMOCRM, r"/api/v4/leads", status=200, body="<html>oops</html>"), LOADS,
          steps=LEADS_STEP),
    Fault(AMOCRM, "malformed bodies until cleared",
          http(AMOCRM, r"/api/v4/leads", status=200, body="<html>oops</html>", times=-1), FAILS,
          re.escape("AmoCRM: still failing after 6 attempts (HTTP 200 on /api/v4/leads, but ")
          + NOT_JSON + r"\)\. " + STALE, steps=LEADS_STEP),
    # 204 is AmoCRM's "no rows", not an error (amocrm.md): the run stays green and warns
    # where stored leads say the window has rows (tests/reliability/test_amocrm_empty_answers.py)
    Fault(AMOCRM, "204 on every list until cleared",
          http(AMOCRM, r"/api/v4/(leads|events)", status=204, times=-1), LOADS,
          defect="6: a persistent 204 read as success with 0 rows, silently (fixed: a warning, "
                 "53cb41c)"),
    Fault(AMOCRM, "token endpoint 503 once", expired_amocrm_token(http(
        AMOCRM, r"/oauth2/access_token", status=503, body=HTML_504)), LOADS,
          defect="1: a 503 from the token endpoint was not retried (fixed, 588f170)"),
    # AmoCRM's refresh token is single-use with no grace: an answer lost on the wire loses the
    # pair, and the designed outcome is a sentence that says so and what to do (authorize)
    Fault(AMOCRM, "token endpoint reset after rotating", expired_amocrm_token(http(
        AMOCRM, r"/oauth2/access_token", reset=True)), FAILS,
          re.escape("AmoCRM calls the stored refresh token already used (Token has been revoked)"
                    " because the token refresh started at ") + r"[\d-]+ [\d:]+ UTC"
          + re.escape(" never received or stored AmoCRM's answer (its process was stopped or its"
                      " connection dropped after AmoCRM had issued the new pair, which only that"
                      " answer carried), so the integration's token pair is lost: authorize the"
                      " integration again with `python -m resources.amocrm authorize CODE` (a new"
                      " code from the integration's settings in AmoCRM)."), fix=authorize_again),
]  # fmt: skip

FACEBOOK = "facebook"
FACEBOOK_FAULTS = [
    Fault(FACEBOOK, "code 1 reduce the amount of data", graph("too_much_data"), LOADS),
    Fault(FACEBOOK, "code 2 transient once", graph("transient"), LOADS),
    Fault(FACEBOOK, "code 2 transient until cleared", graph("transient", times=-1), FAILS,
          re.escape("Facebook: still failing after 5 attempts (HTTP 500 on /act_") + r"\d+"
          + re.escape("/insights).")),
    Fault(FACEBOOK, "code 4 app limit once", graph("app_limit"), LOADS),
    Fault(FACEBOOK, "code 17/2446079 user limit once", graph("user_limit"), LOADS),
    Fault(FACEBOOK, "code 613 API rate limit once", graph("api_rate_limit"), LOADS),
    Fault(FACEBOOK, "code 80004 with 45 min to regain",
          http(FACEBOOK, INSIGHTS, times=-1, status=GRAPH_ERRORS["account_limit"][0],
               body=GRAPH_ERRORS["account_limit"][1],
               headers=usage_headers(app_pct=10, account_id="act_101", account_pct=100,
                                     regain_minutes=45, insights=True)), FAILS,
          r"Facebook: rate limit reached for act_101 \(45 min\)(, act_\d+ \(45 min\))*" + SKIPPED),
    Fault(FACEBOOK, "code 4 until cleared, no estimate", graph("app_limit", times=-1), FAILS,
          r"Facebook: rate limit reached for act_101 \(no estimate from Facebook; still throttled"
          r" after 2 waits of 60 s\)(, act_\d+ \([^)]+\))*" + SKIPPED,
          defect="6: throttling without an estimate hung 13 min (fixed, 7a472e6)"),
    Fault(FACEBOOK, "code 190 invalid token", graph("token_invalid", GRAPH, times=-1), FAILS,
          re.escape("Facebook: the token in FACEBOOK_ACCESS_TOKEN is no longer valid (code 190: "
                    "Invalid OAuth access token - Cannot parse access token). Generate a new "
                    "long-lived or system-user token with ads_read and put it in "
                    "FACEBOOK_ACCESS_TOKEN.")),
    Fault(FACEBOOK, "code 190/463 token expired", graph("token_expired", GRAPH, times=-1), FAILS,
          re.escape("Facebook: the token in FACEBOOK_ACCESS_TOKEN is no longer valid (code "
                    "190/463: Error validating access token: Session has expired on ") + ".*"),
    Fault(FACEBOOK, "code 200 permission (403)", graph("permission", times=-1), FAILS,
          r"Facebook: act_\d+ refused the request \(code 200: \(#200\) Ad account owner has NOT"
          r" grant ads_management or ads_read permission\)\. Check that the token in"
          r" FACEBOOK_ACCESS_TOKEN has ads_read on this account and that FACEBOOK_AD_ACCOUNT_IDS"
          r" lists it correctly\."),
    Fault(FACEBOOK, "code 100/33 unknown object", graph("object_missing", times=-1), FAILS,
          r"Facebook: act_\d+ refused the request \(code 100: Unsupported get request\..*"),
    Fault(FACEBOOK, "code 3018 start too old", graph("start_too_old", times=-1), FAILS,
          r"Facebook: act_\d+ answered HTTP 400 \(code 3018: \(#3018\) The start date of the time"
          r" range cannot be beyond 37 months from the current date\)\."),
    Fault(FACEBOOK, "code 2601 report not ready once", graph("report_not_ready"), LOADS),
    Fault(FACEBOOK, "connection reset mid-body", http(FACEBOOK, INSIGHTS, reset=True), LOADS),
    Fault(FACEBOOK, "timeout (2 s, client waits 1 s)", http(FACEBOOK, INSIGHTS, delay=2.0),
          LOADS),
    Fault(FACEBOOK, "malformed body (200, not JSON) once",
          http(FACEBOOK, INSIGHTS, status=200, body="<html>oops</html>"), LOADS),
    Fault(FACEBOOK, "malformed bodies until cleared",
          http(FACEBOOK, INSIGHTS, status=200, body="<html>oops</html>", times=-1), FAILS,
          r"Facebook: still failing after 5 attempts \(HTTP 200 on /act_\d+/insights, but "
          + NOT_JSON + r"\)\."),
]  # fmt: skip

MAIN_FAULTS = supabase_faults("main", "landing_leads", "Main")
TRIPWIRE_FAULTS = supabase_faults("tripwire", "tripwire_users", "Tripwire")
TRAFFIC_FAULTS = supabase_faults("traffic", "all_sales_tracking", "Traffic")


def pick(faults: list[Fault], *names: str) -> Fault:
    return next(f for f in faults if f.name in names)


# Every Supabase fault once, on Main; the other two projects (the same client) a few each.
FAULTS = [
    *MAIN_FAULTS,
    *(pick(TRIPWIRE_FAULTS, n) for n in ("503 twice", "520 HTML until cleared",
                                         "connection reset mid-body")),
    *(pick(TRAFFIC_FAULTS, n) for n in ("JWT expired (PGRST303)", "table missing (PGRST205)")),
    *AMOCRM_FAULTS,
    *(f if "190" in f.name else replace(f, steps=("raw_facebook_insights",))
      for f in FACEBOOK_FAULTS),
]  # fmt: skip


@dataclass
class MatrixWorld:
    world: OwnWorld
    instance: dg.DagsterInstance
    baseline: dict[str, dict[str, tuple[int, int, str]]]

    def load_clean(self, source: str) -> None:
        """The source's clean load, the state every later run must come back to."""
        if source in self.baseline:
            return
        result = run_source(self.instance, source)
        assert result.success, one_line(result, source, self.world)
        self.baseline[source] = fingerprint(self.world, source)


@pytest.fixture(scope="module")
def matrix(pg_server: str, warehouse_template: str) -> Iterator[MatrixWorld]:
    with own_world(pg_server, warehouse_template, "matrix") as world:
        quicken_vendor_waits(world.env)
        with dg.DagsterInstance.ephemeral() as instance:
            yield MatrixWorld(world, instance, {})


def clear_faults(world: OwnWorld) -> None:
    for server in world.sandbox.servers.values():
        server.faults.clear()
    for simulator in world.sandbox.postgrest.values():
        simulator.max_rows = world.sandbox.max_rows


# ---- sources down side by side: the others load in the same refresh ---------------------------

OUTAGES = {
    "AmoCRM, Facebook and Supabase Main down": [
        pick(MAIN_FAULTS, "invalid API key (gateway 401)"),
        pick(AMOCRM_FAULTS, "402 Payment Required"),
        pick(FACEBOOK_FAULTS, "code 190 invalid token"),
    ],
    "Supabase Tripwire and Traffic down": [
        pick(TRIPWIRE_FAULTS, "invalid API key (gateway 401)"),
        pick(TRAFFIC_FAULTS, "invalid API key (gateway 401)"),
    ],
}


def refresh_with(
    matrix: MatrixWorld, faults: list[Fault], capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, bool], dict[str, str]]:
    """`make run`'s refresh (every source's run, then the models) with `faults` injected:
    {job: succeeded}, {source: the line it printed}."""
    from commands.runs import run_all

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as env:
        for fault in faults:
            fault.inject(matrix.world, env)
        try:
            outcome = run_all(matrix.instance, matrix.world.warehouse)
        finally:
            clear_faults(matrix.world)
            for fault in faults:
                if fault.fix is not None:
                    fault.fix(matrix.world)
    printed = capsys.readouterr().out.splitlines()
    lines = {line.split()[0]: line for line in printed if line.startswith("  ")}
    return outcome, lines


@pytest.mark.parametrize("down", list(OUTAGES))
def test_given_sources_down_when_refreshed_then_the_others_load_and_marts_build(
    matrix: MatrixWorld, capsys: pytest.CaptureFixture[str], down: str
) -> None:
    faults = OUTAGES[down]
    for source in SOURCES:
        matrix.load_clean(source)
    outcome, lines = refresh_with(matrix, faults, capsys)
    failed = {f.source for f in faults}
    assert outcome == {f"refresh_{s}": s not in failed for s in SOURCES} | {"rebuild_models": True}
    for fault in faults:
        said = lines[fault.source].split("FAILED", 1)[1].split(" s  ", 1)[1]
        assert re.fullmatch(fault.message, said), said
    freshness = dict(matrix.world.sql("SELECT source, status FROM marts.source_freshness"))
    assert freshness == {s: "error" if s in failed else "ok" for s in SOURCES}


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_given_a_vendor_fault_when_its_source_runs_then_as_designed(
    matrix: MatrixWorld, fault: Fault
) -> None:
    world, source = matrix.world, fault.source
    matrix.load_clean(source)
    row = MatrixRow(source, fault.name, fault.expected, fault.defect)
    MATRIX.record(row)
    with pytest.MonkeyPatch.context() as env:
        fault.inject(world, env)
        try:
            result = run_source(matrix.instance, source, steps=fault.steps)
        finally:
            clear_faults(world)
            if fault.fix is not None:
                fault.fix(world)
    row.observed = LOADS if result.success else FAILS
    row.message = "" if result.success else one_line(result, source, world)
    assert row.observed == fault.expected, row.message
    if result.success:
        assert fingerprint_differences(matrix.baseline[source], fingerprint(world, source)) == []
    else:
        assert re.fullmatch(fault.message, row.message), row.message


@pytest.mark.parametrize("source", SOURCES)
def test_given_the_faults_removed_when_its_source_runs_then_exactly_the_clean_state(
    matrix: MatrixWorld, source: str
) -> None:
    world = matrix.world
    matrix.load_clean(source)
    result = run_source(matrix.instance, source)
    differences = fingerprint_differences(matrix.baseline[source], fingerprint(world, source))
    vendor = {AMOCRM: compare_amocrm, FACEBOOK: compare_facebook}.get(source)
    truth = vendor(world.warehouse, world.sandbox.world) if vendor else []
    MATRIX.recovered(source, result.success and not differences and not truth)
    assert result.success, one_line(result, source, world)
    assert differences == [] and truth == []


def test_given_every_source_recovered_when_models_build_then_marts_equal_truth(
    matrix: MatrixWorld,
) -> None:
    from definitions import defs

    for source in SOURCES:
        matrix.load_clean(source)
    built = defs.resolve_job_def("rebuild_models").execute_in_process(
        instance=matrix.instance, raise_on_error=False
    )
    assert built.success
    assert compare_marts(matrix.world.warehouse, matrix.world.sandbox.world) == []


# ---- Telegram: an alert due while Telegram fails is held back, then sent exactly once -----------

TELEGRAM = "telegram"
SEND = r"/bot[^/]+/sendMessage"


def telegram_refusal(status: int, description: str, **extra: object) -> Inject:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return http(TELEGRAM, SEND, status=status, body=body, times=-1)


def telegram_unreachable(world: OwnWorld, env: pytest.MonkeyPatch) -> None:
    env.setenv("TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}")


REFUSED = r" check TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID\."
TELEGRAM_FAULTS = [
    Fault(TELEGRAM, "500 until cleared", telegram_refusal(500, "Internal Server Error"), HELD,
          r"Telegram refused the message \(HTTP 500: Internal Server Error\);" + REFUSED),
    Fault(TELEGRAM, "429 with retry_after", telegram_refusal(
        429, "Too Many Requests: retry after 5", parameters={"retry_after": 5}), HELD,
          r"Telegram refused the message \(HTTP 429: Too Many Requests: retry after 5\);"
          + REFUSED),
    Fault(TELEGRAM, "401 bot token revoked", telegram_refusal(401, "Unauthorized"), HELD,
          r"Telegram refused the message \(HTTP 401: Unauthorized\);" + REFUSED),
    Fault(TELEGRAM, "400 chat not found", telegram_refusal(400, "Bad Request: chat not found"),
          HELD, r"Telegram refused the message \(HTTP 400: Bad Request: chat not found\);"
          + REFUSED),
    Fault(TELEGRAM, "unreachable (connection refused)", telegram_unreachable, HELD,
          r"Telegram: cannot reach TELEGRAM_API_URL \(ConnectError\)\."),
]  # fmt: skip


@pytest.fixture(scope="module")
def ticker(matrix: MatrixWorld) -> Ticker:
    """The alert sensor, ticked by hand on the matrix's instance; its first tick announces what
    the earlier rows did, so each row below starts with nothing due."""
    ticker = Ticker(matrix.instance)
    ticker.tick()
    return ticker


def failed_tripwire_run(matrix: MatrixWorld) -> str:
    """A failed run for the sensor to announce (Tripwire's key refused): its run id."""
    with pytest.MonkeyPatch.context() as env:
        supabase_key("tripwire", "garbage")(matrix.world, env)
        result = run_source(matrix.instance, "supabase_tripwire",
                            steps=("raw_supabase_tripwire__tripwire_users",))  # fmt: skip
    assert not result.success
    return result.run_id


@pytest.mark.parametrize("fault", TELEGRAM_FAULTS, ids=str)
def test_given_telegram_fails_when_an_alert_is_due_then_held_back_and_later_sent_once(
    matrix: MatrixWorld, ticker: Ticker, fault: Fault
) -> None:
    sent = matrix.world.sandbox.telegram.messages
    row = MatrixRow(TELEGRAM, fault.name, fault.expected, fault.defect)
    MATRIX.record(row)
    run_id = failed_tripwire_run(matrix)
    announcement = f"🛑 Run refresh_supabase_tripwire failed ({run_id[:8]})."
    before = len(sent)
    with pytest.MonkeyPatch.context() as env:
        fault.inject(matrix.world, env)
        try:
            with pytest.raises(SourceError) as refused:
                TelegramResource(**TelegramResource.bound()).send("probe")
            ticker.tick()
        finally:
            clear_faults(matrix.world)
    row.message = refused.value.message
    row.observed = HELD if len(sent) == before else "sent"
    ticker.tick()
    texts = [m["text"] for m in sent]
    row.recovered = "yes" if texts.count(announcement) == 1 else "NO"
    assert row.observed == HELD and re.fullmatch(fault.message, row.message), row.message
    assert texts.count(announcement) == 1, texts[before:]


@pytest.mark.soak
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.expected == FAILS], ids=str)
def test_soak_given_one_source_down_when_refreshed_then_the_others_load(
    matrix: MatrixWorld, capsys: pytest.CaptureFixture[str], fault: Fault
) -> None:
    for source in SOURCES:
        matrix.load_clean(source)
    outcome, _ = refresh_with(matrix, [fault], capsys)
    expected = {f"refresh_{s}": s != fault.source for s in SOURCES}
    assert outcome == expected | {"rebuild_models": True}
