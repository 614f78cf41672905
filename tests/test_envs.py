"""The conda environments hold what their rules import, and requirements.txt holds every environment.

`snakemake --sdm conda` builds each rule's envs/*.yaml and runs the rule's script in it, so the
environment must provide every third-party module the script imports and, transitively, every
module of the package that it runs (mnist3d.codebase's import graph: at the top or inside a function).
The rules come from Snakemake itself, so every rule is covered; the imports are read with `ast`, so
nothing is imported and no environment is built. The README installs the workflow with pip from
requirements.txt, so that file holds every package of every environment.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, workflow_rules

from mnist3d import codebase

# Import name -> the packages that provide it, by their conda-forge names (which PyPI shares, but
# for matplotlib-base). An import missing here fails the test: say which package provides it.
PROVIDERS = {
    "h5py": ("h5py",),
    "jinja2": ("jinja2",),
    "jsonschema": ("jsonschema",),
    # TensorFlow >= 2.16 depends on Keras 3, so an environment with tensorflow has keras.
    "keras": ("keras", "tensorflow"),
    # matplotlib-base is matplotlib without the Qt backend, which files written headless never use.
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "mlxtend": ("mlxtend",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "PIL": ("pillow",),
    "scipy": ("scipy",),
    "sklearn": ("scikit-learn",),
    "statsmodels": ("statsmodels",),
    "tensorboard": ("tensorboard",),
    "tensorflow": ("tensorflow",),
    "yaml": ("pyyaml",),
}
# Not third-party for an environment: the package itself travels with the workflow, and Snakemake
# injects `snakemake` into the scripts it runs.
PROVIDED = {codebase.PACKAGE, "snakemake"}
# Conda packages that are not Python packages for pip to install, and conda names that PyPI spells otherwise.
CONDA_ONLY = {"python", "pip"}
PYPI_NAME = {"matplotlib-base": "matplotlib"}

# What Snakemake knows of each rule, printed by a separate process so that loading the workflow
# (its logging, working directory and sys.path) leaves this one alone.


class EnvCheckError(Exception):
    """The workflow or its code is not in a shape this test can check: extend the test, or fix it."""


@dataclass(frozen=True)
class ScriptRule:
    name: str
    snakefile: Path
    script: Path
    env: Path


@dataclass(frozen=True)
class Import:
    name: str  # the top-level name, as in PROVIDERS
    where: str  # the module or script that imports it, and the line


def load_rules(workdir: Path, tmp_path: Path) -> list[dict]:
    """Every rule of the workflow in `workdir`, as Snakemake reads it."""
    try:
        return workflow_rules(workdir, tmp_path)
    except RuntimeError as error:
        raise EnvCheckError(str(error)) from None


def script_rules(rules: list[dict]) -> list[ScriptRule]:
    """The rules that run a script, with its path and its conda env file; loud about any other rule."""
    found = []
    for rule in rules:
        where = f"rule {rule['name']} ({rule['snakefile']})"
        if rule["action"] == "none":
            continue  # a target such as `all`: nothing runs
        if rule["action"] != "script":
            raise EnvCheckError(
                f"{where} runs a {rule['action']} block, not a script: this test "
                "knows only script rules (and the style guide asks for them)"
            )
        if rule["conda"] is None:
            raise EnvCheckError(f"{where} runs {rule['script']} without a conda env: add `conda:`")
        if not rule["conda"].endswith((".yaml", ".yml")):
            raise EnvCheckError(f"{where} names conda env {rule['conda']!r}, not an env file")
        base = Path(rule["snakefile"]).parent
        found.append(
            ScriptRule(
                rule["name"],
                Path(rule["snakefile"]),
                (base / rule["script"]).resolve(),
                (base / rule["conda"]).resolve(),
            )
        )
    return found


def _shown(path: Path) -> Path:
    """`path` relative to the repository where it is inside it, for short messages."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST):
    """Every import statement under `node` that runs: not those only a type checker sees."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
            continue
        yield from _import_nodes(child)


def read_imports(path: Path, label: str, root: Path) -> tuple[list[Import], set[str]]:
    """The third-party imports of the file at `path`, and the package modules it imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    third_party, package = [], set()
    for node in _import_nodes(tree):
        where = f"{label} ({_shown(path)}:{node.lineno})"
        if isinstance(node, ast.ImportFrom) and node.level:
            # mnist3d.codebase follows absolute imports only, so a relative one would hide modules.
            raise EnvCheckError(f"{where}: relative import; the package imports absolutely")
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top == codebase.PACKAGE:
                package |= _package_modules(node, root) if isinstance(node, ast.ImportFrom) else {name}
            elif top not in sys.stdlib_module_names and top not in PROVIDED:
                third_party.append(Import(top, where))
    return third_party, package


def _package_modules(node: ast.ImportFrom, root: Path) -> set[str]:
    """`from mnist3d.x import y`: mnist3d.x.y where that is a module, else mnist3d.x."""
    found = set()
    for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        found.add(submodule if codebase.module_path(submodule, root) is not None else node.module)
    return found


def script_imports(script: Path, root: Path = codebase.PACKAGE_DIR) -> list[Import]:
    """The third-party imports of `script` and of every package module it runs, transitively."""
    imports, modules = read_imports(script, script.name, root)
    for module in codebase.closure(*sorted(modules), root=root) if modules else []:
        imports += read_imports(codebase.module_path(module, root), module, root)[0]
    return imports


def _name(spec: str, where: str) -> str:
    """The normalised package name of a conda spec ('conda-forge::numpy 1.26.*') or a pip one
    ('tensorflow[and-cuda]>=2.18')."""
    match = re.fullmatch(r"(?:[\w.-]+::)?([A-Za-z0-9][\w.-]*)(\[[^\]]*\])?(\s+\S.*|\s*[<>=!~].*)?", spec.strip())
    if match is None:
        raise EnvCheckError(f"{where}: cannot read the package name of {spec!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def env_packages(env: Path) -> set[str]:
    """The package names of an env file: its conda dependencies and its pip: ones."""
    packages = set()
    for dependency in yaml.safe_load(env.read_text()).get("dependencies") or []:
        if isinstance(dependency, dict) and set(dependency) == {"pip"}:
            packages |= {_name(spec, f"{env} (pip:)") for spec in dependency["pip"]}
        elif isinstance(dependency, str):
            packages.add(_name(dependency, str(env)))
        else:
            raise EnvCheckError(f"{env}: dependency {dependency!r} is neither a package nor pip:")
    return packages


def missing_packages(rule: ScriptRule, imports: list[Import]) -> list[str]:
    """One line per import that `rule`'s env does not provide."""
    packages = env_packages(rule.env)
    importers: dict[str, list[str]] = {}
    for found in imports:
        if found.name not in PROVIDERS:
            raise EnvCheckError(
                f"no conda package known for `import {found.name}` in {found.where}: "
                "add the package that provides it to PROVIDERS in tests/test_envs.py"
            )
        if not packages.intersection(PROVIDERS[found.name]):
            importers.setdefault(found.name, []).append(found.where)
    return [
        f"rule {rule.name} ({_shown(rule.snakefile)}): {_shown(rule.env)} lacks "
        f"{' or '.join(PROVIDERS[name])}, imported by {'; '.join(importers[name])}"
        for name in sorted(importers)
    ]


def requirements(path: Path) -> set[str]:
    """The package names of a pip requirements file."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise EnvCheckError(f"{path}: option line {line!r}; this test reads package lines only")
        names.add(_name(line.split(";")[0], str(path)))
    return names


def missing_requirements(envs: list[Path], requirements_file: Path) -> list[str]:
    """One line per package of an env file that `requirements_file` lacks."""
    listed = requirements(requirements_file)
    problems = []
    for env in envs:
        for package in sorted(env_packages(env) - CONDA_ONLY):
            if PYPI_NAME.get(package, package) not in listed:
                problems.append(
                    f"{_shown(requirements_file)} lacks {PYPI_NAME.get(package, package)}, "
                    f"which {_shown(env)} holds"
                )
    return problems


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> list[ScriptRule]:
    return script_rules(load_rules(REPO, tmp_path_factory.mktemp("rules")))


def test_snakemake_sees_every_rule_of_the_rules_files(rules):
    """The rules Snakemake reported are those written down: the check below covers them all."""
    written = {
        name
        for path in (REPO / "rules").glob("*.smk")
        for name in re.findall(r"^rule (\w+):", path.read_text(), re.MULTILINE)
    }
    assert written, "no rule found in rules/*.smk"
    assert written <= {rule.name for rule in rules}


def test_each_rule_env_holds_what_its_script_imports(rules):
    problems = []
    for rule in rules:
        assert rule.script.is_file(), f"rule {rule.name}: script {rule.script} not found"
        assert rule.env.is_file(), f"rule {rule.name}: conda env {rule.env} not found"
        problems += missing_packages(rule, script_imports(rule.script))
    assert not problems, "\n".join(problems)


def test_requirements_hold_every_env_package():
    problems = missing_requirements(sorted((REPO / "envs").glob("*.yaml")), REPO / "requirements.txt")
    assert not problems, "\n".join(problems)


# --- the checker itself finds what is missing ------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tiny_package(tmp_path) -> Path:
    """A package whose script imports numpy itself and, two package modules down, scipy inside a function."""
    root = tmp_path / "mnist3d"
    _write(root / "__init__.py", "")
    _write(root / "stage" / "__init__.py", "")
    _write(root / "stage" / "top.py", "import json\nfrom mnist3d.stage import deep\n")
    _write(
        root / "stage" / "deep.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n"
        "def f():\n    from scipy import stats\n",
    )
    _write(tmp_path / "script.py", "import numpy as np\nfrom mnist3d.stage.top import x\nsnakemake.input\n")
    return root


def _rule(tmp_path: Path, env_text: str) -> ScriptRule:
    env = _write(tmp_path / "envs" / "tiny.yaml", env_text)
    return ScriptRule("tiny", tmp_path / "rules" / "tiny.smk", tmp_path / "script.py", env)


def test_checker_reports_a_package_imported_deep_in_the_package(tiny_package, tmp_path):
    imports = script_imports(tmp_path / "script.py", root=tiny_package)
    assert {found.name for found in imports} == {"numpy", "scipy"}  # not json, pandas (typing only), mnist3d
    problems = missing_packages(_rule(tmp_path, "dependencies:\n  - python =3.11\n  - numpy >=1.26\n"), imports)
    assert len(problems) == 1
    assert "rule tiny" in problems[0] and "tiny.yaml lacks scipy" in problems[0]
    assert "mnist3d.stage.deep" in problems[0] and "deep.py:5" in problems[0]


def test_checker_accepts_pip_packages(tiny_package, tmp_path):
    imports = script_imports(tmp_path / "script.py", root=tiny_package)
    rule = _rule(tmp_path, "dependencies:\n  - conda-forge::numpy\n  - pip\n  - pip:\n      - scipy[all] >=1.11\n")
    assert missing_packages(rule, imports) == []


def test_checker_fails_on_an_import_it_cannot_map(tmp_path):
    _write(tmp_path / "script.py", "import notapackage\n")
    imports = script_imports(tmp_path / "script.py", root=tmp_path / "mnist3d")
    with pytest.raises(EnvCheckError, match="no conda package known for `import notapackage`"):
        missing_packages(_rule(tmp_path, "dependencies:\n  - numpy\n"), imports)


def test_a_script_rule_without_a_conda_env_fails_loudly(tmp_path):
    _write(tmp_path / "Snakefile", 'rule bare:\n    output:\n        "x",\n    script:\n        "bare.py"\n')
    with pytest.raises(EnvCheckError, match="rule bare .* runs bare.py without a conda env"):
        script_rules(load_rules(tmp_path, tmp_path))


def test_requirements_check_reports_a_missing_package(tmp_path):
    env = _write(tmp_path / "env.yaml", "dependencies:\n  - python =3.11\n  - matplotlib-base >=3.8\n  - scipy\n")
    listed = _write(tmp_path / "requirements.txt", "# plots\nmatplotlib>=3.8\n")
    assert missing_requirements([env], listed) == [f"{listed} lacks scipy, which {env} holds"]
