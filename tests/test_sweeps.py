"""Sweeps expanded into entries: names, overrides, sampling, the cap and every error's wording."""

import math
import textwrap
import types

import pytest
import yaml
from conftest import REPO

from mnist3d.config import sweeps as sweeps_module
from mnist3d.config.names import MAX_NAME_LENGTH, check_name, entry_name, value_text
from mnist3d.config.sweeps import SweepError, check_no_clash, expand_sweeps
from mnist3d.config.runs import value_type

WHERE = "config/models.yaml"
RUN_SCHEMA = yaml.safe_load((REPO / "config" / "schemas" / "run.schema.yaml").read_text())
KNOWN = list(RUN_SCHEMA["properties"])
TYPES = {name: value_type(spec) for name, spec in RUN_SCHEMA["properties"].items()}


def expand(text: str, max_runs: int = 1000, **options):
    sweeps = yaml.safe_load(textwrap.dedent(text))
    return expand_sweeps(sweeps, WHERE, max_runs, KNOWN, **options)


def error_of(text: str, **options) -> str:
    with pytest.raises(SweepError) as caught:
        expand(text, **options)
    return str(caught.value)


GRID = """\
width-dropout:
  fixed: {epochs: 4}
  replicates: 2
  grid:
    filters: [[16, 32, 64], [32, 64, 128], [48, 96, 192]]
    dropout: [0.3, 0.5]
"""


def test_a_3x2_grid_gives_6_entries_named_by_their_values():
    entries = expand(GRID)
    assert [entry.name for entry in entries] == [
        "width-dropout.dropout-0.3.filters-16-32-64",
        "width-dropout.dropout-0.3.filters-32-64-128",
        "width-dropout.dropout-0.3.filters-48-96-192",
        "width-dropout.dropout-0.5.filters-16-32-64",
        "width-dropout.dropout-0.5.filters-32-64-128",
        "width-dropout.dropout-0.5.filters-48-96-192",
    ]
    first = entries[0]
    assert first.sweep == "width-dropout"
    assert first.overrides == {"epochs": 4, "replicates": 2, "dropout": 0.3, "filters": [16, 32, 64]}
    assert first.varied == {"dropout": "0.3", "filters": "16-32-64"}
    assert first.label == "dropout=0.3, filters=16-32-64"
    for entry in entries:
        check_name(entry.name)


def test_reordering_fields_and_values_keeps_every_name_and_its_overrides():
    reordered = """\
    width-dropout:
      grid:
        dropout: [0.5, 0.3]
        filters: [[48, 96, 192], [16, 32, 64], [32, 64, 128]]
      replicates: 2
      fixed: {epochs: 4}
    """
    by_name = {entry.name: entry.overrides for entry in expand(GRID)}
    assert {entry.name: entry.overrides for entry in expand(reordered)} == by_name


def test_adding_a_value_adds_exactly_the_new_combinations():
    before = {entry.name for entry in expand(GRID)}
    after = {entry.name for entry in expand(GRID.replace("[0.3, 0.5]", "[0.3, 0.5, 0.7]"))}
    assert before < after
    assert after - before == {
        f"width-dropout.dropout-0.7.filters-{filters}" for filters in ("16-32-64", "32-64-128", "48-96-192")
    }


def test_fixed_values_are_overrides_but_not_part_of_the_name():
    entries = expand(GRID.replace("epochs: 4", "epochs: 9"))
    assert [entry.name for entry in entries] == [entry.name for entry in expand(GRID)]
    assert all(entry.overrides["epochs"] == 9 for entry in entries)
    no_replicates = expand("s:\n  grid: {dense: [8, 16]}\n")
    assert [entry.overrides for entry in no_replicates] == [{"dense": 8}, {"dense": 16}]


@pytest.mark.parametrize(
    "value, text",
    [
        (0.3, "0.3"), (0.001, "0.001"), (1e-05, "1e-5"), (1.5e20, "1.5e20"), (2.5e-7, "2.5e-7"),
        (90, "90"), (90.0, "90"), (0.0, "0"), (True, "true"), (False, "false"), ("cosine", "cosine"),
        ([16, 32, 64], "16-32-64"), ("a b/c", "a_b_c"), ("x..y", "x._y"), (None, "null"),
    ],
)
def test_value_text_is_short_exact_and_safe(value, text):
    assert value_text(value) == text
    assert float(text) == value if isinstance(value, float) else True


def test_exponent_floats_name_their_exact_value():
    entries = expand("lr:\n  grid: {learning_rate: [1.0e-5, 3.0e-4, 0.01]}\n")
    assert [entry.name for entry in entries] == [
        "lr.learning_rate-1e-5", "lr.learning_rate-0.0003", "lr.learning_rate-0.01"
    ]
    for entry in entries:
        assert float(entry.varied["learning_rate"]) == entry.overrides["learning_rate"]


def test_long_names_are_bounded_safe_and_still_distinct():
    text = """\
    long-sweep-name:
      grid:
        filters: [[16, 32, 64, 128, 256, 512, 1024, 2048], [16, 32, 64, 128, 256, 512, 1024, 4096]]
        kernel_sizes: [[3, 3, 3, 3, 3, 3, 3, 3]]
        pool_sizes: [[1, 1, 1, 1, 1, 1, 1, 1]]
        learning_rate: [0.000123]
    """
    names = [entry.name for entry in expand(text)]
    assert len(set(names)) == 2
    for name in names:
        assert len(name) <= MAX_NAME_LENGTH
        assert name.startswith("long-sweep-name.filters-16-32-64")
        check_name(name)
    assert names == [entry.name for entry in expand(text)]
    assert entry_name("s", {"dense": "8"}) == "s.dense-8"


def test_a_bundle_varies_its_fields_together_and_names_them():
    entries = expand("""\
    depth:
      fixed: {dense: 32}
      grid:
        dropout: [0.2]
        layers:
          - {filters: [16, 32], kernel_sizes: [3, 3], pool_sizes: [2, 2]}
          - {name: deep, filters: [16, 32, 64, 128], kernel_sizes: [3, 3, 3, 3], pool_sizes: [2, 2, 2, 2]}
    """)
    assert [entry.name for entry in entries] == [
        "depth.dropout-0.2.layers-16-32_3-3_2-2", "depth.dropout-0.2.layers-deep"
    ]
    assert entries[1].overrides == {
        "dense": 32, "dropout": 0.2, "filters": [16, 32, 64, 128], "kernel_sizes": [3, 3, 3, 3],
        "pool_sizes": [2, 2, 2, 2],
    }
    assert entries[1].varied == {"dropout": "0.2", "layers": "deep"}
    assert "name" not in entries[0].overrides


RANDOM = """\
lr-search:
  random:
    count: 8
    seed: 0
    parameters:
      learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
      dropout: {uniform: [0.2, 0.6]}
      dense: [64, 128, 256]
"""


def test_random_sample_is_seeded_in_range_and_names_the_rounded_values():
    entries = expand(RANDOM)
    assert len(entries) == len({entry.name for entry in entries}) == 8
    assert [entry.name for entry in expand(RANDOM)] == [entry.name for entry in entries]
    assert [entry.name for entry in expand(RANDOM.replace("seed: 0", "seed: 1"))] != [e.name for e in entries]
    for entry in entries:
        rate, dropout = entry.overrides["learning_rate"], entry.overrides["dropout"]
        assert 1e-4 <= rate < 1e-2 and 0.2 <= dropout < 0.6
        assert entry.overrides["dense"] in (64, 128, 256) and isinstance(entry.overrides["dense"], int)
        for value in (rate, dropout):
            assert float(f"{value:.3g}") == value  # rounded before use...
        assert float(entry.varied["learning_rate"]) == rate  # ...so the name shows the value trained
        assert float(entry.varied["dropout"]) == dropout


def test_raising_count_keeps_the_earlier_sample():
    eight = [entry.name for entry in expand(RANDOM)]
    twelve = [entry.name for entry in expand(RANDOM.replace("count: 8", "count: 12"))]
    assert twelve[:8] == eight


def test_log_uniform_spreads_evenly_over_decades():
    text = "s:\n  random:\n    count: 600\n    parameters: {learning_rate: {log_uniform: [1.0e-5, 1.0e-1]}}\n"
    rates = [entry.overrides["learning_rate"] for entry in expand(text)]
    per_decade = [sum(10.0 ** k <= rate < 10.0 ** (k + 1) for rate in rates) for k in range(-5, -1)]
    # A uniform draw would put about 90 % in the top decade; log-uniform about a quarter in each.
    assert all(110 <= count <= 190 for count in per_decade), per_decade
    assert math.isclose(sum(per_decade), 600)


@pytest.mark.parametrize("suffix, figure", [("parallel", "parallel-coordinates"), ("halving", "halving")])
def test_a_sweep_named_like_another_sweeps_figure_is_an_error(suffix, figure):
    message = error_of(f"lr:\n  grid: {{dense: [8, 16]}}\nlr-{suffix}:\n  grid: {{dense: [4, 32]}}\n")
    assert message == (f"{WHERE}: sweep 'lr-{suffix}': its figure results/plots/sweeps/lr-{suffix}.png would also be "
                       f"the {figure} figure of sweep 'lr'; rename a sweep")
    assert len(expand(f"lr-{suffix}:\n  grid: {{dense: [8, 16]}}\n")) == 2  # alone, the name is fine


def test_a_sample_larger_than_its_lists_is_an_error():
    message = error_of("s:\n  random:\n    count: 4\n    parameters: {dense: [8, 16], dropout: [0.1]}\n")
    assert message == (f"{WHERE}: sweep 's', key 'random.count': asks for 4 distinct combinations of lists "
                       "that make only 2")


def test_the_cap_fails_before_building_a_huge_grid(monkeypatch):
    def product(*axes):
        raise AssertionError("the grid was built before the cap was checked")

    monkeypatch.setattr(sweeps_module, "itertools", types.SimpleNamespace(product=product))
    fields = ["dense", "epochs", "batch_size", "seed", "early_stopping_patience"]
    grid = "\n".join(f"    {name}: [{', '.join(str(v) for v in range(1, 101))}]" for name in fields)
    message = error_of(f"huge:\n  replicates: 3\n  grid:\n{grid}\n", max_runs=500)
    assert message == (
        f"{WHERE}: sweep 'huge', key 'grid': 10000000000 combinations x 3 replicates = 30000000000 runs exceed "
        "max_runs = 500; check for a typo, or raise max_runs in config/config.yaml (or --config max_runs=N)"
    )


def test_the_cap_counts_the_runs_before_every_sweep_and_default_replicates():
    two = "a:\n  grid: {dense: [8, 16, 32]}\nb:\n  grid: {dense: [8, 16]}\n"
    assert len(expand(two, max_runs=5)) == 5
    assert len(expand(two, max_runs=7, runs_before=2)) == 5
    message = error_of(two, max_runs=5, default_replicates=2)
    assert "sweep 'a', key 'grid': 3 combinations x 2 replicates = 6 runs exceed max_runs = 5;" in message
    message = error_of(two, max_runs=8, default_replicates=2)
    assert "sweep 'b', key 'grid': 2 combinations x 2 replicates = 4 runs on top of 6 from runs: and earlier" in message
    message = error_of(two, max_runs=5, runs_before=3)
    assert "sweep 'a', key 'grid': 3 combinations x 1 replicate = 3 runs on top of 3 from runs:" in message
    message = error_of("r:\n  replicates: 5\n  random: {count: 3, parameters: {dense: [8, 16, 32]}}\n", max_runs=10)
    assert message.startswith(f"{WHERE}: sweep 'r', key 'random.count': 3 combinations x 5 replicates = 15 runs")


def test_no_sweeps_expand_to_nothing():
    assert expand_sweeps(None, WHERE, 10, KNOWN) == []
    assert expand_sweeps({}, WHERE, 10, KNOWN) == []


def test_a_name_shared_by_two_sweeps_or_with_a_run_is_an_error():
    message = error_of("a:\n  grid: {dense: [8], dropout: [0.1]}\na.dense-8:\n  grid: {dropout: [0.1]}\n")
    assert message == (f"{WHERE}: sweep 'a.dense-8', combination dropout=0.1: its run name 'a.dense-8.dropout-0.1' "
                       "is also that of combination dense=8, dropout=0.1 of sweep 'a'; rename a sweep")
    entries = expand("s:\n  grid: {dense: [8, 16]}\n")
    check_no_clash(entries, ["s", "other"], WHERE)
    with pytest.raises(SweepError) as caught:
        check_no_clash(entries, ["s.dense-16"], WHERE)
    assert str(caught.value) == (f"{WHERE}: sweep 's', combination dense=16: its run name 's.dense-16' is also "
                                 "a run under runs:; rename that run or the sweep")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s: [1, 2]\n", "sweep 's': must be a mapping with grid or random"),
        ("s:\n  fixed: {epochs: 1}\n", "sweep 's', key 'grid/random': needs exactly one of grid"),
        ("s:\n  grid: {dense: [8]}\n  random: {count: 1, parameters: {dense: [8]}}\n",
         "sweep 's', key 'grid/random': needs exactly one of grid"),
        ("s:\n  grids: {dense: [8]}\n", "sweep 's', key 'grids': unknown key; a sweep has fixed, replicates, grid, "
         "random, halving (did you mean 'grid'?)"),
        ("s:\n  dense: [8]\n  grid: {dropout: [0.1]}\n",
         "sweep 's', key 'dense': unknown key; a sweep has fixed, replicates, grid, random, halving (varied fields go "
         "under"),
        ("s:\n  halving: {min_epochs: 2, eta: 1}\n  grid: {dense: [8]}\n",
         "sweep 's', key 'halving.eta': must be a whole number >= 2 (each rung keeps the best 1/eta), not 1"),
        ("s:\n  halving: {min_epochs: 2, eta: 3, brackets: 1.5}\n  grid: {dense: [8]}\n",
         "sweep 's', key 'halving.brackets': must be a whole number >= 1, not 1.5"),
        ("s:\n  grid: {}\n", "sweep 's', key 'grid': must map each varied field to a list of values"),
        ("s:\n  grid: {dense: 8}\n", "sweep 's', field 'dense': grid values must be a non-empty list, e.g. "
         "[0.3, 0.5], not 8 (a single value belongs under fixed)"),
        ("s:\n  grid: {dense: []}\n", "sweep 's', field 'dense': grid values must be a non-empty list"),
        ("s:\n  grid: {dropout: [0.3, 0.5, 0.30]}\n",
         "sweep 's', field 'dropout': value 0.3 is listed twice; list each value once"),
        ("s:\n  grid: {rotation_augmentation: [90, 90.0]}\n",
         "sweep 's', field 'rotation_augmentation': values 90 and 90.0 are the same value (90)"),
        ("s:\n  grid: {dropuot: [0.1, 0.2]}\n",
         "sweep 's', field 'dropuot': unknown field (did you mean 'dropout'?); a key that is no field is a bundle"),
        ("s:\n  fixed: {epoch: 1}\n  grid: {dense: [8]}\n",
         "sweep 's', field 'epoch': unknown field (did you mean 'epochs'?) (in fixed)"),
        ("s:\n  fixed: [1]\n  grid: {dense: [8]}\n", "sweep 's', key 'fixed': must be a mapping of run fields"),
        ("s:\n  grid: {replicates: [1, 2]}\n", "sweep 's', field 'replicates': is the number of runs per combination"),
        ("s:\n  grid: {layers: [{filters: [8]}, 3]}\n",
         "sweep 's', key 'layers': bundle 'layers': value 3 is not a mapping of fields varied together"),
        ("s:\n  grid: {layers: [{filtres: [8]}]}\n",
         "sweep 's', field 'filtres': unknown field (did you mean 'filters'?) (in bundle 'layers')"),
        ("s:\n  grid: {layers: [{name: only}]}\n", "sweep 's', key 'layers': bundle 'layers': value {'name': 'only'} "
         "sets no field"),
        ("s:\n  grid: {layers: [{name: a b, filters: [8]}]}\n",
         "sweep 's', key 'layers.name': bundle 'layers': its name is part of run names: 'a b' is not a safe"),
        ("s:\n  grid: {filters: [{filters: [8], kernel_sizes: [3]}]}\n",
         "sweep 's', field 'filters': value {'filters': [8], 'kernel_sizes': [3]} is a mapping, but 'filters' is a "
         "run field; to vary several fields together, give the bundle a key that is no field (e.g. layers)"),
        ("s:\n  fixed: {dense: 8}\n  grid: {dense: [16]}\n",
         "sweep 's', field 'dense': is set by both fixed and dense; set it in one place"),
        ("s:\n  grid: {filters: [[8]], layers: [{filters: [4]}]}\n",
         "sweep 's', field 'filters': is set by both filters and layers; set it in one place"),
        ("s:\n  replicates: 2\n  fixed: {replicates: 2}\n  grid: {dense: [8]}\n",
         "sweep 's', field 'replicates': given twice, as replicates and as fixed.replicates; keep one"),
        ("s:\n  replicates: 0\n  grid: {dense: [8]}\n", "sweep 's', field 'replicates': must be a whole number >= 1"),
        ("bad name:\n  grid: {dense: [8]}\n", "sweep 'bad name': a sweep's name is part of run names"),
        ("s:\n  random: {count: 0, parameters: {dense: [8]}}\n",
         "sweep 's', key 'random.count': the number of combinations to draw, a whole number >= 1, not 0"),
        ("s:\n  random: {count: 2, seed: -1, parameters: {dense: [8, 16]}}\n",
         "sweep 's', key 'random.seed': must be a whole number >= 0, not -1"),
        ("s:\n  random: {count: 2, method: grid, parameters: {dense: [8]}}\n",
         "sweep 's', key 'random.method': unknown key; random has count, seed, parameters"),
        ("s:\n  random: {count: 2}\n", "sweep 's', key 'random.parameters': must map each varied field"),
        ("s:\n  random: {count: 2, parameters: {dropout: {normal: [0.1, 0.2]}}}\n",
         "sweep 's', field 'dropout': a distribution is one of {uniform: [low, high]}, {log_uniform: [low, high]}"),
        ("s:\n  random: {count: 2, parameters: {dropout: {uniform: [0.5, 0.1]}}}\n",
         "sweep 's', field 'dropout': uniform needs [low, high], two finite numbers with low < high, not [0.5, 0.1]"),
        ("s:\n  random: {count: 2, parameters: {dropout: {uniform: [0.1, .inf]}}}\n",
         "sweep 's', field 'dropout': uniform needs [low, high], two finite numbers"),
        ("s:\n  random: {count: 2, parameters: {dropout: {uniform: [0.1]}}}\n",
         "sweep 's', field 'dropout': uniform needs [low, high]"),
        ("s:\n  random: {count: 2, parameters: {learning_rate: {log_uniform: [0, 0.1]}}}\n",
         "sweep 's', field 'learning_rate': log_uniform needs low > 0 (it draws the logarithm uniformly), "
         "not [0, 0.1]"),
        ("s:\n  random: {count: 2, parameters: {learnig_rate: {uniform: [0.1, 0.2]}}}\n",
         "sweep 's', field 'learnig_rate': unknown field (did you mean 'learning_rate'?)"),
        ("s:\n  random: {count: 2, parameters: {dense: {uniform: [8, 64]}}}\n",
         "sweep 's', field 'dense': takes integer values, so uniform cannot draw them: list the values to choose "
         "from instead, e.g. dense: [a, b, c]"),
        ("s:\n  random: {count: 2, parameters: {lr_schedule: {uniform: [0, 1]}}}\n",
         "sweep 's', field 'lr_schedule': takes one of a fixed set of values, so uniform cannot draw them"),
        ("s:\n  fixed: {dropout: 0.1}\n  random: {count: 2, parameters: {dropout: {uniform: [0.1, 0.2]}}}\n",
         "sweep 's', field 'dropout': is set by both fixed and dropout"),
        ("s:\n  random: {count: 2, parameters: {dropout: {uniform: [0.10001, 0.10002]}}}\n",
         "sweep 's', field 'dropout': [0.10001, 0.10002) holds no 3-significant-digit value; widen it"),
    ],
)
def test_every_error_names_the_file_the_sweep_and_the_field(text, expected):
    message = error_of(text, field_types=TYPES)
    assert message.startswith(f"{WHERE}: {expected}"), message


def test_sweeps_must_be_a_mapping():
    with pytest.raises(SweepError, match=rf"^{WHERE}: sweeps must be a mapping of sweep names to sweeps"):
        expand_sweeps([{"grid": {}}], WHERE, 10, KNOWN)


@pytest.mark.parametrize(
    "models, entries, runs",
    [("config/models-sweep.yaml", 6, 18), ("config/test/models-sweep.yaml", 20, 60)],
)
def test_the_example_sweeps_expand_as_their_comments_say(models, entries, runs):
    from mnist3d.config.runs import load_runs

    schemas = REPO / "config" / "schemas"
    expanded = load_runs(REPO / models, schemas / "run.schema.yaml", schemas / "models.schema.yaml")
    assert len(expanded) == runs
    assert len({run.entry for run in expanded}) == entries
    assert all(run.sweep for run in expanded)
