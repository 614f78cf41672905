import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from mnist3d.training import augment  # noqa: E402

QUARTER = np.pi / 2


@pytest.fixture(scope="module")
def grids():
    """Asymmetric batches whose content reaches the grid's edges along z, as generated grids' does."""
    rng = np.random.default_rng(0)
    x = np.zeros((6, 16, 16, 16, 1), dtype=np.float32)
    x[:, :, 4:9, 6:12] = rng.random((6, 16, 5, 6, 1))
    x[:, 0:3, 9:13, 2:5] = rng.random((6, 3, 4, 3, 1))
    return x / x.max(axis=(1, 2, 3, 4), keepdims=True)


def about(axis: int, radians: float, batch: int) -> np.ndarray:
    angles = np.zeros((batch, 3), dtype=np.float32)
    angles[:, axis] = radians
    return angles


@pytest.mark.parametrize("fit", [True, False])
def test_zero_angles_are_the_identity(grids, fit):
    rotated = augment.rotate(grids, np.zeros((len(grids), 3)), fit=fit).numpy()
    np.testing.assert_allclose(rotated, grids, atol=1e-6)


# Angles are about (x, y, z); a batch is [z, y, x], so array axes of the batch are z=1, y=2, x=3.
# +90 degrees about x turns +y into +z, about y turns +z into +x, about z turns +x into +y, and
# np.rot90 turns its first axis into its second.
@pytest.mark.parametrize("axis, rot90_axes", [(0, (2, 1)), (1, (1, 3)), (2, (3, 2))])
@pytest.mark.parametrize("fit", [True, False])
def test_quarter_turn_is_rot90(grids, axis, rot90_axes, fit):
    rotated = augment.rotate(grids, about(axis, QUARTER, len(grids)), fit=fit).numpy()
    np.testing.assert_allclose(rotated, np.rot90(grids, 1, axes=rot90_axes), atol=1e-5)


def test_a_point_follows_the_rotation_matrix():
    """A single lit voxel at (x, y, z) = (12, 7.5, 7.5) off centre moves to where M puts it."""
    x = np.zeros((1, 16, 16, 16, 1), dtype=np.float32)
    x[0, 7:9, 7:9, 12] = 1.0
    rotated = augment.rotate(x, about(2, QUARTER, 1), fit=False).numpy()[0, ..., 0]
    z, y, x_ = np.unravel_index(rotated.argmax(), rotated.shape)
    assert (x_, y) in {(7, 12), (8, 12)} and z in (7, 8)


def test_matrices_compose_like_the_recipe():
    """Rx(a) Ry(b) Rz(c) on column vectors, i.e. the recipe's cloud @ Rz @ Ry @ Rx on rows."""
    from mnist3d.data import recipe

    degrees = np.array([[20.0, -35.0, 110.0]])
    matrices = augment.rotation_matrices(np.radians(degrees).astype(np.float32)).numpy()[0]
    points = np.random.default_rng(1).normal(size=(5, 3))
    expected = points @ recipe.rz(degrees[0, 2]) @ recipe.ry(degrees[0, 1]) @ recipe.rx(degrees[0, 0])
    np.testing.assert_allclose(points @ matrices.T, expected, atol=1e-5)


def test_shape_dtype_range_and_labels_kept(grids):
    labels = np.arange(len(grids))
    x, y = augment.random_rotation(45.0, seed=3, probability=1.0)(grids, labels)
    assert x.shape == grids.shape and x.dtype == tf.float32
    np.testing.assert_array_equal(y, labels)
    x = x.numpy()
    assert x.min() >= 0.0
    np.testing.assert_allclose(x.max(axis=(1, 2, 3, 4)), 1.0, rtol=1e-6)


def test_fit_keeps_a_rotated_grid_inside():
    """A full (y, z) plane turned 45 degrees about x: scaled to fit, its corners become the tips of a
    diamond that just touches the faces, as a re-voxelised copy would; unscaled, they are cut off."""
    x = np.zeros((1, 16, 16, 16, 1), dtype=np.float32)
    x[0, :, :, 7:9] = 1.0
    angles = about(0, np.pi / 4, 1)
    fitted = augment.rotate(x, angles, fit=True).numpy()[0, :, :, 7, 0] > 0.05
    cut = augment.rotate(x, angles, fit=False).numpy()[0, :, :, 7, 0] > 0.05
    for face in (fitted[0], fitted[-1], fitted[:, 0], fitted[:, -1]):
        assert 1 <= face.sum() <= 3
    for face in (cut[0], cut[-1], cut[:, 0], cut[:, -1]):
        assert face.sum() >= 6


def test_empty_grid_stays_empty():
    x = np.zeros((2, 16, 16, 16, 1), dtype=np.float32)
    rotated, _ = augment.random_rotation(90.0, seed=0)(x, np.zeros(2))
    assert np.all(rotated.numpy() == 0)


@pytest.mark.parametrize("options, low, high", [
    ({"probability": 0.0}, 1.0, 1.0), ({"probability": 1.0}, 0.0, 0.0), ({}, 0.25, 0.75),
])
def test_the_grids_not_chosen_pass_through_untouched(grids, options, low, high):
    """By default half are rotated; the others are exactly the input."""
    batch = np.concatenate([grids] * 8)
    rotated, _ = augment.random_rotation(90.0, seed=1, **options)(batch, np.zeros(len(batch)))
    untouched = np.all(rotated.numpy() == batch, axis=(1, 2, 3, 4))
    assert low <= untouched.mean() <= high


def test_blur_spreads_a_voxel_like_the_recipe_noise():
    x = np.zeros((1, 16, 16, 16, 1), dtype=np.float32)
    x[0, 8, 8, 8] = 1.0
    blurred = augment.jitter_blur(x).numpy()[0, ..., 0]
    assert blurred.max() == pytest.approx(1.0) and blurred[8, 8, 8] == pytest.approx(1.0)
    for neighbour in (blurred[7, 8, 8], blurred[8, 9, 8], blurred[8, 8, 7]):
        assert neighbour == pytest.approx(0.1 / 0.8)
    assert blurred[8, 8, 10] == 0.0


def test_blurred_rotation_keeps_shape_and_maximum(grids):
    x, _ = augment.random_rotation(90.0, seed=2, blur=True)(grids, np.zeros(len(grids)))
    assert x.shape == grids.shape
    np.testing.assert_allclose(x.numpy().max(axis=(1, 2, 3, 4)), 1.0, rtol=1e-6)


def dataset_epochs(grids, seed, epochs=2):
    data = tf.data.Dataset.from_tensor_slices((grids, np.arange(len(grids)))).batch(3)
    data = data.map(augment.random_rotation(60.0, seed=seed, probability=1.0)).prefetch(2)
    return [np.stack([x.numpy() for x, _ in data]) for _ in range(epochs)]


def test_same_seed_same_rotations_in_a_pipeline(grids):
    first, second, other = dataset_epochs(grids, 7), dataset_epochs(grids, 7), dataset_epochs(grids, 8)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_same_seed_same_batches_through_the_workflow_pipeline(grids):
    from mnist3d.training import pipeline

    def epochs(seed):
        data = pipeline.make_training_dataset(grids, np.arange(len(grids)), 4, seed=seed, first_epoch=0,
                                              epochs=2, augment=augment.random_rotation(90.0, seed=seed))
        batches = np.concatenate([x.numpy() for x, _ in data])
        return np.split(batches, 2)

    first, second = epochs(3), epochs(3)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])


def test_a_resumed_pipeline_rotates_like_an_uninterrupted_one(grids):
    """Batch k of epoch e gets the same angles whether the stream started at epoch 0 or at e."""
    from mnist3d.training import pipeline

    def stream(first_epoch):
        data = pipeline.make_training_dataset(grids, np.arange(len(grids)), 4, seed=3, first_epoch=first_epoch,
                                              epochs=3, augment=augment.random_rotation(90.0, seed=3))
        return np.concatenate([x.numpy() for x, _ in data])

    whole, resumed = stream(0), stream(2)
    np.testing.assert_array_equal(whole[-len(resumed):], resumed)
    assert len(resumed) == len(whole) // 3


def test_every_batch_and_epoch_gets_new_angles(grids):
    epochs = dataset_epochs(grids, 7)
    batches = [batch for epoch in epochs for batch in epoch]  # 2 epochs x 2 batches
    for i in range(len(batches)):
        for j in range(i + 1, len(batches)):
            assert not np.allclose(batches[i], batches[j], atol=1e-3)
    angles = augment.random_angles(60.0, 7, 0, 3).numpy()
    assert len({tuple(row) for row in angles.round(6)}) == 3  # every sample its own angles


def test_angle_spread_follows_the_recipe():
    angles = np.degrees(augment.random_angles(90.0, 0, 0, 20000).numpy())
    np.testing.assert_allclose(angles.std(axis=0), [90.0, 90.0, 180.0], rtol=0.05)
    np.testing.assert_allclose(angles.mean(axis=0), 0.0, atol=5.0)


def test_train_run_with_rotations_is_reproducible(tmp_path):
    """The whole training path: the same seed gives the same numbers with augmentation on."""
    from mnist3d.config.runs import OPTIONAL_DEFAULTS
    from mnist3d.data import prepare
    from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 48), ("val", 10), ("test", 10)):
        arrays[f"x_{split}"] = rng.random((count, 16, 16, 16, 1), dtype=np.float32)
        arrays[f"y_{split}"] = np.arange(count, dtype=np.int64) % 10
    arrays["test_rotated"] = np.zeros(10, dtype=np.int8)
    arrays["source"] = np.array("generated")
    data = tmp_path / "prepared.npz"
    prepare.save(data, arrays)
    params = {"filters": [4], "kernel_sizes": [3], "pool_sizes": [4], "dense": 8, "dropout": 0.0,
              "learning_rate": 0.01, "epochs": 2, "batch_size": 16, "seed": 4, **OPTIONAL_DEFAULTS,
              "rotation_augmentation": 90.0}

    def run(name):
        directory = tmp_path / name
        directory.mkdir()
        paths = RunPaths.in_directory(data, directory)
        train_run(Run(name, 1, params), paths, TrainingEnvironment(threads=1, record_failure=False), log=lambda _: None)
        with np.load(paths.predictions) as predictions:
            return predictions["probabilities"]

    np.testing.assert_array_equal(run("a"), run("b"))
