"""The running sandbox: the world, the Supabase projects' databases, and the simulators serving
them on 127.0.0.1. `env()` gives the variables that point our resources at it."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta
from typing import Any

from resources import embedded_pg
from resources.supabase import variable
from sandbox import supabase_db, supabase_shapes
from sandbox.amocrm import AmoCrmSimulator
from sandbox.facebook import FacebookSimulator
from sandbox.postgrest import PostgrestSimulator, create_postgrest_app, make_jwt
from sandbox.server import SimServer
from sandbox.telegram import TelegramSimulator
from sandbox.world import CURRENCY, FX_RATES, HISTORY_DAYS, Rates, World

SUPABASE_PROJECTS = ("main", "tripwire", "traffic")
TEN_YEARS = 10 * 365 * 24 * 3600
# The simulators' clock (their `Date` header) runs a little ahead of the last simulated instant,
# so a client's "now minus lag" window still covers everything the world has done.
CLOCK_AHEAD = timedelta(minutes=5)
TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID = "123456:sandbox-bot-token", "-1001234567890"
FACEBOOK_APP: dict[str, Any] = {"app_id": "1234567890", "app_secret": "sandbox-app-secret"}
AMOCRM_CLIENT: dict[str, Any] = {
    "client_id": "sandbox-integration-id",
    "client_secret": "sandbox-integration-secret",
    "redirect_uri": "https://traffic.example.kz/oauth/amocrm",
}


def _opaque(seed: int, project: str, kind: str) -> str:
    """A random-looking key body, the same for the same seed (so .local/sandbox.env is stable)."""
    return hashlib.sha256(f"{seed}/{project}/{kind}".encode()).hexdigest()[:32]


class Sandbox:
    def __init__(
        self,
        server_uri: str,
        *,
        seed: int = 42,
        scale: float = 1.0,
        prefix: str = "sandbox",
        max_rows: int = 1000,
        amocrm_rate: float = 7.0,
        facebook_polls: int = 2,
        facebook_budget: int = 3000,
        variant: str = "default",
        rates: Rates | None = None,
        history_days: int = HISTORY_DAYS,
    ) -> None:
        self.server_uri = server_uri
        self.world = World(seed, scale, rates, history_days)
        # how the Supabase projects store the world's rows (`supabase_shapes.VARIANTS`)
        self.variant = variant
        self.shapes = supabase_shapes.shapes(variant)
        self.prefix = prefix
        self.max_rows = max_rows
        # the credentials the simulators accept, set before `start()` to any others
        self.fb_token = f"EAAsandbox{seed}token"
        self.facebook_app: dict[str, Any] = dict(FACEBOOK_APP)
        self.amocrm_client: dict[str, Any] = dict(AMOCRM_CLIENT)
        self.amocrm_pair = (f"sandbox-access-{seed}", f"sandbox-refresh-{seed}")
        self.telegram_token = TELEGRAM_BOT_TOKEN
        self.amocrm_rate = amocrm_rate
        self.facebook_options: dict[str, Any] = {
            "polls_until_done": facebook_polls,
            "calls_per_hour_budget": facebook_budget,
        }
        self.servers: dict[str, SimServer] = {}
        self.postgrest: dict[str, PostgrestSimulator] = {}
        now = int(time.time())
        self.keys: dict[str, dict[str, str]] = {}
        self.jwt_secrets: dict[str, str] = {}
        for project in SUPABASE_PROJECTS:
            secret = f"sandbox-{project}-jwt-secret-{seed}"
            self.jwt_secrets[project] = secret
            self.keys[project] = {
                "service_role": make_jwt(secret, "service_role", now + TEN_YEARS),
                "anon": make_jwt(secret, "anon", now + TEN_YEARS),
                # keys the gateway accepts but PostgREST refuses, as a rotated secret would leave
                "expired": make_jwt(secret, "service_role", now - 3600),
                "wrong_secret": make_jwt(f"{secret}-rotated", "service_role", now + TEN_YEARS),
                # a garbage bearer: not a JWT, and not one of the new sb_ keys either
                "not_a_jwt": f"sandbox-{project}-not-a-jwt",
                # the new API keys: opaque, told apart by their prefix, not JWTs
                "publishable": f"sb_publishable_{_opaque(seed, project, 'publishable')}",
                "secret": f"sb_secret_{_opaque(seed, project, 'secret')}",
            }

    def clock(self) -> datetime:
        return self.world.now + CLOCK_AHEAD

    def dsn(self, project: str) -> str:
        return embedded_pg.database_uri(self.server_uri, f"{self.prefix}_supabase_{project}")

    def start(self) -> Sandbox:
        for project in SUPABASE_PROJECTS:
            name = f"{self.prefix}_supabase_{project}"
            embedded_pg.drop_database(self.server_uri, name)
            embedded_pg.create_database(self.server_uri, name)
            supabase_db.create_schema(self.dsn(project), project, self.shapes[project])
            app = create_postgrest_app(
                self.dsn(project),
                project=project,
                jwt_secret=self.jwt_secrets[project],
                api_keys=self.keys[project].values(),
                max_rows=self.max_rows,
            )
            self.postgrest[project] = app.state.simulator
            self.servers[f"supabase_{project}"] = SimServer(
                f"supabase_{project}", app, clock=self.clock
            )
        self.amocrm = AmoCrmSimulator(
            self.world,
            **self.amocrm_client,
            access_token=self.amocrm_pair[0],
            refresh_token=self.amocrm_pair[1],
            rate_limit_per_second=self.amocrm_rate,
        )
        self.servers["amocrm"] = SimServer("amocrm", self.amocrm.app, clock=self.clock)
        self.facebook = FacebookSimulator(
            self.world, **self.facebook_app, access_token=self.fb_token, **self.facebook_options
        )
        self.servers["facebook"] = SimServer("facebook", self.facebook.app, clock=self.clock)
        self.telegram = TelegramSimulator(self.telegram_token, TELEGRAM_CHAT_ID)
        self.servers["telegram"] = SimServer("telegram", self.telegram.app)
        self.sync()
        for server in self.servers.values():
            server.start()
        return self

    def sync(self) -> None:
        for project in SUPABASE_PROJECTS:
            supabase_db.sync_tables(
                self.dsn(project), self.world.supabase[project], self.shapes[project]
            )

    def alter_source(
        self,
        project: str,
        table: str,
        *,
        add: dict[str, str] | None = None,
        drop: list[str] | None = None,
    ) -> None:
        """ALTER TABLE on a project's database, as a user's app migration would: `add` maps new
        column names to their PostgreSQL type (they stay NULL, the world knows nothing of them),
        `drop` lists columns to remove. Later syncs write only the columns that exist, and the
        Data API serves the new shape from its next request."""
        add, drop = add or {}, drop or []
        shape = supabase_shapes.altered(self.shapes[project][table], add, drop)
        supabase_db.alter_table(self.dsn(project), table, add=add, drop=drop)
        self.shapes[project][table] = shape
        if project in self.postgrest:
            # Supabase reloads PostgREST's schema cache on DDL (its event trigger notifies it)
            self.postgrest[project].cache.invalidate()

    def advance(self, hours: int) -> None:
        """Move the world on and let the simulators serve its new state."""
        self.world.advance(hours)
        self.sync()

    def env(self) -> dict[str, str]:
        env = {
            "REPORTING_TZ": "Asia/Almaty",
            "REPORTING_CURRENCY": CURRENCY,
            "FX_RATES": ",".join(f"{c}={r}" for c, r in FX_RATES.items()),
        }
        for project in SUPABASE_PROJECTS:
            env[variable(project, "url")] = self.servers[f"supabase_{project}"].url
            env[variable(project, "service_role_key")] = self.keys[project]["service_role"]
            env[variable(project, "anon_key")] = self.keys[project]["anon"]
        env |= {
            "AMOCRM_BASE_URL": self.servers["amocrm"].url,
            "AMOCRM_CLIENT_ID": self.amocrm_client["client_id"],
            "AMOCRM_CLIENT_SECRET": self.amocrm_client["client_secret"],
            "AMOCRM_REDIRECT_URI": self.amocrm_client["redirect_uri"],
            "AMOCRM_ACCESS_TOKEN": self.amocrm_pair[0],
            "AMOCRM_REFRESH_TOKEN": self.amocrm_pair[1],
            "FACEBOOK_GRAPH_URL": self.servers["facebook"].url,
            "FACEBOOK_API_VERSION": "v25.0",
            "FACEBOOK_ACCESS_TOKEN": self.fb_token,
            "FACEBOOK_APP_ID": self.facebook_app["app_id"],
            "FACEBOOK_APP_SECRET": self.facebook_app["app_secret"],
            "FACEBOOK_AD_ACCOUNT_IDS": ",".join(self.world.fb_accounts),
            "TELEGRAM_API_URL": self.servers["telegram"].url,
            "TELEGRAM_BOT_TOKEN": self.telegram_token,
            "TELEGRAM_CHAT_ID": TELEGRAM_CHAT_ID,
        }
        return env

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
