"""`make settings` (`python -m commands.settings`): every resource of the Definitions with the
variables it reads and those unset (from the environment and the settings file), never a value.
Exit 0; it touches no network and no database."""

from definitions import resources
from resources.embedded_pg import STANDS_IN_FOR
from resources.environment import load_settings_file
from resources.settings import settings_line


def main() -> int:
    load_settings_file()
    stand_ins = dict.fromkeys(STANDS_IN_FOR, "the embedded PostgreSQL")
    for key, resource in resources.items():
        print(settings_line(key, resource, stand_ins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
