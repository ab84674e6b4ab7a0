"""Data flows one way, and so do the imports: clients (resources) → the source contracts →
assets (raw, core, marts) → checks → definitions.py, the only module that imports every layer →
what runs beside the Definitions (health, the API) → the command line → the sandbox and the
bench. A static import graph over every file (lazy imports inside functions included) shows no
package importing one downstream of it and no cycle among modules, within a package too; each
package, imported alone in a fresh interpreter, imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# upstream first; a name may import only names before it (and its own package's modules)
ORDER = ("resources", "contract", "assets", "checks", "definitions", "health", "api", "commands",
         "sandbox", "bench", "deploy", "refresh")  # fmt: skip


def modules() -> dict[str, Path]:
    """{dotted module name: its file} of every package of ORDER and the two top-level modules."""
    found = {}
    for name in ORDER:
        single = ROOT / f"{name}.py"
        if single.is_file():
            found[name] = single
            continue
        for path in sorted((ROOT / name).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (a function's lazy import too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            # the longest known module the name is or lies in (`from a.b import c` is a.b.c or a.b)
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imported(path, m, set(found)) for m, path in found.items()}


def layer(module: str) -> int:
    return ORDER.index(module.split(".")[0])


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules, as the path that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_package_imports_one_downstream_of_it_and_no_module_cycle():
    edges = graph()
    assert len(edges) > 90 and "checks.diagnostics" in edges  # every file was read
    upward = sorted(f"{source} imports {target}" for source, targets in edges.items()
                    for target in targets if layer(target) > layer(source))  # fmt: skip
    assert upward == [], "\n".join(upward)
    packages: dict[str, set[str]] = {}
    for source, targets in edges.items():
        packages.setdefault(source.split(".")[0], set()).update(t.split(".")[0] for t in targets)
    assert cycle({p: targets - {p} for p, targets in packages.items()}) is None
    # inside a package too: a module importing one that imports it back, however far round
    assert (found := cycle(edges)) is None, " → ".join(found)
    # definitions gathers the layers below it; what runs it (health, api, commands...) is above
    assert {"resources", "assets", "checks"} <= packages["definitions"]


def test_the_graph_sees_lazy_imports_and_cycles():
    """The checks above can fail: a lazy import inside a function counts, a cycle is found."""
    source = ROOT / "health" / "probe.py"
    assert "assets.sources" in imported(source, "health.probe", set(modules()))  # lazy there
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


# One interpreter loads the third-party libraries once, then a forked child per package imports
# that package's modules and nothing of ours before them: alone, as a fresh interpreter would,
# without paying Dagster's import a dozen times.
ALONE = """
import os, sys, traceback
import dagster, fastapi, httpx, psycopg, pydantic, sqlalchemy  # noqa: F401 - shared, not ours
failed = {}
for line in sys.stdin.read().splitlines():
    package, _, names = line.partition(" ")
    pid = os.fork()
    if pid == 0:
        try:
            for name in names.split():
                __import__(name)
        except BaseException:
            print(package, traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    os.waitpid(pid, 0)
"""


# run by the bench environment's interpreter, whose dlt and matplotlib the project does not install
PEER_ONLY = {"bench.chart", "bench.dlt_peer"}


def test_each_package_imports_alone_in_a_fresh_interpreter():
    packages: dict[str, list[str]] = {}
    for module in modules():
        if not module.endswith("__main__") and module not in PEER_ONLY:
            packages.setdefault(module.split(".")[0], []).append(module)
    assert set(packages) == set(ORDER)
    lines = "\n".join(f"{package} {' '.join(names)}" for package, names in packages.items())
    done = subprocess.run([sys.executable, "-c", ALONE], cwd=ROOT, input=lines, text=True,
                          capture_output=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
