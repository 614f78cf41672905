import json

import h5py
import numpy as np
import pytest
from conftest import copy_workflow, snakemake

from mnist3d.data import check as datacheck
from mnist3d.data import prepare
from mnist3d.data.check import DataError


def write_file(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.random((40, 4096), dtype=np.float32),
        "y_train": np.repeat(np.arange(10), 4),
        "X_test": rng.random((20, 4096), dtype=np.float32),
        "y_test": np.repeat(np.arange(10), 2),
    }
    arrays.update(overrides)
    with h5py.File(path, "w") as handle:
        for name, values in arrays.items():
            if values is not None:
                handle[name] = values
    return path


def test_valid_file_is_summarised(tmp_path):
    path = write_file(tmp_path / "ok.h5")
    summary = datacheck.summarise(path)
    assert summary["source"] == "real"
    assert summary["splits"]["train"]["samples"] == 40
    assert summary["splits"]["test"]["class_counts"] == {str(c): 2 for c in range(10)}
    assert summary["splits"]["test"]["rotated_samples"] is None
    assert summary["splits"]["train"]["source_digits"] is None
    assert 0 <= summary["value_range"][0] < summary["value_range"][1] <= 1
    assert summary["warnings"] == []


def test_one_reader_returns_every_array(tmp_path):
    path = write_file(tmp_path / "ok.h5", train_rotated=np.tile([0, 1], 20), train_digit=np.arange(40) // 2)
    data = datacheck.load(path)
    assert data.splits["train"].x.shape == (40, 4096) and data.splits["train"].x.dtype == np.float32
    assert data.splits["train"].rotated.tolist() == [0, 1] * 20
    assert data.splits["train"].groups.tolist() == (np.arange(40) // 2).tolist()
    assert data.splits["test"].rotated is None and data.splits["test"].groups is None
    assert data.source == "real"
    x, y = datacheck.read_split(path, "train")
    assert np.array_equal(x, data.splits["train"].x) and np.array_equal(y, data.splits["train"].y)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"X_train": np.full((40, 4096), 255, dtype=np.uint8)},
         ["X_train values span 255 to 255, outside [0, 1]"]),
        ({"X_test": np.full((20, 4096), -0.5, dtype=np.float32)}, ["X_test values span -0.5 to -0.5"]),
        ({"y_train": np.repeat([0, 1, 2, 3], 10)},
         ["the train split has 4 of the 10 classes (no 4, 5, 6, 7, 8, 9): the model cannot learn"]),
        ({"y_test": np.repeat(np.arange(10), [4, 2, 2, 2, 2, 2, 2, 2, 1, 1])},
         ["the test split is unbalanced: class 8 has 1 sample, class 0 has 4"]),
        ({"y_test": np.repeat(np.arange(9), [4, 2, 2, 2, 2, 2, 2, 2, 2])},
         ["the test split has 9 of the 10 classes (no 9): their test accuracy cannot be measured"]),
        ({"y_train": np.repeat(np.arange(10), [9, 3, 4, 4, 4, 4, 4, 4, 2, 2])},
         ["the train split is unbalanced: class 8 has 2 samples, class 0 has 9 (the smallest under a third"]),
        ({"X_train": np.full((40, 4096), 2.0, dtype=np.float32), "y_train": np.repeat([0, 1], [36, 4])},
         ["X_train values span 2 to 2", "the train split has 2 of the 10 classes (no 2, 3,",
          "the train split is unbalanced: class 1 has 4 samples, class 0 has 36"]),
    ],
)
def test_surprising_data_gives_warnings(tmp_path, overrides, expected):
    path = write_file(tmp_path / "odd.h5", **overrides)
    found = datacheck.summarise(path)["warnings"]
    assert len(found) == len(expected), found
    for warning, start in zip(found, expected):
        assert warning.startswith(start), (warning, start)


def test_a_third_of_the_largest_class_is_balanced_enough(tmp_path):
    path = write_file(tmp_path / "third.h5", y_train=np.repeat(np.arange(10), [9, 3, 4, 4, 4, 4, 3, 3, 3, 3]))
    assert datacheck.summarise(path)["warnings"] == []


def test_grid_shaped_arrays_are_accepted(tmp_path):
    grids = np.zeros((40, 16, 16, 16), dtype=np.float32)
    path = write_file(tmp_path / "grids.h5", X_train=grids)
    x, _ = datacheck.read_split(path, "train")
    assert x.shape == (40, 4096)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"y_test": None}, "missing dataset y_test"),
        ({"X_train": np.zeros((40, 100))}, "X_train has shape (40, 100); expected N x 4096 or N x 16 x 16 x 16"),
        ({"y_train": np.full(40, 10)}, "y_train holds 40 labels outside 0-9"),
        ({"y_train": np.full(40, 1.5)}, "y_train holds labels that are not whole numbers"),
        ({"X_test": np.full((20, 4096), np.nan)}, "X_test holds 81920 NaN or infinite values"),
        ({"y_test": np.zeros(19, dtype=int)}, "X_test has 20 samples but y_test has 19 labels"),
        ({"X_test": np.zeros((0, 4096)), "y_test": np.zeros(0, dtype=int)}, "the test split is empty"),
        ({"y_train": np.zeros((40, 2), dtype=int)}, "y_train has shape (40, 2)"),
        ({"test_rotated": np.zeros(19, dtype=int)},
         "test_rotated has shape (19,); expected one value per row of y_test (20,)"),
        ({"test_rotated": np.full(20, 2)}, "test_rotated holds values other than 0 (original) and 1"),
        ({"train_digit": np.arange(39)}, "train_digit has shape (39,); expected one value per row of y_train (40,)"),
    ],
)
def test_bad_file_gives_one_message_naming_file_and_problem(tmp_path, overrides, message):
    path = write_file(tmp_path / "bad.h5", **overrides)
    with pytest.raises(DataError) as caught:
        datacheck.summarise(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="absent.h5: file not found"):
        datacheck.summarise(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="text.h5: not a readable HDF5 file"):
        datacheck.summarise(tmp_path / "text.h5")


def test_prepare_shapes_and_keeps_test_apart(tmp_path):
    path = write_file(tmp_path / "ok.h5")
    arrays = prepare.prepare(path, validation_fraction=0.25, split_seed=0)
    assert arrays["x_train"].shape == (30, 16, 16, 16, 1) and arrays["x_train"].dtype == np.float32
    assert arrays["x_val"].shape == (10, 16, 16, 16, 1)
    assert np.bincount(arrays["y_val"]).tolist() == [1] * 10  # stratified
    assert arrays["x_test"].shape == (20, 16, 16, 16, 1)
    assert arrays["test_rotated"].tolist() == [prepare.UNKNOWN] * 20
    assert arrays["source"] == "real"
    with h5py.File(path) as handle:
        # Axes are [z, y, x]: flat index x + 16y + 256z.
        flat = handle["X_test"][3]
        assert arrays["x_test"][3, 2, 5, 7, 0] == flat[7 + 16 * 5 + 256 * 2]


def test_validation_split_is_seeded_and_keeps_a_digits_copies_together():
    labels = np.repeat(np.arange(10), 20)
    groups = np.arange(200) // 2  # each digit: an original and its rotated copy
    train, validation = prepare.validation_split(labels, 0.2, seed=3, groups=groups)
    again = prepare.validation_split(labels, 0.2, seed=3, groups=groups)
    assert np.array_equal(validation, again[1])
    assert not set(groups[train]) & set(groups[validation])
    assert len(validation) == 40 and np.bincount(labels[validation]).tolist() == [4] * 10
    other = prepare.validation_split(labels, 0.2, seed=4, groups=groups)[1]
    assert not np.array_equal(validation, other)


def test_save_and_load_round_trip(tmp_path):
    arrays = {"x": np.arange(6, dtype=np.float32), "y": np.arange(3)}
    prepare.save(tmp_path / "p.npz", arrays)
    loaded = prepare.load(tmp_path / "p.npz")
    assert all(np.array_equal(arrays[name], loaded[name]) for name in arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_check_rule_logs_warnings_and_writes_them_into_the_summary(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "data").mkdir()
    write_file(workdir / "data/full_dataset_vectors.h5", X_test=np.full((20, 4096), 255, dtype=np.uint8))
    snakemake(workdir, "results/data/summary.json")
    summary = json.loads((workdir / "results/data/summary.json").read_text())
    assert summary["warnings"] == [
        "X_test values span 255 to 255, outside [0, 1]: the networks expect voxel occupancy in [0, 1] "
        "(scale 0-255 data by 1/255)"
    ]
    log = (workdir / "logs/check_data.log").read_text()
    assert f"WARNING: data/full_dataset_vectors.h5: {summary['warnings'][0]}" in log
