"""3D pictures of voxel digits, and what the data looks like (rule plot_examples).

Grids are indexed [z, y, x] (flat index x + 16y + 256z). The recipe turns each digit upright, so
its strokes lie in the y-z plane with z pointing up and the extrusion along x; the views look at
that face from slightly to the side and above.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from mnist3d.grid import CLASSES, EDGE, GRID_SHAPE
from mnist3d.plots.style import INK, MUTED, new_figure, save, styled
from mnist3d.plots.views import THRESHOLD, view, write_views
from mnist3d.results.confusion import rotation_known

ELEVATION = 14
AZIMUTH = -22


def voxel_colours(grid_xyz: np.ndarray, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Filled cells and an RGBA colour per cell: denser cells darker and more opaque."""
    filled = grid_xyz > threshold
    scaled = np.clip((grid_xyz - threshold) / max(1 - threshold, 1e-9), 0, 1)
    colours = colormaps["YlGnBu"](0.35 + 0.6 * scaled)
    colours[..., 3] = 0.45 + 0.5 * scaled
    return filled, colours


def marker_area(axis) -> float:
    """Scatter marker area (points^2) of one grid cell. At this view the 16-cell box spans about
    0.6 of the narrower side of its subplot; markers a little larger (0.72) close the gaps between
    neighbouring cells."""
    box = axis.get_window_extent()  # in pixels
    side = min(box.width, box.height) * 72 / axis.figure.dpi
    return (0.72 * side / EDGE) ** 2


def draw_digit(axis, grid: np.ndarray, title: str, title_colour: str = INK) -> None:
    """One (16, 16, 16[, 1]) grid indexed [z, y, x] on a 3D axis: a square marker per filled cell.

    Markers, not `Axes3D.voxels`: voxels builds six faces per cell and depth-sorts every face, so
    the 20-digit examples figure took about 35 CPU-s to draw, against under 2 s with markers. The
    markers are drawn back to front and fade with depth, so the strokes still read as a solid.
    """
    grid = np.asarray(grid, dtype=float).reshape(GRID_SHAPE)
    maximum = grid.max()
    if maximum > 0:
        grid = grid / maximum
    grid_xyz = grid.transpose(2, 1, 0)
    filled, colours = voxel_colours(grid_xyz)
    x, y, z = np.nonzero(filled)
    axis.scatter(
        x + 0.5,
        y + 0.5,
        z + 0.5,
        marker="s",
        s=marker_area(axis),
        c=colours[filled],
        edgecolors=(0.1, 0.15, 0.3, 0.35),
        linewidths=0.3,
        depthshade=True,
    )
    axis.view_init(elev=ELEVATION, azim=AZIMUTH)
    axis.set_box_aspect((1, 1, 1))
    for setter in (axis.set_xlim, axis.set_ylim, axis.set_zlim):
        setter(0, EDGE)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_zticks([])
    for pane in (axis.xaxis, axis.yaxis, axis.zaxis):
        pane.set_pane_color((0.96, 0.96, 0.96, 1.0))
        pane.line.set_color((0.8, 0.8, 0.8, 1.0))
    axis.set_title(title, fontsize=10, color=title_colour, pad=-2)


def example_indices(y: np.ndarray, rotated: np.ndarray | None, want_rotated: int | None) -> list[int | None]:
    """First test row of each class (restricted to unrotated or rotated rows when asked)."""
    y = np.asarray(y)
    indices = []
    for digit in range(CLASSES):
        mask = y == digit
        if want_rotated is not None and rotated is not None:
            mask &= np.asarray(rotated) == want_rotated
        rows = np.flatnonzero(mask)
        indices.append(int(rows[0]) if rows.size else None)
    return indices


def _digit_grid(figure, x, indices, caption):
    axes = figure.subplots(2, 5, subplot_kw={"projection": "3d"})
    for axis, digit, index in zip(axes.ravel(), range(CLASSES), indices):
        if index is None:
            axis.set_axis_off()
            axis.set_title(f"{digit}: none in the test set", fontsize=9, color=MUTED)
            continue
        draw_digit(axis, x[index], f"digit {digit}")
    figure.suptitle(caption, x=0.01, ha="left", fontsize=11, fontweight="bold")


def example_sets(y_test: np.ndarray, test_rotated: np.ndarray | None) -> list[tuple[str, list[int | None]]]:
    """The examples' sets, each (caption, a test row per class): an unrotated and a rotated set when
    the data marks rotated copies, else one."""
    if rotation_known(test_rotated):
        return [
            ("Unrotated test digits, one per class", example_indices(y_test, test_rotated, 0)),
            ("Rotated noisy copies, one per class", example_indices(y_test, test_rotated, 1)),
        ]
    return [("Test digits, one per class", example_indices(y_test, None, None))]


@styled
def examples_figure(x_test: np.ndarray, y_test: np.ndarray, test_rotated: np.ndarray | None = None):
    """One test digit per class; when the data marks rotated copies, an unrotated and a rotated set."""
    sets = example_sets(y_test, test_rotated)
    figure = new_figure(11.5, 5.0 * len(sets))
    panels = figure.subfigures(len(sets), 1, hspace=0.02) if len(sets) > 1 else [figure]
    for panel, (caption, indices) in zip(panels, sets):
        _digit_grid(panel, x_test, indices, caption)
    return figure


def example_views(x_test: np.ndarray, y_test: np.ndarray, test_rotated: np.ndarray | None = None) -> list[dict]:
    """The digits of `examples_figure`, in its order, for the report's rotatable views."""
    return [
        view(x_test[index], caption.split(",")[0], f"digit {digit}")
        for caption, indices in example_sets(y_test, test_rotated)
        for digit, index in enumerate(indices)
        if index is not None
    ]


def read_test_set(prepared_path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x_test, y_test and test_rotated (None where the file has no such array) of results/data/prepared.npz."""
    with np.load(prepared_path) as prepared:
        test_rotated = prepared["test_rotated"] if "test_rotated" in prepared.files else None
        return prepared["x_test"], prepared["y_test"], test_rotated


def plot_examples_file(prepared_path, output, views_output=None) -> None:
    """The examples figure of the prepared test set (rule plot_examples: needs no trained run) and,
    at `views_output`, its digits as a views file (mnist3d.plots.views)."""
    test_set = read_test_set(prepared_path)
    save(examples_figure(*test_set), output)
    if views_output is not None:
        write_views(views_output, "Test digits, one per class", example_views(*test_set))
