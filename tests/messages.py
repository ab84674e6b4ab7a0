"""Every message template the system can print, read from the code's syntax tree: the sentences
given to ConfigError, SourceError, ContractError, a Diagnostic, a health Problem, an HTTP error
and the one-line warnings on stderr, with what varies shown as `…`. The README's
troubleshooting table must hold each one's key (tests/test_runbook.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("resources", "assets", "checks", "api", "health", "contract", "commands")
# call → the index (or keyword) of its message argument
SINKS: dict[str, int | str] = {
    "ConfigError": 1, "SourceError": 1, "ContractError": 0, "Diagnostic": 2, "Problem": 1,
    "HTTPException": "detail", "refuse": 1, "_unauthorized": 0, "Failure": "description",
}  # fmt: skip
# functions whose return values are printed as they are: a failed source's line in `make run`
RETURNS_MESSAGES = ("failure_line",)
GAP = "…"
BOUNDARIES = (". ", "; ", " (", ": ")


def files() -> list[Path]:
    found = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [*found, ROOT / "refresh.py"]


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _message_arg(node: ast.Call) -> ast.expr | None:
    name = _call_name(node)
    if name == "print":
        to_stderr = any(k.arg == "file" and "stderr" in ast.unparse(k.value) for k in node.keywords)
        return node.args[0] if to_stderr and node.args else None
    where = SINKS.get(name or "")
    if isinstance(where, int):
        return node.args[where] if len(node.args) > where else None
    return next((k.value for k in node.keywords if k.arg == where), None)


class _Module:
    def __init__(self, tree: ast.Module, functions: dict[str, ast.FunctionDef]) -> None:
        self.functions = functions
        self.constants = {
            target.id: node.value.value
            for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)
        }  # fmt: skip

    def texts(self, node: ast.expr, scope: ast.AST, depth: int = 0) -> list[str]:
        """Every text `node` can evaluate to, what varies as GAP; local names followed to
        their assignments in `scope` (the enclosing function)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            out = [""]
            for part in node.values:
                # a value formatted in is a name followed to its text, or what varies
                value = part.value if isinstance(part, ast.FormattedValue) else part
                pieces = [GAP] if isinstance(value, ast.Call) else self.texts(value, scope, depth)
                out = [a + b for a in out for b in pieces[:4]]
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [a + b for a in self.texts(node.left, scope, depth)
                    for b in self.texts(node.right, scope, depth)]  # fmt: skip
        if isinstance(node, ast.IfExp):
            return self.texts(node.body, scope, depth) + self.texts(node.orelse, scope, depth)
        if isinstance(node, ast.Call) and depth < 2 and _call_name(node) in self.functions:
            return self.returns(self.functions[_call_name(node) or ""], depth + 1) or [GAP]
        if isinstance(node, ast.Name):
            if node.id in self.constants:
                return [self.constants[node.id]]
            assigned = [
                self.texts(a.value, scope, depth + 1)
                for a in ast.walk(scope)
                if isinstance(a, ast.Assign)
                and depth < 2
                and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)
            ]
            return [t for group in assigned for t in group] or [GAP]  # fmt: skip
        return [GAP]

    def returns(self, function: ast.FunctionDef, depth: int = 0) -> list[str]:
        return [t for r in ast.walk(function) if isinstance(r, ast.Return) and r.value
                for t in self.texts(r.value, function, depth)]  # fmt: skip


def templates() -> Iterator[tuple[str, int, str]]:
    """(file, line, template) for every message sink in the code."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files()}
    functions = {n.name: n for tree in trees.values() for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef)}  # fmt: skip
    for path, tree in trees.items():
        module = _Module(tree, functions)
        where = str(path.relative_to(ROOT))
        for scope in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            if scope.name in RETURNS_MESSAGES:
                yield from ((where, scope.lineno, t) for t in module.returns(scope))
            for node in ast.walk(scope):
                arg = _message_arg(node) if isinstance(node, ast.Call) else None
                for text in module.texts(arg, scope) if arg is not None else ():
                    yield where, node.lineno, text


def key(template: str) -> str | None:
    """What identifies a message: its words up to the first clause's end, what varies as GAP;
    None for a template that is all variable parts (a vendor's own sentence passed through)."""
    text = " ".join(template.replace("`", "").split())
    text = re.sub(f"{GAP}(?:\\s*{GAP})+", GAP, text)
    while text.startswith(f"{GAP}: ") or text.startswith(f"{GAP} "):
        text = text.split(" ", 1)[1]
    ends = [i for b in BOUNDARIES if (i := text.find(b, 20)) > 0]
    head = text[: min(ends)] if ends else text
    head = head.rstrip(" .")
    return head if len(re.findall(r"[A-Za-z]{2,}", head)) >= 2 else None


def keys() -> dict[str, tuple[str, int]]:
    """{key: where it is first raised}."""
    found: dict[str, tuple[str, int]] = {}
    for path, line, template in templates():
        k = key(template)
        if k is not None:
            found.setdefault(k, (path, line))
    return found
