"""Where one training step of the workflow's reference network goes, kernel by kernel (oneDNN's own timing).

    python3 bench/profile_step.py                      # the workflow's "fast" model, batch 64, 20 steps
    python3 bench/profile_step.py --steps 40 --top 30
    TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1 python3 bench/profile_step.py   # any environment knob to try
    ONEDNN_MAX_CPU_ISA=AVX2 python3 bench/profile_step.py --weight-gradient padded   # FastConv3D's AVX2 path

Runs the training step in a child process with ONEDNN_VERBOSE=1 (oneDNN prints one line per
primitive it executes, with its implementation and the milliseconds it took), after warm-up steps,
and prints per kernel: calls per step, ms per step, median ms per call and GFLOP/s for convolutions
and matrix products, sorted by ms per step; then the step's wall time and how much of it oneDNN's
kernels account for (the rest: TensorFlow's own ops, e.g. bias and ReLU gradients, Adam, metrics).
Also prints the CPU's instruction-set class: which kernels oneDNN picks depends on it (on AVX2-only
CPUs the stock convolutions' weight gradients run on the generic `x64:gemm:jit`, FastConv3D's on `jit:avx2`;
bench/bench_weight_gradient.py compares the two per shape). See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from numpy import percentile

REPO = Path(__file__).resolve().parents[1]
MARK, END = "=====PROFILE-START=====", "=====PROFILE-END====="
CONV = re.compile(r"mb(\d+)_(?:g(\d+))?ic(\d+)oc(\d+)_id\d+od(\d+)kd(\d+).*_ih\d+oh(\d+)kh(\d+).*_iw\d+ow(\d+)kw(\d+)")
INNER = re.compile(r"mb(\d+)ic(\d+)oc(\d+)")
GEMM = re.compile(r"^(\d+)x(\d+):(\d+)x(\d+)$")


def child(args) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_training as bt

    from mnist3d.training import pipeline

    pipeline.configure_tensorflow(args.threads, 1)
    params = {**bt.REFERENCE, "batch_size": args.batch_size}
    x, y, _ = bt.load_data(args.data, args.batch_size * args.steps, 1)
    dataset = pipeline.make_dataset(x, y, args.batch_size, shuffle=True, seed=1)
    model = bt.workflow_model(params, args.steps)
    if args.weight_gradient:  # every Conv3D as FastConv3D with this kernel gradient, same weights
        import keras
        from bench_weight_gradient import with_convolutions

        from mnist3d.training import layers, train

        cls = keras.layers.Conv3D if args.weight_gradient == "keras" else layers.FastConv3D
        model = with_convolutions(model, cls, **({} if args.weight_gradient == "keras" else
                                                 {"weight_gradient": args.weight_gradient}))
        train.compile_model(model, params, args.steps)
    model.fit(dataset, epochs=2, verbose=0)  # warm-up: tracing, primitive caches, allocations
    print(MARK, flush=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(dataset, epochs=1, verbose=0)
    cpu_ms = (time.process_time() - cpu_started) / args.steps * 1000
    print(END, cpu_ms, (time.perf_counter() - started) / args.steps * 1000, flush=True)


def flops(kind: str, shape: str) -> float | None:
    if kind == "convolution" and (match := CONV.search(shape)):
        mb, groups, ic, oc, od, kd, oh, kh, ow, kw = (int(v) if v else 1 for v in match.groups())
        return 2.0 * mb * ic * oc * od * oh * ow * kd * kh * kw / groups
    if kind == "inner_product" and (match := INNER.search(shape)):
        mb, ic, oc = map(int, match.groups())
        return 2.0 * mb * ic * oc
    if kind == "gemm_api" and (match := GEMM.match(shape)):
        m, k, _, n = map(int, match.groups())
        return 2.0 * m * k * n
    return None


def parse(lines: list[str], steps: int):
    """{(kind, implementation, direction, shape): [ms per call]} from the lines between the marks."""
    calls = collections.defaultdict(list)
    for line in lines:
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or len(fields) < 11 or fields[3] != "exec":
            continue
        kind, implementation, direction, shape = fields[5], fields[6], fields[7], fields[-2]
        if kind == "reorder":
            shape = shape + " " + fields[8].split(" ")[-1].split(":")[4]  # the target layout
        calls[(kind, implementation, direction, shape)].append(float(fields[-1]))
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="profiled training steps (default 20)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data", type=Path, help="a prepared.npz (default: random grids, same cost)")
    parser.add_argument("--top", type=int, default=25, help="kernels to list (default 25)")
    parser.add_argument("--weight-gradient", choices=["keras", "auto", "padded", "stock"],
                        help="profile the model with every Conv3D as keras.layers.Conv3D (keras) or as "
                             "mnist3d.training.layers.FastConv3D with this weight_gradient (default: as built)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(REPO / "bench"))
    from bench_training import cpu_name, instruction_set

    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    if args.data:
        command += ["--data", str(args.data)]
    if args.weight_gradient:
        command += ["--weight-gradient", args.weight_gradient]
    load = os.getloadavg()[0]
    done = subprocess.run(command, env={**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True)
    out = done.stdout.splitlines()
    if done.returncode != 0 or MARK not in out:
        sys.exit(f"the profiled run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    start = out.index(MARK)
    end = next(i for i, line in enumerate(out) if line.startswith(END))
    cpu_ms, step_ms = map(float, out[end].split()[1:3])
    info = [line.split(",", 3)[-1] for line in out[:start] if line.startswith("onednn_verbose,v1,info,")][:3]
    calls = parse(out[start + 1:end], args.steps)
    rows = []
    for (kind, implementation, direction, shape), times in calls.items():
        per_step = sum(times) / args.steps
        # Other jobs only ever slow a call down: the 10th percentile estimates an idle machine.
        fast = float(percentile(times, 10))
        fast_per_step = fast * len(times) / args.steps
        work = flops(kind, shape)
        rate = f"{work / (statistics.median(times) / 1000) / 1e9:6.1f} {work / (fast / 1000) / 1e9:6.1f}" if work else \
            "     -      -"
        rows.append((per_step, fast_per_step,
                     f"{per_step:7.2f} {fast_per_step:7.2f} {len(times) / args.steps:5.1f} "
                     f"{statistics.median(times):8.3f} {fast:7.3f} {rate}  "
                     f"{kind} {direction} {implementation} {shape}"))
    rows.sort(reverse=True)
    total = sum(row[0] for row in rows)
    total_fast = sum(row[1] for row in rows)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; {instruction_set()}; oneDNN: {'; '.join(info)}")
    print(f"batch {args.batch_size}, {args.steps} steps, {args.threads} threads; Conv3D: "
          f"{args.weight_gradient or 'as built'}; load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; env: "
          + " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("TF_", "ONEDNN_", "DNNL_"))))
    convolutions = [row for row in rows if " convolution " in row[2]]
    print(f"step {step_ms:.1f} ms wall ({args.batch_size / step_ms * 1000:.0f} samples/s), {cpu_ms:.1f} CPU-ms; "
          f"oneDNN kernels {total:.1f} ms of it (at their fast calls {total_fast:.1f}); "
          f"convolutions {sum(r[0] for r in convolutions):.1f} ms ({sum(r[1] for r in convolutions):.1f}), of which "
          f"weight gradients {sum(r[0] for r in convolutions if 'backward_weights' in r[2]):.1f} ms "
          f"({sum(r[1] for r in convolutions if 'backward_weights' in r[2]):.1f})")
    print("per step: ms (fast calls), calls; per call: median ms, fast ms; GFLOP/s median, fast; kernel")
    for _, _, text in rows[: args.top]:
        print(text)


if __name__ == "__main__":
    main()
