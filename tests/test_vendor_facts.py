"""Vendor facts (status ids, windows) are declared once, beside their client: SQL binds them by
name, never as literals (applied migrations aside: they are history)."""

import re

from contract.model_params import vendor_params
from resources.amocrm import WON_STATUS_ID
from resources.facebook import PROVISIONAL_DAYS
from resources.sql_files import SQL_DIR

LITERAL_STATUS = re.compile(r"status_id\s*(=|<>|IN\s*\()\s*\d")


def test_sql_binds_status_ids_by_name_never_as_literals():
    files = [p for p in SQL_DIR.rglob("*.sql") if p.parent.name != "ddl"]
    assert files
    assert [p.name for p in files if LITERAL_STATUS.search(p.read_text())] == []


def test_vendor_params_gives_what_the_sql_names():
    sales = (SQL_DIR / "core" / "sales.sql").read_text()
    assert vendor_params(sales) == {"won_status": WON_STATUS_ID}
    daily = (SQL_DIR / "marts" / "targetologist_daily.sql").read_text()
    assert vendor_params(daily) == {"provisional_days": PROVISIONAL_DAYS}
