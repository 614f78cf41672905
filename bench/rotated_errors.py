"""Where a trained run's errors on the rotated test digits go: the pairs it confuses most.

    python3 bench/rotated_errors.py results/runs/vgg-residual-one-cycle-e48/rep1 [more run dirs]

Reads each run's predictions.npz (y_true, y_pred, test_rotated) and prints, for the rotated half,
its accuracy, the most confused digit pairs (both directions counted together), the share of errors
that fall in pairs a rotation maps onto each other, and the accuracy if each such pair counted as one
class. 6 and 9 are one half-turn apart in the digit's plane; 2 and 5 are close to mirror images, and
a half-turn about an in-plane axis mirrors a digit extruded symmetrically in depth, as the recipe's
are. See bench/README.md ("What limits the rotated half").

    python3 bench/rotated_errors.py --pose-ambiguity   # a few seconds, no run needed

simulates the recipe's rotation angles instead: how often the pose of a rotated digit is more
likely to be that of its half-turned twin, which is how often the pose alone would misread a digit
whose twin is exactly its half-turn (a 6 drawn as a turned 9).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from mnist3d.data import recipe  # noqa: E402
from mnist3d.results.confusion import confusion_counts, rotation_known  # noqa: E402
from mnist3d.results.runfiles import read_prediction_arrays  # noqa: E402

ROTATION_PAIRS = ((6, 9), (2, 5))
# recipe.rotated_noisy_copy's angle stds in radians, in scipy's extrinsic "zyx" order (z, y, x).
ANGLE_STDS = np.radians([180.0, 90.0, 90.0])


def confused_pairs(counts: np.ndarray) -> list[tuple[int, int, int]]:
    """(a, b, errors) for every pair a < b with errors either way, most errors first."""
    both_ways = np.triu(counts + counts.T, k=1)
    pairs = [(a, b, int(both_ways[a, b])) for a, b in zip(*np.nonzero(both_ways))]
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))


def merged_accuracy(y_true: np.ndarray, y_pred: np.ndarray, pairs) -> float:
    """Accuracy when the second digit of each pair is read as the first."""
    merge = np.arange(10)
    for first, second in pairs:
        merge[second] = first
    return float(np.mean(merge[y_true] == merge[y_pred]))


def report(run: Path, top: int) -> str:
    predictions = read_prediction_arrays(run / "predictions.npz")
    if not rotation_known(predictions.get("test_rotated", [])):
        sys.exit(f"{run}/predictions.npz: the test set does not say which grids are rotated")
    rotated = predictions["test_rotated"] == 1
    y_true, y_pred = predictions["y_true"][rotated], predictions["y_pred"][rotated]
    counts = confusion_counts(y_true, y_pred)
    errors = int(np.sum(y_true != y_pred))
    pairs = confused_pairs(counts)
    in_rotation_pairs = sum(n for a, b, n in pairs if (a, b) in ROTATION_PAIRS)
    lines = [
        f"{run}: rotated half {np.mean(y_true == y_pred):.3f} ({len(y_true)} digits, {errors} errors)",
        "  most confused: " + ", ".join(f"{a}-{b} {n}" for a, b, n in pairs[:top]),
        f"  in 6-9 and 2-5: {in_rotation_pairs} errors ({in_rotation_pairs / max(errors, 1):.0%})",
        (f"  accuracy with 6=9: {merged_accuracy(y_true, y_pred, ROTATION_PAIRS[:1]):.3f}, "
         f"with 6=9 and 2=5: {merged_accuracy(y_true, y_pred, ROTATION_PAIRS):.3f}"),
    ]
    return "\n".join(lines)


def pose_density(rotations) -> np.ndarray:
    """Density (up to a constant, against the uniform measure) of the recipe's angle distribution at
    each rotation: a sum over every angle triple that gives it (both Euler branches, 2 pi wraps)."""
    principal = rotations.as_euler("zyx")  # middle angle in [-pi/2, pi/2]
    other = principal + [np.pi, 0.0, np.pi]
    other[:, 1] = np.pi - principal[:, 1]
    wraps = 2 * np.pi * np.arange(-4, 5)
    density = np.zeros(len(principal))
    for angles in (principal, other):
        per_axis = [np.exp(-0.5 * ((angles[:, [axis]] + wraps) / std) ** 2).sum(axis=1) / std
                    for axis, std in enumerate(ANGLE_STDS)]
        density += np.prod(per_axis, axis=0) / np.abs(np.cos(angles[:, 1]))  # the measure's cos(middle)
    return density


def pose_ambiguity(samples: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Share of the recipe's rotations whose twin (the digit half-turned first) is the likelier pose,
    per half-turn axis. x is the normal of the digit's plane (its extrusion) after the recipe's Ry(90)."""
    from scipy.spatial.transform import Rotation

    angles = np.random.default_rng(seed).normal(size=(samples, 3)) * ANGLE_STDS
    rotations = Rotation.from_euler("zyx", angles)
    sz, sy, sx = np.degrees(angles[0])  # the recipe's row-vector form: cloud @ Rz @ Ry @ Rx
    assert np.allclose((recipe.rz(sz) @ recipe.ry(sy) @ recipe.rx(sx)).T, rotations[0].as_matrix())
    density = pose_density(rotations)
    return {axis: float(np.mean(pose_density(rotations * Rotation.from_euler(axis, np.pi)) > density))
            for axis in "xyz"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories holding predictions.npz")
    parser.add_argument("--top", type=int, default=6, help="how many pairs to list")
    parser.add_argument("--pose-ambiguity", action="store_true", help="simulate the recipe's poses instead")
    args = parser.parse_args(argv)
    if args.pose_ambiguity:
        for axis, share in pose_ambiguity().items():
            plane = "in the digit's plane (6 to 9)" if axis == "x" else "in depth (a mirror image)"
            print(f"half-turn about {axis}, {plane}: the twin's pose is the likelier one for {share:.1%}")
    if not args.runs and not args.pose_ambiguity:
        parser.error("name run directories, or --pose-ambiguity")
    for run in args.runs:
        print(report(run, args.top))


if __name__ == "__main__":
    main()
