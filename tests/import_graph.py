"""The import graph of the product's modules, its cycles, and uses of other modules' privates.

Every import counts: at module level, inside functions and under ``if TYPE_CHECKING:`` — a
cycle hidden in a function or a type hint is still two modules that need each other.

    python tests/import_graph.py         # print the cycles and private uses, exit 1 if any
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package name -> its directory: the library, the shipped plugins, the example apps
PRODUCT = {
    "mediasrv": ROOT / "mediasrv",
    "mediasrv_chat": ROOT / "plugins" / "chat" / "mediasrv_chat",
    "mediasrv_proxy": ROOT / "plugins" / "proxy" / "mediasrv_proxy",
    "mediasrv_strongauth": ROOT / "plugins" / "strongauth" / "mediasrv_strongauth",
    "examples": ROOT / "examples",
}
# names that begin with an underscore and are public all the same
PUBLIC_UNDERSCORE = {
    "_core",  # the data plane's extension module, mediasrv._core
    "_replace",  # namedtuple / dataclasses API
    "_asdict",
    "_fields",
    "_exit",  # os._exit
}


# Privates of other modules that product code may use, each with the reason. Keep it short:
# a use of our own modules' privates is mended (made public, or passed in), never listed.
ALLOWED_PRIVATE: dict[tuple[str, str], str] = {
    # aiortc's RTCSctpTransport takes inbound SCTP only through its DTLS transport's receive
    # loop; the adapter feeds it packets from our DTLS session through the same entry
    ("mediasrv.sctp_adapter", "_handle_data"): "aiortc has no public inbound-SCTP call",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported product module
    line: int


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: list[Import] = field(default_factory=list)


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load(product: dict[str, Path] = PRODUCT) -> dict[str, Module]:
    """Every product module (tests folders left out), parsed, with its imports resolved."""
    modules: dict[str, Module] = {}
    for package, root in product.items():
        for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.pyi")):
            if "tests" in path.relative_to(root).parts:
                continue
            name = module_name(package, root, path)
            if name in modules:  # a .pyi beside its .py
                continue
            modules[name] = Module(name, path, ast.parse(path.read_text("utf-8"), str(path)))
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _imports(module: Module, modules: dict[str, Module]) -> Iterator[Import]:
    is_package = module.path.stem == "__init__"
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.name.split(".")
                if not is_package:
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            # `from a import b`: the module a.b when there is one, else a itself
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module.name:
                yield Import(module.name, name, node.lineno)


def cycles(modules: dict[str, Module]) -> list[list[Import]]:
    """One cycle through each strongly connected group of modules (Tarjan), as its imports:
    mending it may leave another cycle in the same group, shown on the next run."""
    edges: dict[str, list[Import]] = {name: [] for name in modules}
    for module in modules.values():
        for imp in module.imports:
            if all(imp.target != other.target for other in edges[imp.source]):
                edges[imp.source].append(imp)
    groups = _strongly_connected(edges)
    return [_cycle_in(group, edges) for group in groups if len(group) > 1]


def _strongly_connected(edges: dict[str, list[Import]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in edges:
        if start in index:
            continue
        work: list[tuple[str, Iterator[Import]]] = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                target = child.target
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _cycle_in(group: set[str], edges: dict[str, list[Import]]) -> list[Import]:
    """The shortest cycle through the group's first module (breadth-first)."""
    start = min(group)
    came: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for imp in edges[node]:
                if imp.target not in group:
                    continue
                if imp.target == start:
                    path = [imp]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                if imp.target not in came:
                    came[imp.target] = imp
                    following.append(imp.target)
        frontier = following
    raise AssertionError(f"no cycle in {sorted(group)}")  # a group of 2+ always has one


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def describe(cycle: list[Import], modules: dict[str, Module]) -> str:
    steps = [
        f"{imp.source} → {imp.target} ({_shown(modules[imp.source].path)}:{imp.line})"
        for imp in cycle
    ]
    return "cycle: " + ", ".join(steps)


@dataclass(frozen=True)
class PrivateUse:
    module: str
    name: str
    line: int
    text: str


def _defined_here(tree: ast.Module) -> set[str]:
    """The underscore names this module defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def private_uses(modules: dict[str, Module]) -> Iterator[PrivateUse]:
    """``x._name`` where x is not self/cls/super() and this module does not define _name, and
    ``from m import _name``: one module reaching into another's privates."""
    for module in modules.values():
        own = _defined_here(module.tree)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                value = node.value
                if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                    continue
                if isinstance(value, ast.Call) and ast.unparse(value.func) == "super":
                    continue
                if node.attr in own:
                    continue
                yield PrivateUse(module.name, node.attr, node.lineno, ast.unparse(node))
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if _private(alias.name):
                        yield PrivateUse(
                            module.name, alias.name, node.lineno, f"from {node.module} import"
                        )


def report(lines: Iterable[str]) -> int:
    shown = list(lines)
    for line in shown:
        print(line)
    return 1 if shown else 0


def main() -> int:
    modules = load()
    found = [describe(cycle, modules) for cycle in cycles(modules)]
    found += [
        f"private: {use.module}:{use.line}: {use.text}"
        for use in private_uses(modules)
        if (use.module, use.name) not in ALLOWED_PRIVATE
    ]
    return report(found)


if __name__ == "__main__":
    sys.exit(main())
