"""The package's shape: no import cycles, no oversized modules, no TensorFlow at parse time, and code
inputs that come from the import graph (mnist3d.codebase) rather than from lists kept by hand."""

import ast
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from mnist3d import codebase

SCRIPTS = REPO / "scripts"
PACKAGE = SCRIPTS / "mnist3d"
# Subclasses of Keras classes, which need Keras to be defined; the code imports them lazily.
KERAS_MODULES = {"mnist3d.training.layers", "mnist3d.training.callbacks", "mnist3d.training.optimizers"}
MAX_MODULE_LINES = 420


def test_the_package_has_no_import_cycle():
    assert codebase.import_cycles() == []


def test_import_cycles_are_found(tmp_path):
    package = tmp_path / "mnist3d"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from mnist3d.sub import b\n")
    # A lazy import still closes the cycle: it runs when the function does.
    (package / "sub" / "b.py").write_text("def f():\n    from mnist3d import a\n")
    (package / "c.py").write_text("import mnist3d.a\n")
    cycles = codebase.import_cycles(package)
    assert cycles == [["mnist3d.a", "mnist3d.sub.b", "mnist3d.a"]]
    assert codebase.closure("mnist3d.c", root=package) == ["mnist3d", "mnist3d.a", "mnist3d.c", "mnist3d.sub",
                                                           "mnist3d.sub.b"]


def test_closure_follows_lazy_and_from_imports_and_collects_data_files(tmp_path):
    package = tmp_path / "mnist3d"
    (package / "report" / "templates").mkdir(parents=True)
    (package / "plots").mkdir()
    for init in (package, package / "report", package / "plots"):
        (init / "__init__.py").write_text("")
    (package / "grid.py").write_text("EDGE = 16\n")
    (package / "report" / "render.py").write_text("from mnist3d.grid import EDGE\ndef f():\n    from mnist3d.plots import style\n")
    (package / "report" / "templates" / "page.html.j2").write_text("{{ x }}")
    (package / "plots" / "style.py").write_text("import numpy\n")
    (package / "plots" / "unused.py").write_text("")
    (package / "plots" / "legend.rst").write_text("a caption")
    files = [path.relative_to(package).as_posix() for path in codebase.code_files("mnist3d.report.render", root=package)]
    assert files == ["__init__.py", "grid.py", "plots/__init__.py", "plots/legend.rst", "plots/style.py",
                     "report/__init__.py", "report/render.py", "report/templates/page.html.j2"]
    digest = codebase.code_digest("mnist3d.report.render", root=package)
    (package / "plots" / "unused.py").write_text("changed = True\n")
    assert codebase.code_digest("mnist3d.report.render", root=package) == digest
    (package / "report" / "templates" / "page.html.j2").write_text("{{ y }}")
    assert codebase.code_digest("mnist3d.report.render", root=package) != digest


def test_the_training_digest_covers_what_train_run_imports():
    training = codebase.closure("mnist3d.training.train")
    for module in ("mnist3d.training.model", "mnist3d.training.layers", "mnist3d.training.callbacks",
                   "mnist3d.training.checkpoint", "mnist3d.training.pipeline", "mnist3d.training.augment",
                   "mnist3d.training.geometry", "mnist3d.results.runfiles", "mnist3d.grid"):
        assert module in training
    # Where a job trains and how it logs does not change its numbers.
    for module in ("mnist3d.training.server", "mnist3d.training.gpuslots", "mnist3d.steplog"):
        assert module not in training


def test_no_module_is_oversized():
    sizes = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def test_rules_list_no_module_by_hand():
    """Code inputs and digests name the one module a rule's script calls; codebase finds the rest."""
    for path in (REPO / "rules").glob("*.smk"):
        text = path.read_text()
        assert not re.search(r"[\"'][\w/]+\.py[\"']", text.replace('script:', '')
                             .replace('"../scripts/', '')), f"{path.name} lists a module file by hand"
        for module in re.findall(r"code_(?:files|digest)\(\"([\w.]+)\"\)", text):
            assert codebase.module_path(module) is not None, f"{path.name}: {module} is no module"


def test_one_definition_of_the_shared_facts():
    definitions = {name: [] for name in ("CLASSES", "HISTORY_COLUMNS", "EDGE", "INPUT_SHAPE", "GRID_SHAPE", "VOXELS",
                                         "RUN_ID", "NAME_PATTERN")}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in definitions:
                        definitions[target.id].append(path.relative_to(PACKAGE).as_posix())
    assert definitions == {"CLASSES": ["grid.py"], "HISTORY_COLUMNS": ["results/runfiles.py"], "EDGE": ["grid.py"],
                           "INPUT_SHAPE": ["grid.py"], "GRID_SHAPE": ["grid.py"], "VOXELS": ["grid.py"],
                           "RUN_ID": ["runid.py"], "NAME_PATTERN": ["runid.py"]}


@pytest.mark.parametrize("text", ["rep1", "a/b/rep1", "a/rep", "a/repx", "../rep1", "a..b/rep1"])
def test_run_ids_that_are_no_run_ids_are_refused(text):
    from mnist3d.runid import parse_run_id

    with pytest.raises(ValueError, match="not a run id"):
        parse_run_id(text)


def test_run_ids_read_back():
    from mnist3d.runid import RUN_ID, parse_run_id, run_id

    assert run_id("width.dropout-0.3", 12) == "width.dropout-0.3/rep12" == RUN_ID.format(entry="width.dropout-0.3",
                                                                                          replicate=12)
    assert parse_run_id("width.dropout-0.3/rep12") == ("width.dropout-0.3", 12)
    assert parse_run_id("rep2/rep3") == ("rep2", 3)


def test_parse_time_and_plotting_modules_never_load_tensorflow():
    """The Snakefile imports config/, and every job but training imports its own stage: none of it may
    pay for TensorFlow (seconds per job) or Keras."""
    modules = [module for module in codebase.all_modules() if module not in KERAS_MODULES]
    code = textwrap.dedent(f"""
        import importlib, sys
        sys.path.insert(0, {str(SCRIPTS)!r})
        for module in {modules!r}:
            importlib.import_module(module)
        print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# How and where a job runs and logs; never what it writes, so no rule's code needs them.
RUN_ONLY = {"mnist3d.steplog", "mnist3d.training.gpuslots", "mnist3d.training.server"}


def rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), re.M):
            blocks[match.group(1)] = match.group(2)
    return blocks


def test_each_rule_names_the_code_its_script_runs():
    """What a rule's script imports from the package is inside the code the rule names (code_files,
    code_digest, or TRAINING_CODE for training), so an edit to it reruns the rule."""
    from mnist3d.training.server import TRAINED_BY

    checked = []
    for rule, block in rule_blocks().items():
        script = re.search(r'script:\s*\n\s*"\.\./(scripts/\w+\.py)"', block)
        if script is None:
            continue
        named = re.findall(r'code_(?:files|digest)\("([\w.]+)"\)', block)
        if "TRAINING_CODE" in block:
            named.append(TRAINED_BY)
        assert named, f"rule {rule} runs {script.group(1)} but names none of its code"
        covered = set(codebase.closure(*named))
        imported = codebase.file_imports(REPO / script.group(1)) - RUN_ONLY
        assert imported <= covered, f"rule {rule}: {sorted(imported - covered)} are not in its code"
        checked.append(rule)
    assert len(checked) >= 12, checked


def test_a_script_importing_code_its_rule_does_not_name_is_found(tmp_path):
    script = tmp_path / "plot.py"
    script.write_text("from mnist3d.plots.run import plot_run_files\nfrom mnist3d.report import wording\n")
    assert not codebase.file_imports(script) <= set(codebase.closure("mnist3d.plots.run"))
    (tmp_path / "relative.py").write_text("from . import grid\n")
    with pytest.raises(ValueError, match="relative import"):
        codebase.file_imports(tmp_path / "relative.py")


# What a stage must not import: config (parsed by the Snakefile) and data come before everything
# else, results know nothing of plots or the report, and plots nothing of the report. Training
# writes a run's files through results.runfiles, so it may use results.
LATER_STAGES = {
    "mnist3d.config": ("mnist3d.data", "mnist3d.results", "mnist3d.plots", "mnist3d.report"),
    "mnist3d.data": ("mnist3d.training", "mnist3d.results", "mnist3d.plots", "mnist3d.report"),
    "mnist3d.results": ("mnist3d.plots", "mnist3d.report"),
    "mnist3d.plots": ("mnist3d.report",),
}


def test_stages_import_only_earlier_stages():
    for module in codebase.all_modules():
        for stage, later in LATER_STAGES.items():
            if module == stage or module.startswith(stage + "."):
                wrong = [name for name in codebase.direct_imports(module) if name.startswith(later)]
                assert not wrong, f"{module} imports {wrong}"
