"""The environment every command runs in, set up in one place: the settings file (`.env` or the
file ENV_FILE names), the database URLs (WAREHOUSE_URL, DAGSTER_PG_URL: the user's, else the
embedded server's) and DAGSTER_HOME with the project's instance config. Plus the one way a
command turns a setting's mistake into one line and exit 2."""

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import sqlalchemy.exc

from resources import embedded_pg
from resources.errors import SourceError
from resources.settings import load_env_file

ROOT = Path(__file__).resolve().parent.parent
DAGSTER_HOME = ROOT / ".local" / "dagster_home"
INSTANCE_CONFIG = ROOT / "instance" / "dagster.yaml"


def env_file() -> Path:
    """The settings file every command loads: ENV_FILE, else `.env` at the checkout's root."""
    return Path(os.environ.get("ENV_FILE") or ROOT / ".env")


def load_settings_file() -> None:
    """The settings file's variables, under the environment's own (those win)."""
    load_env_file(env_file())


def install_instance_config(home: Path) -> Path:
    """`home` as a DAGSTER_HOME holding the project's dagster.yaml (storage: DAGSTER_PG_URL)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


def prepare_environment() -> None:
    """Load `.env`, resolve the database URLs, and point DAGSTER_HOME at our instance config."""
    load_settings_file()
    os.environ.update(embedded_pg.resolve_urls())
    install_instance_config(DAGSTER_HOME)
    os.environ.setdefault("DAGSTER_HOME", str(DAGSTER_HOME))


def configuration_errors(run: Callable[[], int]) -> int:
    """Run a command; a setting's mistake is its one line on stderr and exit 2, never a
    traceback (an unreachable warehouse counts: its URL is a setting)."""
    try:
        return run()
    except SourceError as exc:
        print(exc.message, file=sys.stderr)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"Warehouse: cannot connect ({reason}); check WAREHOUSE_URL.", file=sys.stderr)
    return 2
