"""The workflow's settings: values typed from the command line, and one line per mistake."""

import numpy as np
import pytest
from conftest import REPO, copy_workflow, snakemake

from mnist3d.config.settings import (WHERE, SettingsError, check_generated_split, check_settings,
                                     read_command_line_values)
from mnist3d.config.yamlfile import read_yaml
from mnist3d.data.prepare import validation_split

SCHEMA = read_yaml(REPO / "config" / "schemas" / "config.schema.yaml")
SETTINGS = read_yaml(REPO / "config" / "config.yaml")


def test_the_shipped_settings_are_valid():
    check_settings(SETTINGS, SCHEMA)
    assert read_command_line_values(SETTINGS, SCHEMA) == SETTINGS


def test_command_line_texts_are_read_as_the_schema_types():
    # What Snakemake makes of --config 'data={validation_fraction: 0.2, ...}' 'train={threads: 2}'.
    given = {"data": {"validation_fraction": "0.2", "generate_if_missing": "False", "file": "1.h5",
                      "generated": {"seed": "3"}},
             "train": {"threads": "2", "gpu_resource": "7"}, "max_runs": 50}
    read = read_command_line_values(given, SCHEMA)
    assert read == {"data": {"validation_fraction": 0.2, "generate_if_missing": False, "file": "1.h5",
                             "generated": {"seed": 3}},
                    "train": {"threads": 2, "gpu_resource": "7"}, "max_runs": 50}
    assert read_command_line_values({"train": {"threads": "two"}}, SCHEMA) == {"train": {"threads": "two"}}


@pytest.mark.parametrize("settings, expected", [
    ({"modles": "x.yaml"}, "field 'modles': unknown field (did you mean 'models'?)"),
    ({"data": {"fiel": "x.h5"}}, "field 'data.fiel': unknown field (did you mean 'file'?)"),
    ({"data": {"validation_fraction": 1.5}},
     "field 'data.validation_fraction': 1.5 is greater than or equal to the maximum of 1"),
    ({"train": {"threads": "two"}}, "field 'train.threads': 'two' is not of type 'integer'"),
    ({"data": {"split_seed": 2**32}}, "field 'data.split_seed': 4294967296 is greater than the maximum of 4294967295"),
    ({"data": {"validation_fraction": float("nan")}}, "field 'data.validation_fraction': nan is not a finite number"),
    ({"train": {"warm_server_idle": float("inf")}}, "field 'train.warm_server_idle': inf is not a finite number"),
    # --config 'train={warm_server_idle: inf}' comes as text, and stays text
    (read_command_line_values({"train": {"warm_server_idle": "inf"}}, SCHEMA),
     "field 'train.warm_server_idle': 'inf' is not of type 'number'"),
])
def test_a_wrong_setting_is_one_line_naming_the_field(settings, expected):
    with pytest.raises(SettingsError) as caught:
        check_settings({**SETTINGS, **settings}, SCHEMA)
    assert str(caught.value) == f"{WHERE}, {expected}"


def test_snakemake_takes_typed_settings_and_names_a_mistyped_one(tmp_path):
    workdir = copy_workflow(tmp_path)
    planned = snakemake(workdir, "-n", "--config", "data={validation_fraction: 0.25, generate_if_missing: true}",
                        "train={threads: 1}")
    assert "prepare_data" in planned.stdout
    result = snakemake(workdir, "-n", "--config", "data={validation_fraction: 1.5}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{WHERE}, field 'data.validation_fraction': 1.5 is greater than or equal to the maximum of 1" in output
    assert "exclusiveMaximum" not in output  # the message, not the schema


@pytest.mark.parametrize("per_class, fraction", [(10, 0.1), (9, 0.1), (2, 0.5), (2, 0.6), (1, 0.5), (15, 0.2),
                                                 (11, 0.95), (12, 0.9)])
def test_the_generated_split_check_agrees_with_the_split_itself(per_class, fraction):
    labels = np.repeat(np.arange(10), per_class)  # one source digit per row, two copies of each
    try:
        validation_split(np.repeat(labels, 2), fraction, 0, np.repeat(np.arange(len(labels)), 2))
        splits = True
    except ValueError:
        splits = False
    data = {"generated": {"train_per_class": per_class}, "validation_fraction": fraction}
    if splits:
        check_generated_split(data)
    else:
        with pytest.raises(SettingsError, match="field 'data.generated.train_per_class'"):
            check_generated_split(data)
