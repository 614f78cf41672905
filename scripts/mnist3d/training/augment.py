"""Seeded random rotations of voxel grids, on the fly inside a tf.data pipeline of batches.

The generated data set's rotated copies are made by rotating a digit's point cloud with angles
sx, sy ~ N(0, std), sz ~ N(0, 2 std) (std = 90 degrees) and voxelising it again, which scales the
rotated digit so that its largest extent fills the grid. `random_rotation` does the same to the
grids themselves: it rotates a grid about its centre by the recipe's matrix Rx(sx) Ry(sy) Rz(sz)
(z drawn with twice the std), scales the result so the rotated content fills the grid as a
re-voxelised copy would, resamples trilinearly (voxels from outside the grid count as empty) and
divides each grid by its maximum, so every sample's maximum is 1.0 as in the data.

By default half of the grids are rotated and the rest pass through untouched: half of the test set
is unrotated, and rotating every training grid cost more accuracy on that half than it gained on
the rotated one (bench/accuracy_study.py).

Axes: a batch is (B, 16, 16, 16, 1) indexed [z, y, x]; the rotation matrices act on (x, y, z)
column vectors, and a rotation by +90 degrees about z turns +x into +y.

Determinism: batch k draws its angles from stateless random ops keyed on (seed, k). The training
pipeline passes k itself (epoch x batches per epoch + batch), so the rotations are a pure function
of (seed, epoch, batch) and a run resumed at any epoch draws what an uninterrupted one would.
Called without k, the function counts the batches it has seen (from 0, across epochs), which gives
the same numbers as long as the dataset maps batches in order.

TensorFlow is imported inside the functions: this module is importable where only NumPy is.
"""

from __future__ import annotations

import math

from mnist3d.grid import EDGE

CENTRE = (EDGE - 1) / 2
# The recipe's rotated copies draw the angle about z with twice the std of the other two.
AXIS_STD_FACTORS = (1.0, 1.0, 2.0)
# The share of training grids rotated (see the module docstring).
ROTATED_SHARE = 0.5
PADDED = EDGE + 3


def random_angles(std_degrees: float, seed: int, step, batch_size, probability: float = 1.0):
    """The (batch_size, 3) angles in radians about x, y and z that batch number `step` gets.

    Each sample is rotated with the given probability; the others get zero angles (left as they are).
    """
    import tensorflow as tf

    std = tf.constant([math.radians(std_degrees) * factor for factor in AXIS_STD_FACTORS], tf.float32)
    angle_key, choice_key = tf.unstack(tf.random.experimental.stateless_split(
        tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)]), num=2))
    angles = tf.random.stateless_normal([batch_size, 3], seed=angle_key) * std
    chosen = tf.random.stateless_uniform([batch_size, 1], seed=choice_key) < probability
    return tf.where(chosen, angles, 0.0)


def rotation_matrices(angles):
    """(B, 3) angles in radians about x, y, z -> (B, 3, 3) matrices Rx Ry Rz for column vectors.

    As in the recipe (`cloud @ Rz(sz) @ Ry(sy) @ Rx(sx)` on row vectors): z's turn applies first.
    """
    import tensorflow as tf

    cos, sin = tf.unstack(tf.cos(angles), axis=1), tf.unstack(tf.sin(angles), axis=1)
    one, zero = tf.ones_like(cos[0]), tf.zeros_like(cos[0])

    def matrix(rows):
        return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)

    (cx, cy, cz), (sx, sy, sz) = cos, sin
    rx = matrix([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = matrix([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    return rx @ ry @ rz


def _voxel_centres():
    """(3, 4096) float32: rows x, y, z of every voxel relative to the grid centre, in flat [z, y, x] order."""
    import tensorflow as tf

    z, y, x = tf.meshgrid(*[tf.range(EDGE, dtype=tf.float32)] * 3, indexing="ij")
    return tf.stack([tf.reshape(axis, [-1]) for axis in (x, y, z)]) - CENTRE


def _fit_scale(grids, matrices, centres):
    """(B,) input voxels per output voxel so that the rotated content's largest extent fills the grid.

    The extent counts whole voxels about the centre (2 x farthest occupied centre + 1), so a grid
    whose content already reaches an edge, as every generated grid's does, keeps its size when it
    is not rotated.
    """
    import tensorflow as tf

    occupied = tf.reshape(grids, [tf.shape(grids)[0], 1, -1]) > 0
    turned = tf.abs(tf.matmul(matrices, centres))
    reach = tf.reduce_max(tf.where(occupied, turned, 0.0), axis=[1, 2])
    return tf.maximum(2.0 * reach + 1.0, 1.0) / EDGE


def rotate(grids, angles, fit: bool = True):
    """Rotate each (16, 16, 16, 1) grid of a [z, y, x] batch about its centre by its (x, y, z) angles.

    Output voxel q samples the input at M^T q (times the fit scale) with trilinear weights; voxels
    outside the grid count as empty. Each grid is then divided by its maximum.
    """
    import tensorflow as tf

    grids = tf.convert_to_tensor(grids, tf.float32)
    batch = tf.shape(grids)[0]
    matrices = rotation_matrices(tf.convert_to_tensor(angles, tf.float32))
    centres = tf.broadcast_to(_voxel_centres(), [batch, 3, EDGE**3])
    source = tf.matmul(matrices, centres, transpose_a=True)  # (B, 3, 4096): M^T q
    if fit:
        source *= _fit_scale(grids, matrices, centres)[:, None, None]
    # Index into a grid padded with one empty plane below and two above on every axis; clipping
    # then only ever moves a sample among empty planes, so no corner needs a bounds check.
    source = tf.clip_by_value(source + (CENTRE + 1.0), 0.0, EDGE + 1.0)
    low = tf.floor(source)
    wx, wy, wz = tf.unstack(source - low, axis=1)
    ix, iy, iz = tf.unstack(tf.cast(low, tf.int32), axis=1)
    base = ix + PADDED * iy + PADDED**2 * iz + tf.range(batch)[:, None] * PADDED**3
    padded = tf.reshape(tf.pad(grids[..., 0], [[0, 0], [1, 2], [1, 2], [1, 2]]), [-1])

    def corner(dz, dy, dx):
        return tf.gather(padded, base + (dx + PADDED * dy + PADDED**2 * dz))

    def lerp(low_value, high_value, weight):
        return low_value + (high_value - low_value) * weight

    planes = [
        lerp(*[lerp(corner(dz, dy, 0), corner(dz, dy, 1), wx) for dy in (0, 1)], wy) for dz in (0, 1)
    ]
    resampled = lerp(*planes, wz)
    resampled = tf.math.divide_no_nan(resampled, tf.reduce_max(resampled, axis=1, keepdims=True))
    return tf.reshape(resampled, tf.shape(grids))


def jitter_blur(grids):
    """Spread each voxel a little over its neighbours, as the recipe's point noise does, and renormalise.

    The rotated copies' points move by uniform noise of +-0.25 x the cloud's std along each axis:
    about a voxel along a digit's long axes, a third of one across its thin one. A separable
    [0.1, 0.8, 0.1] kernel gives rotated originals the rotated copies' share of voxels above 0.1
    and 0.3 (0.18 and 0.11 against 0.16 and 0.11; unblurred 0.14 and 0.09).
    """
    import tensorflow as tf

    taps = tf.constant([0.1, 0.8, 0.1])
    kernel = taps[:, None, None] * taps[None, :, None] * taps[None, None, :]
    blurred = tf.nn.conv3d(grids, kernel[..., None, None], strides=[1] * 5, padding="SAME")
    peak = tf.reduce_max(blurred, axis=[1, 2, 3, 4], keepdims=True)
    return tf.math.divide_no_nan(blurred, peak)


def random_rotation(std_degrees: float, seed: int, fit: bool = True, probability: float = ROTATED_SHARE,
                    blur: bool = False):
    """A `Dataset.map` function for batches: (x, y) -> (x randomly rotated, y).

    Angles about x and y ~ N(0, std_degrees), about z ~ N(0, 2 std_degrees), fresh for every batch
    and every sample, a function of (seed, batch number) only: `step` when given, else a counter of
    the batches seen. Each sample is rotated with the given probability and otherwise passed
    through untouched. `fit` scales a rotated grid to fill
    the grid as re-voxelising would; `blur` adds the recipe's point noise (it did not help).
    """
    import tensorflow as tf

    counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="rotation_batches")

    def augment(x, y, step=None):
        if step is None:
            step = counter.assign_add(1) - 1
        angles = random_angles(std_degrees, seed, step, tf.shape(x)[0], probability)
        # Resample only the grids that turn (half the work at the default share), keeping the order.
        chosen = tf.reduce_any(angles != 0.0, axis=1)
        turned, kept = (tf.cast(tf.where(mask)[:, 0], tf.int32) for mask in (chosen, ~chosen))
        rotated = rotate(tf.gather(x, turned), tf.gather(angles, turned), fit=fit)
        if blur:
            rotated = jitter_blur(rotated)
        return tf.dynamic_stitch([turned, kept], [rotated, tf.gather(x, kept)]), y

    return augment
