import json
import textwrap

import pytest
from conftest import REPO

from mnist3d.config.levers import ADAMW_WEIGHT_DECAY, LEVER_DEFAULTS
from mnist3d.config import runs as runs_module
from mnist3d.config.names import check_name
from mnist3d.config.runs import OPTIONAL_DEFAULTS, RunConfigError, load_runs
from mnist3d.training.geometry import spatial_sizes

SCHEMAS = REPO / "config" / "schemas"
DEFAULTS = """\
defaults:
  filters: [16, 32, 64]
  kernel_sizes: [3, 3, 3]
  pool_sizes: [2, 2, 2]
  dense: 256
  dropout: 0.5
  learning_rate: 0.001
  epochs: 3
  batch_size: 64
  seed: 7
  replicates: 1
"""


def runs_of(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(text))
    return load_runs(path, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")


def error_of(tmp_path, text) -> str:
    with pytest.raises(RunConfigError) as caught:
        runs_of(tmp_path, text)
    return str(caught.value)


def test_entry_states_only_what_differs(tmp_path):
    runs = runs_of(tmp_path, DEFAULTS + "runs:\n  base:\n  wide: {filters: [32, 64, 128]}\n")
    assert [run.id for run in runs] == ["base/rep1", "wide/rep1"]
    assert runs[0].params["filters"] == [16, 32, 64]
    assert runs[1].params["filters"] == [32, 64, 128]
    assert runs[1].params["dense"] == 256
    assert all(runs[0].params[name] == value for name, value in OPTIONAL_DEFAULTS.items())


def test_replicates_get_consecutive_seeds_and_leave_params_alone(tmp_path):
    runs = runs_of(tmp_path, DEFAULTS + "runs:\n  same: {replicates: 3}\n")
    assert [(run.entry, run.replicate, run.seed) for run in runs] == [
        ("same", 1, 7), ("same", 2, 8), ("same", 3, 9)
    ]
    # Raising replicates must not change (and so retrain) the replicates that exist.
    more = runs_of(tmp_path, DEFAULTS + "runs:\n  same: {replicates: 5}\n")
    assert [run.params for run in more[:3]] == [run.params for run in runs]
    assert "replicates" not in runs[0].params


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("bad: {dropout: 1.5}", "run 'bad', field 'dropout': 1.5 is greater than or equal to the maximum of 1"),
        ("bad: {epochs: 0}", "run 'bad', field 'epochs': 0 is less than the minimum of 1"),
        ("bad: {filters: [16, 32]}", "run 'bad', field 'filters': filters, kernel_sizes and pool_sizes need one value per block"),
        ("bad: {pool_sizes: [4, 4, 2]}", "run 'bad', field 'pool_sizes': pool_sizes [4, 4, 2] leave nothing to pool at block 3: the 16^3 grid is already 1 voxel (product of the pools before it 16 >= 16)"),
        ("bad: {dropuot: 0.2}", "run 'bad', field 'dropuot': unknown field (did you mean 'dropout'?)"),
        ("bad: {batch_size: big}", "run 'bad', field 'batch_size': 'big' is not of type 'integer'"),
        ("bad: {lr_schedule: step}", "run 'bad', field 'lr_schedule': 'step' is not one of"),
        ("bad: 5", "run 'bad': must be a mapping of fields (or empty), not 5"),
    ],
)
def test_bad_entry_names_run_and_field(tmp_path, entry, expected):
    message = error_of(tmp_path, DEFAULTS + f"runs:\n  good: {{}}\n  {entry}\n")
    assert "models.yaml: " in message
    assert expected in message


def test_missing_parameter_is_named(tmp_path):
    message = error_of(tmp_path, "runs:\n  lonely: {dense: 8}\n")
    assert "run 'lonely', field 'filters': missing" in message


def test_bad_default_is_named_as_default(tmp_path):
    message = error_of(tmp_path, DEFAULTS.replace("dense: 256", "dense: -1") + "runs:\n  a: {}\n")
    assert "defaults, field 'dense'" in message


def test_duplicate_run_name_is_an_error(tmp_path):
    message = error_of(tmp_path, DEFAULTS + "runs:\n  twin: {dense: 8}\n  twin: {dense: 16}\n")
    assert "'twin' is written twice" in message and "line 14" in message


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "has space", "-dash", "ünï"])
def test_unsafe_names_are_refused(tmp_path, name):
    message = error_of(tmp_path, DEFAULTS + f"runs:\n  '{name}': {{}}\n")
    assert f"run '{name}'" in message and "not a safe directory name" in message


@pytest.mark.parametrize("name", ["seed-reference", "wide_2", "v1.5", "_x"])
def test_safe_names_pass(name):
    check_name(name)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(RunConfigError, match="nowhere.yaml: file not found"):
        load_runs(tmp_path / "nowhere.yaml", SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")
    assert "not valid YAML" in error_of(tmp_path, "runs: [unclosed\n")
    assert "runs" in error_of(tmp_path, DEFAULTS)


def test_spatial_sizes_follow_same_padding():
    assert spatial_sizes([2, 2, 2]) == [8, 4, 2]
    assert spatial_sizes([3, 3]) == [6, 2]
    assert spatial_sizes([2, 2, 2, 2]) == [8, 4, 2, 1]
    # Pools that do not divide the grid: the edge reaches 1 without the product matching 16.
    assert spatial_sizes([3, 3, 2]) == [6, 2, 1]
    assert spatial_sizes([5, 4]) == [4, 1]
    assert spatial_sizes([2, 2, 2, 2, 1]) == [8, 4, 2, 1, 1]  # a pool of 1 changes nothing


def test_a_block_that_builds_per_spatial_sizes_builds_in_keras():
    import keras

    for pools in ([3, 3, 2], [5, 4], [2, 2, 2, 2, 1]):
        x = keras.Input((16, 16, 16, 1))
        for pool in pools:
            x = keras.layers.MaxPooling3D(pool, padding="same")(x)
        assert list(x.shape[1:4]) == [spatial_sizes(pools)[-1]] * 3, pools


def test_shipped_models_files_are_valid():
    for models in ("config/models.yaml", "config/models-quick.yaml", "config/models-gpu.yaml",
                   "config/test/models.yaml"):
        runs = load_runs(REPO / models, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")
        assert runs, models


# A run's identity is its parameters: any rewrite that keeps them keeps every run's params text.
REWRITTEN_SAME = """\
# the same runs, rewritten: keys reordered, defaults spelled out, ints as floats, exponents
runs:
  wide:
    seed: 7
    replicates: 1
    filters: [32, 64, 128]
    rotation_augmentation: 90.0
    learning_rate: 1e-3
    dense: 256
    implementation: fast
  base: {}
defaults:
  batch_size: 64
  epochs: 3
  dropout: 5.0e-1
  kernel_sizes: [3, 3, 3]
  pool_sizes: [2, 2, 2]
  filters: [16, 32, 64]
  learning_rate: 0.001
  dense: 256.0
  seed: 7
  replicates: 1
"""


def test_same_values_written_otherwise_give_identical_params(tmp_path):
    original = runs_of(tmp_path, DEFAULTS + "runs:\n  base: {}\n  wide: {filters: [32, 64, 128], rotation_augmentation: 90}\n")
    rewritten = runs_of(tmp_path, REWRITTEN_SAME)
    by_id = {run.id: repr(run.params) for run in rewritten}
    assert {run.id: repr(run.params) for run in original} == by_id


def test_params_are_canonical_types_and_sorted(tmp_path):
    (run,) = runs_of(tmp_path, DEFAULTS + "runs:\n  a: {rotation_augmentation: 90, dropout: 0}\n")
    assert list(run.params) == sorted(run.params)
    assert run.params["rotation_augmentation"] == 90.0 and isinstance(run.params["rotation_augmentation"], float)
    assert isinstance(run.params["dropout"], float) and isinstance(run.params["learning_rate"], float)
    assert all(isinstance(value, int) for value in run.params["filters"])
    assert isinstance(run.params["epochs"], int) and isinstance(run.params["seed"], int)


@pytest.mark.parametrize("written, value", [("1e-3", 0.001), ("5E-4", 0.0005), ("2.5e-3", 0.0025), ("1.0E-2", 0.01)])
def test_exponent_floats_are_numbers(tmp_path, written, value):
    (run,) = runs_of(tmp_path, DEFAULTS + f"runs:\n  a: {{learning_rate: {written}}}\n")
    assert run.params["learning_rate"] == value


@pytest.mark.parametrize("name", ["064", "1e-3", "1.50", "true", "yes", "null", "0x1F"])
def test_names_yaml_would_turn_into_numbers_keep_their_text(tmp_path, name):
    runs = runs_of(tmp_path, DEFAULTS + f"runs:\n  {name}: {{}}\n  other: {{}}\n")
    assert runs[0].entry == name


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "[16, .nan, 64]"])
def test_nan_and_infinity_are_refused(tmp_path, value):
    field = "filters" if value.startswith("[") else "learning_rate"
    message = error_of(tmp_path, DEFAULTS + f"runs:\n  a: {{{field}: {value}}}\n")
    assert f"run 'a', field '{field}'" in message and "not a finite number" in message


def test_nan_in_defaults_is_refused(tmp_path):
    message = error_of(tmp_path, DEFAULTS.replace("dropout: 0.5", "dropout: .nan") + "runs:\n  a: {}\n")
    assert "defaults, field 'dropout'" in message


def test_too_many_runs_fail_before_any_run_is_built(tmp_path, monkeypatch):
    def resolve_entry(*arguments, **options):
        raise AssertionError("a run was built before the cap was checked")

    monkeypatch.setattr(runs_module, "resolve_entry", resolve_entry)
    message = error_of(tmp_path, DEFAULTS + "runs:\n  a: {}\n  typo: {replicates: 100000}\n")
    assert "100001 training runs" in message and "max_runs = 500" in message and "config/config.yaml" in message


def test_a_run_name_too_long_for_its_files_is_an_error(tmp_path):
    assert runs_of(tmp_path, DEFAULTS + f"runs:\n  {'a' * 240}: {{}}\n")
    message = error_of(tmp_path, DEFAULTS + f"runs:\n  {'a' * 241}: {{}}\n")
    assert message.endswith(f"run '{'a' * 241}': the name has 241 characters; at most 240")


def test_a_models_file_that_cannot_be_read_is_named(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(DEFAULTS.encode() + "runs:\n  # café\n  a: {}\n".encode("latin-1"))
    message = str(pytest.raises(RunConfigError, load_runs, tmp_path / "latin1.yaml", SCHEMAS / "run.schema.yaml",
                                SCHEMAS / "models.schema.yaml").value)
    assert message == f"{tmp_path / 'latin1.yaml'}: line 13: not UTF-8 text (invalid continuation byte); save the file as UTF-8"
    message = str(pytest.raises(RunConfigError, load_runs, tmp_path, SCHEMAS / "run.schema.yaml",
                                SCHEMAS / "models.schema.yaml").value)
    assert message == f"{tmp_path}: is a folder; name the models file inside it"


def test_no_runs_at_all_is_an_error(tmp_path):
    assert "no runs" in error_of(tmp_path, DEFAULTS + "runs: {}\n")


def test_replicates_written_as_a_float_count_towards_the_cap(tmp_path):
    message = error_of(tmp_path, DEFAULTS + "runs:\n  a: {replicates: 1e3}\n")
    assert "1000 training runs" in message


def test_a_merged_anchor_can_be_overridden(tmp_path):
    runs = runs_of(tmp_path, DEFAULTS + "runs:\n  base: &base {dense: 64, dropout: 0.3}\n"
                   "  variant:\n    <<: *base\n    dropout: 0.1\n")
    assert runs[1].params["dense"] == 64 and runs[1].params["dropout"] == 0.1
    message = error_of(tmp_path, DEFAULTS + "runs:\n  a:\n    dense: 8\n    dense: 16\n")
    assert "'dense' is written twice" in message


# Today's shipped models files, frozen when the optional levers came (tests/fixtures/models-before-levers),
# and the canonical parameters each run had then: a new lever must leave every one byte for byte.
BEFORE_LEVERS = REPO / "tests" / "fixtures" / "models-before-levers"


@pytest.mark.parametrize("models_file", ["models.yaml", "models-quick.yaml", "models-sweep.yaml", "models-gpu.yaml"])
def test_new_levers_leave_existing_run_parameters_byte_for_byte(models_file):
    expected = json.loads((BEFORE_LEVERS / "canonical_params.json").read_text())
    expected = expected[f"tests/fixtures/models-before-levers/{models_file}"]
    runs = load_runs(BEFORE_LEVERS / models_file, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")
    assert {run.id: json.dumps(run.params) for run in runs} == expected


def test_levers_at_their_default_leave_the_parameters_as_they_were(tmp_path):
    runs = runs_of(tmp_path, DEFAULTS + textwrap.dedent("""\
        runs:
          plain: {}
          spelled-out: {convs_per_block: 1, activation: relu, batch_norm: true, pooling: max, residual: false,
                        head: flatten, optimizer: adam, weight_decay: 0, label_smoothing: 0.0, dense: [256]}
          moved: {optimizer: sgd, dense: [64, 32], head: global_average}
        """))
    plain, spelled_out, moved = (run.params for run in runs)
    assert spelled_out == plain
    assert not set(LEVER_DEFAULTS) & set(plain)
    assert moved == {**plain, "optimizer": "sgd", "dense": [64, 32], "head": "global_average"}


def test_levers_whose_default_depends_on_another_field_are_written_out(tmp_path):
    runs = runs_of(tmp_path, DEFAULTS + textwrap.dedent("""\
        runs:
          adamw: {optimizer: adamw}
          adamw-no-decay: {optimizer: adamw, weight_decay: 0}
          warm: {lr_schedule: warmup_cosine, epochs: 20}
          cycle: {lr_schedule: one_cycle, epochs: 20}
          short-cycle: {lr_schedule: one_cycle, epochs: 2}
        """))
    adamw, no_decay, warm, cycle, short = (run.params for run in runs)
    assert adamw["weight_decay"] == ADAMW_WEIGHT_DECAY
    assert "weight_decay" not in no_decay  # 0, the lever's own default: written by leaving it out
    assert (warm["warmup_epochs"], cycle["warmup_epochs"], short["warmup_epochs"]) == (2, 6, 1)


@pytest.mark.parametrize("entry, expected", [
    ("{lr_schedule: cosine, warmup_epochs: 2}",
     "field 'warmup_epochs': warmup_epochs applies to lr_schedule warmup_cosine or one_cycle, not 'cosine'"),
    ("{lr_schedule: warmup_cosine, warmup_epochs: 3}",
     "field 'warmup_epochs': warmup_epochs 3 leaves no epoch after the warm-up of 3 epochs"),
    # The warm-up the user left out is filled in: the field they wrote is the one to change.
    ("{lr_schedule: one_cycle, epochs: 1}",
     "field 'epochs': lr_schedule 'one_cycle' warms up for at least 1 epoch, so it needs 2 epochs or more, not 1"),
    ("{lr_schedule: one_cycle, epochs: 1, warmup_epochs: 1}",
     "field 'warmup_epochs': warmup_epochs 1 leaves no epoch after the warm-up of 1 epochs"),
    ("{seed: 4294967296}", "field 'seed': 4294967296 is greater than the maximum of 4294967295"),
    ("{seed: 4294967295, replicates: 2}",
     "field 'seed': replicate 2 would use seed 4294967296, above 4294967295, the largest NumPy takes"),
    ("{activation: tanh}", "field 'activation': 'tanh' is not one of"),
    ("{convs_per_block: 5}", "field 'convs_per_block': 5 is greater than the maximum of 4"),
    ("{dense: [64, 0]}", "field 'dense.1': 0 is less than the minimum of 1"),
    ("{optimizer: rmsprop}", "field 'optimizer': 'rmsprop' is not one of"),
    ("{label_smoothing: 1}", "field 'label_smoothing': 1 is greater than or equal to the maximum of 1"),
    ("{pooling: strided, pool_sizes: [4, 4, 2]}", "field 'pool_sizes': pool_sizes [4, 4, 2] leave nothing to pool"),
])
def test_a_bad_lever_names_the_file_the_run_and_the_field(tmp_path, entry, expected):
    message = error_of(tmp_path, DEFAULTS + f"runs:\n  bad: {entry}\n")
    assert f"models.yaml: run 'bad', {expected}" in message, message
