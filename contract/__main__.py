"""`python -m contract discover [--apply]` (make discover / make discover-apply) and
`python -m contract accept-drift [TABLE ...]`. A configuration error is one line and exit 2;
problems discovery finds are one line each and exit 1."""

from __future__ import annotations

import argparse
import sys

from contract.config import ContractError, contract_path, load_contract
from contract.discover import apply_edits, diff, discover_supabase
from resources.canonical import CANONICAL_TABLES, PROJECTS
from resources.errors import SourceError
from resources.supabase import SupabaseResource, env_prefix, supabase_resource
from resources.warehouse import WarehouseResource


def _supabase_resources() -> dict[str, SupabaseResource]:
    """The projects' resources, bound as definitions.py binds them (the same factory)."""
    return {
        project: supabase_resource(display, env_prefix(project))
        for project, display in PROJECTS.items()
    }


def discover(apply: bool) -> int:
    path = contract_path()
    contract = load_contract(path)
    found = discover_supabase(_supabase_resources(), contract)
    extra: dict = {}
    amocrm = _amocrm_section(contract, found.problems)
    print("\n\n".join(found.sections))
    if amocrm is not None:
        text, proposed = amocrm
        print("\n" + text)
        if proposed:
            extra["amocrm"] = proposed
    old = path.read_text(encoding="utf-8")
    new = apply_edits(old, found.edits, extra) if (found.edits or extra) else old
    if new != old and diff(old, new, path.name).strip():
        print("\nProposed contract changes:\n" + diff(old, new, path.name))
        if apply:
            path.write_text(new, encoding="utf-8")
            print(f"{path.name} updated with the changes above.")
        else:
            print("Apply them with `make discover-apply` (only the lines shown change).")
    else:
        print("\nThe contract needs no change for what could be read.")
    for problem in found.problems:
        print(f"problem: {problem}")
    return 1 if found.problems else 0


def _amocrm_section(contract, problems: list[str]) -> tuple[str, dict] | None:
    """AmoCRM's pipelines and custom fields and the proposed `amocrm:` section, or None when
    AmoCRM is not configured (its problem is then one line among the others)."""
    from contract.amocrm import check_amocrm, discover_amocrm, propose_amocrm, render_amocrm
    from resources.amocrm import AmoCrmResource

    warehouse = WarehouseResource.from_environment()
    try:
        warehouse.apply_ddl()
        catalog = discover_amocrm(AmoCrmResource(**AmoCrmResource.bound()), warehouse)
    except SourceError as exc:
        problems.append(exc.message)
        return None
    problems.extend(check_amocrm(catalog, contract.amocrm))
    proposed = propose_amocrm(catalog, contract.amocrm)
    current = {"pipelines": contract.amocrm.pipelines, "utm_fields": contract.amocrm.utm_fields}
    return render_amocrm(catalog), ({} if proposed == current else proposed)


def accept_drift(tables: list[str]) -> int:
    known = [t.name for t in CANONICAL_TABLES]
    unknown = [t for t in tables if t not in known]
    if unknown:
        raise ContractError(
            f"accept-drift: no table named {', '.join(unknown)}; the tables are {', '.join(known)}."
        )
    warehouse = WarehouseResource.from_environment()
    accepted = warehouse.accept_served_schemas(tables or known)
    if not accepted:
        print("nothing to accept: none of these tables has loaded yet")
    else:
        print(f"accepted the shape served now as the baseline of: {', '.join(accepted)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m contract")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("discover", help="read the sources, propose contract changes")
    run.add_argument("--apply", action="store_true", help="write the proposed changes")
    drift = commands.add_parser("accept-drift", help="accept the served shape as the baseline")
    drift.add_argument("tables", nargs="*")
    args = parser.parse_args()
    from resources.environment import prepare_environment

    try:
        prepare_environment()
        if args.command == "discover":
            return discover(args.apply)
        return accept_drift(args.tables)
    except SourceError as exc:
        print(exc.message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
