"""The house style of every figure, and the pieces all figure modules share.

Built on matplotlib's object API (no pyplot state), so many figures can be drawn in one process
and nothing depends on a display. Imports matplotlib and NumPy only: each plotting job pays for
nothing it does not draw.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from PIL import Image

from mnist3d.atomic import atomic_path

DPI = 110
INK = "#222222"
MUTED = "#6b6b6b"
GRID = "#e4e4e4"
# One hue per quantity, shared by every chart: a colour means the same thing everywhere.
TIME_COLOUR = "#d98c2b"
ACCURACY_COLOUR = "#2b8a5a"
LOSS_COLOUR = "#c0473a"
UNROTATED_COLOUR = "#3b6fb6"
ROTATED_COLOUR = "#e0883a"
FAILED_COLOUR = "#b03030"
# Runs outside the highlighted few in a chart of many: present, but out of the way.
FAINT = "#b8b8b8"

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelcolor": INK,
    "axes.edgecolor": "#9a9a9a",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
}


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def save(figure: Figure, path: str | Path, dpi: int = DPI) -> None:
    """PNG at `path`, written beside it first so a half-written image never looks finished.

    Drawn once on an Agg canvas and handed to PIL as pixels: `savefig` draws a figure with a
    layout engine twice (once to lay it out, once to render) and then encodes a PNG only for PIL
    to decode it again, which cost a per-run plot job about a third of its drawing time. The
    pixels are the same. Reduced to a 256-colour palette: charts lose nothing visible and the PNG
    shrinks about 2.5x, which keeps a report of 60 runs, with every image embedded, small enough
    to e-mail.
    """
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # runs the layout engine, then renders
    image = (
        Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        .convert("RGB")
        .quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    )
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", optimize=True)


def styled(function):
    """Run a drawing function with the shared style, so every axis it creates picks it up."""

    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


# ----------------------------------------------------------------------------------------------
# Small helpers


def entry_colours(entries: list[str]) -> dict[str, tuple]:
    """A colour per entry: distinct hues for up to 10, else a perceptual ramp in the given order."""
    unique = list(dict.fromkeys(entries))
    if len(unique) <= 10:
        palette = colormaps["tab10"]
        return {entry: palette(index) for index, entry in enumerate(unique)}
    ramp = colormaps["viridis"]
    return {entry: ramp(0.92 * index / (len(unique) - 1)) for index, entry in enumerate(unique)}


def label_size(count: int) -> float:
    """Tick-label font size for a list of `count` names: smaller, but never unreadable, as it grows."""
    return float(np.clip(10.5 - count / 8, 7.0, 9.5))


def figure_title(figure: Figure, text: str) -> None:
    """The house style of a figure's title: bold, left-aligned."""
    figure.suptitle(text, x=0.01, ha="left", fontsize=12, fontweight="bold")


def measure_axis(axis, name: str, title: str) -> None:
    """Title, label and scale of an accuracy (as percent) or loss (from 0) axis over epochs."""
    axis.set_title(title)
    axis.set_ylabel(name)
    epoch_axis(axis)
    if name == "accuracy":
        axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        axis.set_ylim(bottom=0)


def epoch_axis(axis) -> None:
    """Whole epochs on the x axis; a run of a few epochs gets one tick each and some room."""
    axis.set_xlabel("epoch")
    low, high = axis.dataLim.intervalx
    if np.isfinite(low) and high - low < 4:
        axis.set_xlim(low - 0.5, high + 0.5)
        axis.set_xticks(range(int(round(low)), int(round(high)) + 1))
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


def wrap(text: str, width: int, max_lines: int) -> str:
    lines = []
    for paragraph in str(text).splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width) or [""])
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["..."]
    return "\n".join(lines)


def accuracy_text(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------
# Placeholders


@styled
def failed_figure(title: str, error: str, width: float = 8.0, height: float = 2.4) -> Figure:
    """A figure that says plainly that a run failed, and why, in place of the chart it would have had."""
    figure = new_figure(width, height)
    figure.set_facecolor("#fbeeee")
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.text(0.0, 0.95, title, fontsize=13, fontweight="bold", color=FAILED_COLOUR, va="top", transform=axis.transAxes)
    axis.text(
        0.0,
        0.72,
        wrap(error or "no error message was recorded", width=int(width * 11), max_lines=8),
        fontsize=9,
        family="DejaVu Sans Mono",
        color=INK,
        va="top",
        transform=axis.transAxes,
    )
    return figure


@styled
def message_figure(title: str, message: str, width: float = 8.0, height: float = 2.4) -> Figure:
    """A figure for a chart that has nothing to show (no successful run yet, no misclassified digit)."""
    figure = new_figure(width, height)
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.text(0.0, 0.9, title, fontsize=12, fontweight="bold", color=INK, va="top", transform=axis.transAxes)
    axis.text(
        0.0, 0.62, wrap(message, int(width * 12), 6), fontsize=10, color=MUTED, va="top", transform=axis.transAxes
    )
    return figure


def save_all(figures: dict[str, Figure], outputs: dict[str, str | Path], dpi: int = DPI) -> None:
    """Each named figure to its output path; an output without a figure is an error naming both lists."""
    missing = set(outputs) - set(figures)
    if missing:
        raise KeyError(f"no figure named {sorted(missing)}; known: {sorted(figures)}")
    for name, path in outputs.items():
        save(figures[name], path, dpi)


def plot_curve(axis, history, column, **style) -> None:
    """One per-epoch curve of a history (a frame, or a record array of mnist3d.results.runfiles); a run
    of 3 epochs or fewer gets markers to be seen."""
    epochs = np.asarray(history["epoch"], dtype=float)
    marker = "o" if len(epochs) <= 3 else None
    axis.plot(epochs, np.asarray(history[column], dtype=float), marker=marker, markersize=4, **style)
