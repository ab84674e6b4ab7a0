"""The lineage picture in the README, drawn from the Definitions' own asset graph (a Mermaid
flowchart): each vendor → its raw asset group → core → marts → the checks → the dashboard.

    python -m commands.lineage           # print the Mermaid block
    python -m commands.lineage --write   # put it into README.md between its two markers

A test compares README's block with this output, so a new asset, group or check shows up there
or fails the suite.
"""

import re
from collections import defaultdict
from pathlib import Path

import dagster as dg

from assets.jobs import MODEL_GROUPS
from resources.canonical import PROJECTS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- lineage: python -m commands.lineage --write -->", "<!-- lineage end -->"
VENDORS = {
    "amocrm": "AmoCRM REST v4",
    "facebook": "Facebook Marketing API",
    **{f"supabase_{p}": f"Supabase {name} (PostgREST)" for p, name in PROJECTS.items()},
}
DASHBOARD = "dashboard API, charts page, BI tools: dashboard_reader"


def _node(key: dg.AssetKey) -> str:
    return "_".join(key.path)


def mermaid(defs: dg.Definitions) -> str:
    """The flowchart: raw groups as boxes of their tables, every core and marts asset a node,
    an edge from a group to each model that reads any of its tables."""
    graph = defs.resolve_asset_graph()
    by_group: dict[str, list[dg.AssetKey]] = defaultdict(list)
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        by_group[graph.get(key).group_name or "default"].append(key)
    checks: dict[str, int] = defaultdict(int)
    for check in graph.asset_check_keys:
        checks[graph.get(check.asset_key).group_name or "default"] += 1
    lines = ["```mermaid", "flowchart LR"]
    sources = [g for g in by_group if g not in MODEL_GROUPS]
    for group in sorted(sources):
        lines.append(f'  v_{group}[("{VENDORS.get(group, group)}")] --> g_{group}')
    for group in (*sorted(sources), *MODEL_GROUPS):
        schema = by_group[group][0].path[0]
        count = f"{checks[group]} check{'s' * (checks[group] != 1)}"
        lines.append(f'  subgraph g_{group}["{schema} (group {group}): {count}"]')
        lines += [f'    {_node(k)}["{k.path[-1]}"]' for k in by_group[group]]
        lines.append("  end")
    for group in MODEL_GROUPS:
        for key in by_group[group]:
            parents = graph.get(key).parent_keys
            feeding = sorted({graph.get(p).group_name or "default" for p in parents})
            for parent_group in feeding:
                if parent_group in MODEL_GROUPS:
                    lines += [f"  {_node(p)} --> {_node(key)}" for p in sorted(
                        parents, key=lambda k: k.to_user_string())
                        if graph.get(p).group_name == parent_group]  # fmt: skip
                else:
                    lines.append(f"  g_{parent_group} --> {_node(key)}")
    lines.append('  checks{{"asset checks: diagnostics, quality, schema drift, freshness"}}')
    lines += [f"  g_{g} -.-> checks" for g in (*sorted(sources), *MODEL_GROUPS) if checks[g]]
    lines.append("  checks --> marts_integration_health")  # its one writer
    lines.append(f'  api(["{DASHBOARD}"])')
    lines += ["  g_marts --> api", "```"]
    return "\n".join(lines)


def with_block(readme: str, block: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no lineage markers ({START} ... {END})")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", readme)
