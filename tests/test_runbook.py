"""The README as a runbook stays true to the code: its lineage picture is the one the Definitions
draw now (every asset group and every mart in it), its troubleshooting table holds every message
template the code can raise or print (read from the syntax tree: tests/messages.py), and its
diagnostics table names every diagnostic. Nothing is simulated: the checkout's own files."""

from __future__ import annotations

from assets.lineage import END, START, mermaid
from checks.diagnostics import JUDGES
from tests.conftest import ROOT
from tests.messages import keys

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _plain(text: str) -> str:
    """Markdown's code spans and line breaks do not count."""
    return " ".join(text.replace("`", "").split())


def test_given_the_definitions_then_the_readme_lineage_is_theirs_with_every_group_and_mart():
    from definitions import defs

    block = mermaid(defs)
    assert f"{START}\n{block}\n{END}" in README, "run `python -m commands.lineage --write`"
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert len(groups) == 7
    for group in groups:
        assert f"(group {group})" in block, group
    marts = [k for k in graph.get_all_asset_keys() if k.path[0] == "marts"]
    assert len(marts) == 8  # the seven marts and integration_health, the checks' asset
    for mart in marts:
        assert f'["{mart.path[-1]}"]' in block, mart


def test_given_every_message_the_code_raises_then_the_troubleshooting_table_has_its_row():
    table = _plain(_section("Troubleshooting: every message the system prints"))
    found = keys()
    assert len(found) > 100  # the reader sees them all: ConfigError, SourceError, Diagnostic, ...
    missing = {k: where for k, where in found.items() if k not in table}
    assert not missing, f"add a row for each to README's troubleshooting table: {missing}"


def test_given_every_diagnostic_then_reading_each_diagnostic_explains_it():
    table = _plain(_section("Checks, diagnostics and alerts").split("### Reading each", 1)[1])
    for name in JUDGES:
        assert name in table, name
