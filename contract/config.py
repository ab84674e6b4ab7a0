"""The contract file (`contract.yaml`, or the file `CONTRACT_FILE` names): how this account's
source tables meet the canonical columns. Read when a run or `make discover` starts, never at
import; every mistake in it is one sentence naming the file, the line and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from resources.canonical import CANONICAL_TABLES, MATCH_TYPES, PROJECTS, CanonicalTable
from resources.errors import ConfigError
from resources.settings import env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "contract.yaml"
ENTRY_KEYS = ("table", "key", "cursor", "reread_hours", "timezone", "columns")
CURSOR_WORDS = ("auto", "key", "snapshot")  # anything else names a timestamp column
KIND_WORDS = {str: "text", int: "a number", float: "a number", bool: "true or false"}
UTM_FIELD_NAMES = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


@dataclass(frozen=True)
class Constant:
    value: str | int | float | bool | None


# A canonical column's mapping: source columns tried in order, or a constant (None: not served).
Mapping = tuple[str, ...] | Constant


@dataclass(frozen=True)
class TableEntry:
    canonical: CanonicalTable
    table: str
    key: str | None = None  # None: the primary key discovery reports
    cursor: str = "auto"
    reread_hours: float = 24.0
    timezone: str = "UTC"  # what `timestamp without time zone` values mean
    columns: dict[str, Mapping] = field(default_factory=dict)

    def mapping(self, column: str) -> Mapping:
        """The contract's mapping for `column`, or the canonical default candidates."""
        return self.columns.get(column, self.canonical.column(column).defaults)


@dataclass(frozen=True)
class AmoCrmEntry:
    pipelines: dict[str, int | str] = field(default_factory=dict)  # express | flagship → id/name
    utm_fields: dict[str, int | str] = field(default_factory=dict)  # utm_* → code, name or id


@dataclass(frozen=True)
class Contract:
    path: Path
    tables: dict[str, TableEntry]  # by canonical table name
    amocrm: AmoCrmEntry

    def entry(self, name: str) -> TableEntry:
        return self.tables[name]


class ContractError(ConfigError):
    def __init__(self, message: str) -> None:
        super().__init__("contract", message)


def contract_path() -> Path:
    named = env("CONTRACT_FILE")
    return Path(named) if named else DEFAULT_FILE


def load_contract(path: Path | None = None) -> Contract:
    path = path or contract_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(
            f"{path}: cannot read the contract file ({exc.strerror}); set CONTRACT_FILE to a "
            "readable file, or unset it to use contract.yaml."
        ) from None
    return parse_contract(text, path)


def parse_contract(text: str, path: Path) -> Contract:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ContractError(f"{path}{where}: {problem}; fix the YAML syntax.") from None
    reader = _Reader(path)
    top = reader.mapping(root, "the file", ("version", "supabase", "amocrm"))
    tables = {t.name: TableEntry(t, t.name) for t in CANONICAL_TABLES}
    projects = reader.mapping(top.get("supabase"), "supabase", tuple(PROJECTS))
    for project, node in projects.items():
        names = tuple(t.name for t in CANONICAL_TABLES if t.project == project)
        for name, entry in reader.mapping(node, f"supabase.{project}", names).items():
            tables[name] = reader.table_entry(entry, tables[name].canonical)
    return Contract(path, tables, reader.amocrm(top.get("amocrm")))


class _Reader:
    """Turns the YAML node tree into entries, raising ContractError at the offending line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str) -> ContractError:
        line = f" line {node.start_mark.line + 1}" if node is not None else ""
        return ContractError(f"{self.path}{line}: {message}")

    def mapping(
        self, node: yaml.Node | None, what: str, allowed: tuple[str, ...]
    ) -> dict[str, yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping of keys to values.")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = key_node.value
            if key not in allowed:
                raise self.fail(
                    key_node,
                    f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}.",
                )
            out[key] = value
        return out

    def scalar(self, node: yaml.Node, what: str, kinds: tuple[type, ...]) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value.")
        value = yaml.safe_load(yaml.serialize(node))
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(dict.fromkeys(KIND_WORDS[k] for k in kinds))
            raise self.fail(node, f"{what} must be {wanted} (got {value!r}).")
        return value

    def table_entry(self, node: yaml.Node, canonical: CanonicalTable) -> TableEntry:
        where = f"supabase.{canonical.project}.{canonical.name}"
        fields = self.mapping(node, where, ENTRY_KEYS)
        entry: dict[str, Any] = {"table": canonical.name}
        for name in ("table", "key", "cursor", "timezone"):
            if name in fields:
                entry[name] = self.scalar(fields[name], f"{where}.{name}", (str,))
        if "reread_hours" in fields:
            hours = self.scalar(fields["reread_hours"], f"{where}.reread_hours", (int, float))
            if hours <= 0:
                raise self.fail(fields["reread_hours"], f"{where}.reread_hours must be > 0.")
            entry["reread_hours"] = float(hours)
        if "timezone" in entry:
            _check_zone(self, fields["timezone"], f"{where}.timezone", entry["timezone"])
        allowed = tuple(c.name for c in canonical.columns)
        columns = self.mapping(fields.get("columns"), f"{where}.columns", allowed)
        entry["columns"] = {
            name: self.column_mapping(value, f"{where}.columns.{name}", name)
            for name, value in columns.items()
        }
        return TableEntry(canonical, **entry)

    def column_mapping(self, node: yaml.Node, what: str, column: str) -> Mapping:
        if isinstance(node, yaml.ScalarNode):
            value = yaml.safe_load(yaml.serialize(node))
            if value is None:
                return Constant(None)
            return (self.scalar(node, what, (str,)),)
        if isinstance(node, yaml.SequenceNode):
            names = tuple(self.scalar(item, what, (str,)) for item in node.value)
            if not names:
                raise self.fail(node, f"{what}: list at least one source column, or write null.")
            return names
        fields = self.mapping(node, what, ("value",))
        if "value" not in fields:
            raise self.fail(node, f"{what}: a constant is written {{value: ...}}.")
        value = self.scalar(fields["value"], f"{what}.value", (str, int, float, bool))
        if column == "match_type" and value not in MATCH_TYPES:
            raise self.fail(
                fields["value"], f"{what}.value must be one of {', '.join(MATCH_TYPES)}."
            )
        return Constant(value)

    def amocrm(self, node: yaml.Node | None) -> AmoCrmEntry:
        fields = self.mapping(node, "amocrm", ("pipelines", "utm_fields"))
        pipelines = self.mapping(fields.get("pipelines"), "amocrm.pipelines",
                                 ("express", "flagship"))  # fmt: skip
        utm = self.mapping(fields.get("utm_fields"), "amocrm.utm_fields", UTM_FIELD_NAMES)
        return AmoCrmEntry(
            {k: self.scalar(v, f"amocrm.pipelines.{k}", (int, str)) for k, v in pipelines.items()},
            {k: self.scalar(v, f"amocrm.utm_fields.{k}", (int, str)) for k, v in utm.items()},
        )


def _check_zone(reader: _Reader, node: yaml.Node, what: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise reader.fail(node, f"{what}: {name!r} is not an IANA time zone (e.g. UTC).") from None
