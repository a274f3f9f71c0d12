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
    assert graph["errors"] <= {"models", "followups"}
    assert graph["followups"] <= {"models"}
    assert "session" not in graph["jobs"] | graph["integrity"] | graph["jobconfigs"] | \
        graph["validation"] | graph["jobstart"] | graph["health"] | graph["doctor"]


# ---------------------------------------------------------------------------
# One home per domain (#20.5): related methods live in one mixin, and no mixin
# calls another mixin's private helpers.

def _mixins():
    """{module name: (mixin class, its own attribute names)} for every feature mixin."""
    import dhis2maint
    out = {}
    for cls in dhis2maint.Session.__mro__:
        module = cls.__module__
        if module.startswith("dhis2maint.") and cls.__name__.endswith("Mixin"):
            out[module.rsplit(".", 1)[1]] = (cls, set(vars(cls)))
    return out


def test_each_domain_has_one_home():
    import dhis2maint
    home = {name: getattr(dhis2maint.Session, name).__module__ for name in (
        "list_job_configurations", "get_job_configuration", "run_job_configuration",
        "wait_for_job_configuration", "enable_job_configuration", "disable_job_configuration",
        "cancel_job", "create_job_configuration", "update_job_configuration",
        "delete_job_configuration", "run_validation_analysis", "iter_validation_results",
        "list_validation_results", "delete_validation_results",
        "send_validation_notifications")}
    job_configurations = {home[n] for n in home if "validation" not in n}
    validation = {home[n] for n in home if "validation" in n}
    assert job_configurations == {"dhis2maint.jobconfigs"}
    assert validation == {"dhis2maint.validation"}


def test_no_mixin_calls_another_mixins_private_helpers():
    import ast
    mixins = _mixins()
    private = {name: module for module, (_cls, names) in mixins.items() for name in names
               if name.startswith("_") and not name.startswith("__")}
    crossings = []
    for module in mixins:
        with open(os.path.join(PACKAGE, module + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private \
                    and private[node.attr] != module:
                crossings.append("{}: .{} of {}".format(module, node.attr, private[node.attr]))
    assert crossings == []
