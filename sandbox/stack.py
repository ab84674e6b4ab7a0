"""The running sandbox: the world, the Supabase projects' databases, and the simulators serving
them on 127.0.0.1. `env()` gives the variables that point our resources at it."""

from __future__ import annotations

import time
from typing import Any

from resources import embedded_pg
from sandbox import supabase_db
from sandbox.postgrest import create_postgrest_app, make_jwt
from sandbox.server import SimServer
from sandbox.world import World

SUPABASE_PROJECTS = ("main", "tripwire", "traffic")
TEN_YEARS = 10 * 365 * 24 * 3600


class Sandbox:
    def __init__(
        self,
        server_uri: str,
        *,
        seed: int = 42,
        scale: float = 1.0,
        prefix: str = "sandbox",
        max_rows: int = 1000,
    ) -> None:
        self.server_uri = server_uri
        self.world = World(seed, scale)
        self.prefix = prefix
        self.max_rows = max_rows
        self.servers: dict[str, SimServer] = {}
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
                "not_a_jwt": f"sb_secret_{project}_sandbox",
            }

    def dsn(self, project: str) -> str:
        return embedded_pg.database_uri(self.server_uri, f"{self.prefix}_supabase_{project}")

    def start(self) -> Sandbox:
        for project in SUPABASE_PROJECTS:
            name = f"{self.prefix}_supabase_{project}"
            embedded_pg.drop_database(self.server_uri, name)
            embedded_pg.create_database(self.server_uri, name)
            supabase_db.create_schema(self.dsn(project), project)
            app = create_postgrest_app(
                self.dsn(project),
                project=project,
                jwt_secret=self.jwt_secrets[project],
                api_keys=self.keys[project].values(),
                max_rows=self.max_rows,
            )
            self.servers[f"supabase_{project}"] = SimServer(f"supabase_{project}", app)
        self.sync()
        for server in self.servers.values():
            server.start()
        return self

    def sync(self) -> None:
        for project in SUPABASE_PROJECTS:
            supabase_db.sync_tables(self.dsn(project), self.world.supabase[project])

    def advance(self, hours: int) -> None:
        """Move the world on and let the simulators serve its new state."""
        self.world.advance(hours)
        self.sync()

    def env(self) -> dict[str, str]:
        env = {"REPORTING_TZ": "Asia/Almaty"}
        for project in SUPABASE_PROJECTS:
            prefix = f"SUPABASE_{project.upper()}"
            env[f"{prefix}_URL"] = self.servers[f"supabase_{project}"].url
            env[f"{prefix}_SERVICE_ROLE_KEY"] = self.keys[project]["service_role"]
            env[f"{prefix}_ANON_KEY"] = self.keys[project]["anon"]
        return env

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
