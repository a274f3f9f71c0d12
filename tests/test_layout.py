"""The package's import graph has no circles (#14.8): a module imports only modules
below it, counting imports inside functions and under TYPE_CHECKING too, since a
lazy import that closes a circle is a circle hidden, not gone."""
import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")


def _imports():
    """{module: set of sibling modules it imports anywhere in its body}."""
    modules = {name[:-3] for name in os.listdir(PACKAGE) if name.endswith(".py")}
    graph = {}
    for module in modules:
        with open(os.path.join(PACKAGE, module + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                dotted = node.module or ""
                if node.level == 0 and dotted.startswith("dhis2maint."):
                    dotted = dotted[len("dhis2maint."):]
                elif node.level == 0 and dotted != "dhis2maint":
                    continue
                elif node.level == 0:
                    dotted = ""
                if dotted:
                    found.add(dotted.split(".")[0])
                else:  # from . import x, y
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name.split(".")[1] for alias in node.names
                             if alias.name.startswith("dhis2maint."))
        graph[module] = {m for m in found if m in modules and m != module}
    return graph


def _circle(graph):
    """One circle as a list of modules, or None."""
    state = {}
    stack = []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_circles():
    graph = _imports()
    assert {"session", "models", "cli", "mcp", "testing"} <= set(graph)
    assert _circle(graph) is None


def test_the_graph_reader_sees_a_circle_and_lazy_imports():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = _imports()
    assert "_standin_scheduler" in graph["testing"]  # a lazy or top-level import is seen


def test_models_and_errors_know_no_features():
    graph = _imports()
    assert graph["models"] == set()
    assert graph["errors"] <= {"models"}
    assert "session" not in graph["jobs"] | graph["integrity"] | graph["scheduler"] | \
        graph["health"]
