"""Discovery: read each configured project's tables, say how the contract meets them, and
propose the contract changes a mapping needs (as a diff; applying them is a separate step)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from tabulate import tabulate

from contract.config import Constant, Contract, ContractError, TableEntry
from contract.plan import TablePlan, entry_path, plan_table
from resources.canonical import CANONICAL_TABLES, PROJECTS
from resources.errors import SourceError
from resources.supabase import SupabaseResource, TableShape

GUESS_CUTOFF = 0.6  # difflib ratio: "source" for utm_source is 0.75, "sold" for amount 0.2


@dataclass
class Discovery:
    """What discovery found: printable sections, contract edits, and the problems left."""

    sections: list[str] = field(default_factory=list)
    edits: dict[str, dict[str, Any]] = field(default_factory=dict)  # entry path → keys
    problems: list[str] = field(default_factory=list)


def discover_supabase(resources: dict[str, SupabaseResource], contract: Contract) -> Discovery:
    found = Discovery()
    for project, display in PROJECTS.items():
        resource = resources[project]
        try:
            with resource.open() as api:
                shapes = api.describe()
        except SourceError as exc:
            found.problems.append(exc.message)
            found.sections.append(f"Supabase {display}: not read (see the problems below)")
            continue
        found.sections.append(_project_section(display, shapes))
        for table in (t for t in CANONICAL_TABLES if t.project == project):
            _meet(found, contract.entry(table.name), shapes)
    return found


def _project_section(display: str, shapes: dict[str, TableShape]) -> str:
    lines = [f"Supabase {display}: {len(shapes)} tables"]
    for name, shape in sorted(shapes.items()):
        rows = [(c.name, c.type, "yes" if c.required else "", "pk" if c.name in shape.primary_key
                 else "") for c in shape.columns]  # fmt: skip
        lines.append(f"\n  {name}")
        table = tabulate(rows, headers=("column", "type", "not null", "key"), tablefmt="simple")
        lines += ["    " + line for line in table.splitlines()]
    return "\n".join(lines)


def _meet(found: Discovery, entry: TableEntry, shapes: dict[str, TableShape]) -> None:
    """Plan the entry against the discovered table, proposing edits until it plans."""
    edits: dict[str, Any] = {}
    if entry.table not in shapes:
        guess = difflib.get_close_matches(entry.table, list(shapes), n=1, cutoff=GUESS_CUTOFF)
        if not guess:
            found.problems.append(
                f"{entry_path(entry)}: no table {entry.table!r} in the project (tables: "
                f"{', '.join(sorted(shapes))}); write `table: <name>` for it."
            )
            return
        edits["table"] = guess[0]
        entry = replace(entry, table=guess[0])
    shape = shapes[entry.table]
    columns = dict(entry.columns)
    for column in entry.canonical.columns:
        if column.name in entry.columns:
            continue
        if any(shape.column(n) for n in column.defaults):
            continue
        proposal = _guess(column.name, shape, entry)
        if proposal is not None:
            columns[column.name] = proposal
            edits.setdefault("columns", {})[column.name] = _yaml_value(proposal)
    entry = replace(entry, columns=columns)
    try:
        plan = plan_table(entry, shape)
    except ContractError as exc:
        found.problems.append(exc.message)
        return
    found.sections.append(_plan_line(plan))
    if edits:
        found.edits[entry_path(entry)] = edits


def _guess(name: str, shape: TableShape, entry: TableEntry) -> tuple[str, ...] | Constant | None:
    taken = {n for c in entry.canonical.columns for n in c.defaults if shape.column(n)}
    free = [c for c in shape.names if c not in taken]
    close = difflib.get_close_matches(name, free, n=1, cutoff=GUESS_CUTOFF)
    if close:
        return (close[0],)
    if name == "match_type" and shape.column("pattern"):
        # a rules table without a match type holds patterns of one syntax: SQL LIKE is the
        # usual one (check the patterns: % and _ are its wildcards)
        return Constant("like")
    if not entry.canonical.column(name).required:
        return Constant(None)  # declared absent: the staging view says NULL, knowingly
    return None


def _yaml_value(mapping: tuple[str, ...] | Constant) -> Any:
    if isinstance(mapping, Constant):
        return None if mapping.value is None else {"value": mapping.value}
    return mapping[0] if len(mapping) == 1 else list(mapping)


def _plan_line(plan: TablePlan) -> str:
    feeds = ", ".join(
        f"{f.canonical.name}←{f.describe}" for f in plan.feeds if f.describe != f.canonical.name
    )
    return (
        f"{entry_path(plan.entry)}: table {plan.entry.table}, key {plan.key.name} "
        f"({plan.key.type}), cursor {plan.cursor.kind}"
        + (f" on {plan.cursor.column}" if plan.cursor.column else "")
        + f" ({plan.cursor.reason})"
        + (f"; mapped {feeds}" if feeds else "")
    )


def apply_edits(text: str, edits: dict[str, dict[str, Any]], extra: dict[str, Any]) -> str:
    """The contract file with the edits applied: its leading comment block kept, the body
    rewritten from the merged document (`extra` merges top-level sections, e.g. amocrm)."""
    document = yaml.safe_load(text) or {}
    for path, keys in edits.items():
        node = document
        for part in path.split("."):
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        for key, value in keys.items():
            if key == "columns":
                node.setdefault("columns", {}).update(value)
            else:
                node[key] = value
    for key, value in extra.items():
        document[key] = value
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(header) + ("\n" if header else "") + body


def diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), name, f"{name} (proposed)"
    )
    return "".join(lines)
