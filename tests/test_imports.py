"""The package's modules import in one direction: no module imports itself through others."""

from __future__ import annotations

import ast
import pathlib

import avatarkit

PACKAGE = pathlib.Path(avatarkit.__file__).parent


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    base = current.split(".") if is_package else current.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def runtime_imports(path: pathlib.Path) -> set[str]:
    """The package modules ``path`` imports at module level, ``if TYPE_CHECKING:`` blocks included.

    Type-only imports count: a circle that only a type checker walks still ties the modules
    together. Imports inside functions run later, on use; they are the way to reach up, not a circle.
    """
    tree = ast.parse(path.read_text())
    name = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("avatarkit"))
            elif isinstance(node, ast.ImportFrom):
                module = resolve(name, is_package, node.level, node.module) if node.level else node.module or ""
                if not module.startswith("avatarkit"):
                    continue
                found.add(module)
                # ``from . import codec`` imports the submodule codec.
                for alias in node.names:
                    candidate = f"{module}.{alias.name}"
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                        PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                    ).exists():
                        found.add(candidate)

    visit(tree.body)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "assets/samples" in path.as_posix():
            continue  # the sample generator: build-time code, not imported by the library
        graph[module_name(path)] = runtime_imports(path)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "avatarkit":
                continue  # the top-level package imports nothing eagerly (PEP 562)
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_imports_in_a_circle() -> None:
    graph = import_graph()
    assert "avatarkit.controller" in graph["avatarkit.view"]  # the graph is read at all
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_checker_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_client_flows_one_way() -> None:
    """Transports, playback and the mixer know nothing of the controller or the view."""
    graph = import_graph()
    for low in ("avatarkit.transport", "avatarkit.playback", "avatarkit.mixer", "avatarkit.events", "avatarkit.audio"):
        assert not graph[low] & {"avatarkit.controller", "avatarkit.view"}, low
    assert "avatarkit.playback" not in graph["avatarkit.mixer"]
    assert "avatarkit.transport" not in graph["avatarkit.playback"]
