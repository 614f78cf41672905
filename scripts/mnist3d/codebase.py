"""The package's own import graph, read from the source: which files a rule's output depends on.

A rule's output depends on the modules its script calls as much as on its settings, but Snakemake's
code trigger sees only the script itself. The rules therefore name the one module whose function
their script calls, and take from here every file that module runs: itself, each package module it
imports (at the top or inside a function, transitively), the `__init__.py` of each package on the
way, and the data files that sit beside them (templates, captions). Nothing is listed by hand, so
the lists cannot drift from the code; the warm training server imports the same set.

Read with `ast`, never imported: the Snakefile calls this while it parses, where importing
TensorFlow or matplotlib would cost seconds. Standard library only.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "mnist3d"
PACKAGE_DIR = Path(__file__).resolve().parent
# Files beside the modules that a module reads at run time (report templates, figure captions).
DATA_SUFFIXES = (".j2", ".rst", ".css", ".js")


def module_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of a package module ('mnist3d.training.model'), or None when there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolved(module: str, names: list[str], root: Path) -> set[str]:
    """`from module import names`: each name that is a module of its own, else `module` itself."""
    found = {f"{module}.{name}" for name in names if module_path(f"{module}.{name}", root) is not None}
    if len(found) < len(names) and module_path(module, root) is not None:
        found.add(module)
    return found


def file_imports(path: Path, root: Path = PACKAGE_DIR) -> set[str]:
    """The package modules a source file (a module or a rule's script) imports, anywhere in it, with
    the packages whose __init__.py that runs. A relative import is an error: the package writes
    absolute ones, and this reading would miss it."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ValueError(f"{path}:{node.lineno}: a relative import; write it as `from {PACKAGE}...`")
            if node.module and node.module.split(".")[0] == PACKAGE:
                imported |= _resolved(node.module, [alias.name for alias in node.names], root)
    with_parents = imported.union(*(_parents(name) for name in imported))
    return {name for name in with_parents if module_path(name, root) is not None}


@functools.cache
def _direct_imports(module: str, root: Path = PACKAGE_DIR) -> frozenset[str]:
    return frozenset(file_imports(module_path(module, root), root) - {module})


def direct_imports(module: str, root: Path = PACKAGE_DIR) -> set[str]:
    """The package modules `module` imports itself, anywhere in its source."""
    return set(_direct_imports(module, root))


def _parents(module: str) -> list[str]:
    """The packages whose __init__.py Python runs before `module` ('mnist3d', 'mnist3d.training')."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def closure(*modules: str, root: Path = PACKAGE_DIR) -> list[str]:
    """`modules` and every package module they import, transitively, sorted."""
    seen: set[str] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        if module_path(module, root) is None:
            raise ValueError(f"{module} is not a module of {root}")
        seen.add(module)
        pending.extend(_direct_imports(module, root))
        pending.extend(_parents(module))
    return sorted(seen)


def all_modules(root: Path = PACKAGE_DIR) -> list[str]:
    """Every module of the package, sorted."""
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join([PACKAGE, *parts]))
    return modules


def code_files(*modules: str, root: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of `closure(*modules)` and the data files in the folders of those modules
    (a package's own folder and its non-package subfolders, such as templates/), sorted."""
    files = {module_path(module, root) for module in closure(*modules, root=root)}
    for folder in {path.parent for path in files}:
        for path in folder.rglob("*"):
            if path.suffix in DATA_SUFFIXES and not _in_subpackage(path, folder):
                files.add(path)
    return sorted(files)


def _in_subpackage(path: Path, folder: Path) -> bool:
    return any((parent / "__init__.py").is_file() for parent in path.parents if folder in parent.parents)


def code_digest(*modules: str, root: Path = PACKAGE_DIR) -> str:
    """A short digest of the contents of `code_files(*modules)`: a rule parameter that reruns the
    rule when its code is edited, and, being contents rather than timestamps, nothing when a checkout
    or copy changes no code."""
    digest = hashlib.sha256()
    for path in code_files(*modules, root=root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def import_cycles(root: Path = PACKAGE_DIR) -> list[list[str]]:
    """Every cycle in the import graph, each as the modules on it (empty when there is none)."""
    modules = all_modules(root)
    graph = {module: sorted(direct_imports(module, root)) for module in modules}
    cycles, state = [], {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for imported in graph.get(module, []):
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in modules:
        if module not in state:
            visit(module)
    return cycles
