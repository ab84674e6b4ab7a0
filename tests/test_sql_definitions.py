"""Business SQL (sql/functions) is re-applied when its file changes, never migrated."""

import shutil

from resources import sql_files

ATTRIBUTE = "SELECT core.attribute('no', 'such', 'campaign', 'at', 'all')"


def test_given_attribution_file_changed_when_ddl_applied_then_reapplied_once(
    warehouse, tmp_path, monkeypatch
):
    migrations_query = "SELECT version, applied_at FROM ops.schema_migrations"
    migrations = warehouse.fetch_all(migrations_query)
    assert warehouse.fetch_all(ATTRIBUTE) == [("unattributed",)]
    assert warehouse.fetch_all("SELECT name FROM ops.sql_definitions") == [("attribute",)]
    shutil.copytree(sql_files.FUNCTIONS_DIR, tmp_path, dirs_exist_ok=True)
    edited = tmp_path / "attribute.sql"
    edited.write_text(edited.read_text().replace("'unattributed')", "'no one')"))
    monkeypatch.setattr(sql_files, "FUNCTIONS_DIR", tmp_path)

    warehouse.apply_ddl()
    assert warehouse.fetch_all(ATTRIBUTE) == [("no one",)]
    applied = warehouse.fetch_all("SELECT applied_at FROM ops.sql_definitions")
    warehouse.apply_ddl()  # unchanged since: not applied again
    assert warehouse.fetch_all("SELECT applied_at FROM ops.sql_definitions") == applied
    # the migrations were neither re-run nor refused
    assert warehouse.fetch_all(migrations_query) == migrations
