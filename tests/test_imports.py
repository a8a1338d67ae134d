"""The library's modules form layers (docs/design.md §7 and the module docstrings): no cycle among the imports that eisbach_lib
modules make of each other at module level, and an import inside a function only where it keeps a
heavy or optional package out of the importing module's load, saying which on its line or on a
comment line right above it (``# heavy: torch``, ``# heavy: diffusers (.models imports it)``,
``# optional: ipywidgets``). Imports made only for type checkers (``if TYPE_CHECKING:``) do not count.

The tests' own modules: no test module imports another test module (what two of
them share lives in tests/helpers.py, series_run.py or conftest.py) and no test file edits sys.path.

The checks parse eisbach_lib/*.py and tests/*.py with `ast` and import nothing. `python tests/test_imports.py`
prints the layers (a module's layer is one above the highest module it imports; 0 imports none)
and every import inside a function with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "eisbach_lib"
TESTS = Path(__file__).resolve().parent
REASON = re.compile(r"#\s*(heavy|optional):\s*\S")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def internal_targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The eisbach_lib modules an import statement names (`from .x import y`, `from . import x`,
    `from eisbach_lib.x import y`, `import eisbach_lib.x`)."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("eisbach_lib.")]
    if node.level == 1 or (node.level == 0 and (node.module or "").split(".")[0] == "eisbach_lib"):
        parts = (node.module or "").split(".")[node.level == 0:]
        if parts and parts[0]:
            return [parts[0]] if parts[0] in modules else []
        return [a.name for a in node.names if a.name in modules]
    return []


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: outside every function, and not
    under `if TYPE_CHECKING:` (class bodies and top-level `try`/`if` blocks count)."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif not isinstance(node, FUNCTIONS) and not _is_type_checking(node):
            todo.extend(ast.iter_child_nodes(node))
    return out


def function_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement inside a function or method body, at any depth."""
    return sorted({sub for node in ast.walk(tree) if isinstance(node, FUNCTIONS) for sub in ast.walk(node)
                   if isinstance(sub, (ast.Import, ast.ImportFrom))}, key=lambda n: n.lineno)


def parse_library(lib: Path = LIB) -> dict[str, tuple[ast.Module, list[str]]]:
    """module name -> (its ast, its source lines), for every eisbach_lib/*.py."""
    return {p.stem: (ast.parse(p.read_text(), filename=str(p)), p.read_text().splitlines())
            for p in sorted(lib.glob("*.py"))}


def import_graph(parsed: dict[str, tuple[ast.Module, list[str]]]) -> dict[str, set[str]]:
    """module -> the eisbach_lib modules it imports at module level."""
    modules = set(parsed)
    return {m: {t for node in module_level_imports(tree) for t in internal_targets(node, modules) if t != m}
            for m, (tree, _) in parsed.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: 0 when it imports no other eisbach_lib module, else one above the highest
    layer it imports (the graph must have no cycle)."""
    out: dict[str, int] = {}

    def layer(m: str) -> int:
        if m not in out:
            out[m] = 1 + max((layer(t) for t in graph.get(m, ())), default=-1)
        return out[m]

    for m in graph:
        layer(m)
    return out


def reason(node: ast.Import | ast.ImportFrom, lines: list[str]) -> str | None:
    """The `# heavy: ...` / `# optional: ...` comment of an import: on one of its own lines, or on a
    comment line right above it; None when there is none."""
    own = lines[node.lineno - 1:node.end_lineno]
    above = [lines[node.lineno - 2]] if node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#") else []
    for line in own + above:
        m = REASON.search(line)
        if m:
            return line[m.start():].strip()
    return None


def unexplained_function_imports(parsed: dict[str, tuple[ast.Module, list[str]]]) -> list[str]:
    """'module:line  statement' for every import inside a function without a reason."""
    return [f"{m}.py:{node.lineno}  {ast.unparse(node)}" for m, (tree, lines) in parsed.items()
            for node in function_imports(tree) if reason(node, lines) is None]


# --------------------------------------------------------------------------------------------


def test_module_level_imports_form_layers_without_a_cycle():
    graph = import_graph(parse_library())
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among eisbach_lib modules (module level): " + " -> ".join(cycle)
    assert {"train", "anatomy", "runs", "probes", "device", "study"} <= set(graph)  # the parse saw the library


def test_no_cycle_even_through_imports_inside_functions():
    """An import inside a function keeps a heavy package out of a module's load; it must not hide a
    loop between two modules either (cli -> series <- pilot, not cli <-> pilot)."""
    parsed = parse_library()
    graph, modules = import_graph(parsed), set(parsed)
    for m, (tree, _) in parsed.items():
        graph[m] |= {t for node in function_imports(tree) for t in internal_targets(node, modules) if t != m}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among eisbach_lib modules (imports inside functions counted): " + " -> ".join(cycle)


def test_every_import_inside_a_function_says_what_it_keeps_out():
    offenders = unexplained_function_imports(parse_library())
    assert not offenders, ("imports inside functions without a `# heavy: PACKAGE` / `# optional: PACKAGE` "
                           "comment (move them to the top of the module unless they keep a heavy or optional "
                           "package out of its load):\n" + "\n".join(offenders))


def test_the_checks_see_what_they_look_for(tmp_path):
    """A cycle, a bare import inside a function and the accepted comments, on a made-up package (the
    checks above would pass vacuously if the parse found nothing)."""
    (tmp_path / "a.py").write_text("from .b import x\nfrom typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    from .c import Z\n")
    (tmp_path / "b.py").write_text("import os\n\n\ndef f():\n    from . import a\n    import torch\n"
                                   "    import scipy  # heavy: scipy\n    # optional: ipywidgets\n"
                                   "    import ipywidgets\n")
    (tmp_path / "c.py").write_text("from eisbach_lib.a import y\n\n\nclass K:\n    from .b import x\n")
    parsed = parse_library(tmp_path)
    graph = import_graph(parsed)
    assert graph == {"a": {"b"}, "b": set(), "c": {"a", "b"}}  # TYPE_CHECKING and function imports left out
    assert find_cycle(graph) is None and layers(graph) == {"a": 1, "b": 0, "c": 2}
    assert find_cycle({**graph, "b": {"c"}}) == ["a", "b", "c", "a"]
    assert unexplained_function_imports(parsed) == ["b.py:5  from . import a", "b.py:6  import torch"]


# -------------------------------------------------------------------------------- the tests' own modules


def cross_test_imports(folder: Path = TESTS) -> list[str]:
    """'file:line  statement' for every import of a test module (test_*.py) and every use of sys.path
    in the .py files of `folder` (code only: a string that a child process runs is not looked at)."""
    test_modules = {p.stem for p in folder.glob("test_*.py")}
    out = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = any(a.name.split(".")[0] in test_modules for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                bad = node.level == 0 and (node.module or "").split(".")[0] in test_modules or (
                    node.module == "sys" and any(a.name == "path" for a in node.names))
            else:
                bad = (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                       and node.value.id == "sys")
            if bad:
                out.append((path.name, node.lineno, f"{path.name}:{node.lineno}  {ast.unparse(node)}"))
    return [line for *_, line in sorted(out)]


def test_no_test_module_imports_another_or_edits_sys_path():
    offences = cross_test_imports()
    assert not offences, ("a test module imports another test module or edits sys.path (move what they share "
                          "to tests/helpers.py or a conftest.py fixture; tests/ is on sys.path already):\n"
                          + "\n".join(offences))


def test_the_test_module_check_sees_what_it_looks_for(tmp_path):
    """An import of another test module (either form) and sys.path edits are named; a helpers module
    and a child process's code in a string are not."""
    (tmp_path / "test_a.py").write_text("import sys\nfrom pathlib import Path\n\n"
                                        "sys.path.insert(0, str(Path(__file__).parent))\nfrom test_b import f\n")
    (tmp_path / "test_b.py").write_text("import test_a\nfrom sys import path\nfrom helpers import g\n"
                                        "CHILD = 'import sys; sys.path[:0] = [\"x\"]'\n\n\ndef f():\n    pass\n")
    (tmp_path / "helpers.py").write_text("import sys\n\n\ndef g():\n    return sys.argv\n")
    assert cross_test_imports(tmp_path) == ["test_a.py:4  sys.path", "test_a.py:5  from test_b import f",
                                            "test_b.py:1  import test_a", "test_b.py:2  from sys import path"]


if __name__ == "__main__":
    parsed = parse_library()
    graph = import_graph(parsed)
    print("cycle:", find_cycle(graph))
    by_layer: dict[int, list[str]] = {}
    for m, k in layers(graph).items():
        by_layer.setdefault(k, []).append(m)
    for k in sorted(by_layer):
        print(f"layer {k}: {', '.join(sorted(by_layer[k]))}")
    inner = [(m, node, reason(node, lines)) for m, (tree, lines) in parsed.items() for node in function_imports(tree)]
    print(f"\n{len(inner)} imports inside functions:")
    for m, node, why in inner:
        print(f"  {m}.py:{node.lineno}  {ast.unparse(node)}    {why}")
