import h5py
import numpy as np
import pytest

from mnist3d import datacheck, prepare
from mnist3d.datacheck import DataError


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
