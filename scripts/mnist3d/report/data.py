"""The report's data set and environment sections: what the models were trained on, and with what."""

from __future__ import annotations

from mnist3d.grid import CLASSES
from mnist3d.report.format import fmt_count, fmt_value


def _size_rows(summary: dict, split_sizes: dict | None) -> list[dict]:
    """Sizes as a reader asks for them: what the file holds, and how training used it."""
    splits = summary.get("splits") or {}
    rows = []
    for name in ("train", "test"):
        split = splits.get(name) or {}
        if "samples" not in split:
            continue
        text = fmt_count(split["samples"])
        if split.get("rotated_samples") is not None:
            text += f" (of which {fmt_count(split['rotated_samples'])} rotated copies)"
        if split.get("source_digits") is not None:
            text += f", made from {fmt_count(split['source_digits'])} source digits"
        rows.append({"name": f"{name} grids in the file", "value": text})
        if name == "train" and split_sizes and "validation" in split_sizes:
            rows.append(
                {
                    "name": "used for training / validation",
                    "value": f"{fmt_count(split_sizes['train'])} / {fmt_count(split_sizes['validation'])}",
                }
            )
    return rows


def data_context(summary: dict, split_sizes: dict | None = None) -> dict:
    """The data set section: source, sizes, class balance (as bar widths), the file's attributes and
    the data checks' warnings (summary.json "warnings"; none when absent)."""
    summary = summary or {}
    splits = summary.get("splits") or {}
    balance = []
    counts = {name: (splits.get(name) or {}).get("class_counts") or {} for name in ("train", "test")}
    largest = max([int(n) for c in counts.values() for n in c.values()] or [1])
    for digit in range(CLASSES):
        row = {"digit": digit}
        for name in ("train", "test"):
            count = int(counts[name].get(str(digit), 0))
            row[name] = fmt_count(count)
            row[f"{name}_width"] = f"{100 * count / largest:.1f}"
        balance.append(row)
    value_range = summary.get("value_range") or []
    attributes = summary.get("attributes") or {}
    return {
        "source": summary.get("source", "unknown"),
        "file": summary.get("file", ""),
        "generated": summary.get("source") == "generated",
        "sizes": _size_rows(summary, split_sizes),
        "balance": balance,
        "value_range": " to ".join(f"{float(v):g}" for v in value_range),
        "nonzero_share": {
            name: f"{100 * split['nonzero_share']:.1f}%"
            for name, split in splits.items()
            if split.get("nonzero_share") is not None
        },
        "attributes": [{"name": str(k), "value": fmt_value(v)} for k, v in attributes.items() if k != "source"],
        "warnings": [str(warning) for warning in summary.get("warnings") or []],
    }


def environment_context(runs: list[dict]) -> dict:
    """Devices and library versions the runs used; several values are listed when runs differ."""
    devices: dict[str, int] = {}
    versions: dict[str, dict[str, int]] = {}
    for run in runs:
        if run.get("device"):
            devices[run["device"]] = devices.get(run["device"], 0) + 1
        for name, version in (run.get("versions") or {}).items():
            versions.setdefault(name, {})
            versions[name][str(version)] = versions[name].get(str(version), 0) + 1
    return {
        "devices": [{"name": name, "runs": count} for name, count in devices.items()],
        "versions": [
            {"name": name, "value": ", ".join(found) if len(found) > 1 else next(iter(found))}
            for name, found in versions.items()
        ],
    }
