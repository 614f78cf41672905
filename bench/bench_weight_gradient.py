"""Convolution weight gradients, stock against padded-VALID, per shape; and B's samples/s with each.

    python3 bench/bench_weight_gradient.py                          # per shape, then B; about 3 minutes
    ONEDNN_MAX_CPU_ISA=AVX2 python3 bench/bench_weight_gradient.py  # the kernels an AVX2-only CPU gets
    python3 bench/bench_weight_gradient.py --model-rounds 0         # per shape only
    python3 bench/bench_weight_gradient.py --rounds 0               # B only

Per shape (batch 64, channels last, kernel k, stride 1, padding "same"): `Conv3DBackpropFilterV2` as
Keras' gradient calls it (padding SAME) against the same op on the input padded by k // 2 on every
spatial side with padding VALID (the pad included in its time), each a tf.function, interleaved
stock, padded, stock, ... over `--rounds` rounds of `--calls` calls. Prints per way the median and
the fast (10th percentile) wall ms per call and their ratios, the largest difference relative to the
gradient's largest value, and the oneDNN implementation with its kernel's own median time (from a
child process with ONEDNN_VERBOSE=1: `x64:gemm:jit` is im2col + sgemm, `jit:avx2` and
`jit:avx512_core` direct kernels). Then B, the workflow's fast model on the seed's reference
network, with every Conv3D as stock Keras and as `mnist3d.training.layers.FastConv3D` forced to the
padded weight gradient, same weights, in interleaved rounds of one epoch each: samples/s as
bench/bench_training.py measures them (epoch begin to end, median of rounds, and from the fast
steps) and CPU time per sample. Also prints what `FastConv3D` chooses by itself on this machine with
these settings. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

# (edge, input channels, output channels, kernel): the five shapes, then the blocks of the
# reference network (16-32-64), of `best` (16-48-96-192) and of `quick` (8-32-64-128), then kernel 5.
SHAPES = [
    (16, 1, 16, 3), (8, 16, 32, 3), (4, 32, 64, 3), (16, 1, 8, 3), (4, 48, 96, 3),
    (8, 16, 48, 3), (2, 96, 192, 3), (8, 8, 32, 3), (2, 64, 128, 3),
    (16, 1, 16, 5), (8, 16, 32, 5),
]
IMPLEMENTATION = "IMPLEMENTATION "


def label(shape) -> str:
    edge, cin, cout, kernel = shape
    return f"{edge}^3 {cin}->{cout} k{kernel}"


def gradient_functions(shape, batch: int):
    """(x, dy, stock, padded): the two weight gradients of one shape as tf.functions, and their inputs."""
    import tensorflow as tf

    edge, cin, cout, kernel = shape
    rng = np.random.default_rng(edge * 1000 + cin * 10 + cout)
    x = tf.constant(rng.random((batch, edge, edge, edge, cin), dtype=np.float32))
    dy = tf.constant(rng.normal(size=(batch, edge, edge, edge, cout)).astype(np.float32))
    sizes = [kernel, kernel, kernel, cin, cout]
    half = kernel // 2
    pads = [[0, 0], [half, half], [half, half], [half, half], [0, 0]]

    @tf.function
    def stock(x, dy):
        return tf.raw_ops.Conv3DBackpropFilterV2(input=x, filter_sizes=sizes, out_backprop=dy, strides=[1] * 5,
                                                 padding="SAME")

    @tf.function
    def padded(x, dy):
        return tf.raw_ops.Conv3DBackpropFilterV2(input=tf.pad(x, pads), filter_sizes=sizes, out_backprop=dy,
                                                 strides=[1] * 5, padding="VALID")

    return x, dy, stock, padded


def implementations_child(args) -> None:
    """Runs each gradient with ONEDNN_VERBOSE=1 in this process, a warm-up call and `--calls` more;
    prints a mark before each shape and way."""
    for shape in SHAPES:
        x, dy, stock, padded = gradient_functions(shape, args.batch_size)
        for name, function in (("stock", stock), ("padded", padded)):
            function(x, dy).numpy()
            print(f"{IMPLEMENTATION}{label(shape)}|{name}", flush=True)
            for _ in range(args.calls):
                function(x, dy).numpy()


def implementations(args) -> dict:
    """{(shape label, way): (oneDNN implementation of its backward-weights convolution, median ms per call
    by oneDNN's own timing)}."""
    command = [sys.executable, str(Path(__file__).resolve()), "--implementations-child",
               "--batch-size", str(args.batch_size), "--calls", str(args.calls)]
    done = subprocess.run(command, env={**os.environ, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the ONEDNN_VERBOSE child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    found, key = {}, None
    for line in done.stdout.splitlines():
        if line.startswith(IMPLEMENTATION):
            key = tuple(line[len(IMPLEMENTATION):].split("|"))
        fields = line.split(",")
        if key and line.startswith("onednn_verbose") and len(fields) > 7 and fields[3] == "exec" \
                and fields[5] == "convolution" and fields[7] == "backward_weights":
            found.setdefault(key, (fields[6], []))[1].append(float(fields[-1]))
    return {key: (name, statistics.median(times)) for key, (name, times) in found.items()}


def per_shape(args) -> None:
    kernels = implementations(args)
    print(f"per shape, batch {args.batch_size}, {args.rounds} interleaved rounds (stock, padded, stock, ...) of "
          f"{args.calls} calls: wall ms per call (pad included), median and fast calls (10th percentile: other "
          f"jobs only slow a call down); oneDNN's own median ms of the convolution kernel alone (ONEDNN_VERBOSE "
          f"child); ratio = stock / padded (> 1: padded faster)")
    print(f"{'shape':18s} {'stock':>6s} {'padded':>6s} {'ratio':>5s} | {'fast':>6s} {'fast':>6s} {'ratio':>5s} | "
          f"{'oneDNN':>6s} {'oneDNN':>6s} {'ratio':>5s} | {'max rel diff':>12s}  oneDNN stock -> padded")
    for shape in SHAPES:
        x, dy, stock, padded = gradient_functions(shape, args.batch_size)
        want, got = stock(x, dy).numpy(), padded(x, dy).numpy()  # warm-up: tracing, primitive caches
        difference = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        times = {"stock": [], "padded": []}
        for _ in range(args.rounds):
            for name, function in (("stock", stock), ("padded", padded)):
                for _ in range(args.calls):
                    started = time.perf_counter()
                    function(x, dy).numpy()
                    times[name].append((time.perf_counter() - started) * 1000)
        ms = {name: statistics.median(values) for name, values in times.items()}
        fast = {name: float(np.percentile(values, 10)) for name, values in times.items()}
        (stock_name, stock_ms), (padded_name, padded_ms) = (
            kernels.get((label(shape), name), ("?", float("nan"))) for name in ("stock", "padded"))
        print(f"{label(shape):18s} {ms['stock']:6.2f} {ms['padded']:6.2f} {ms['stock'] / ms['padded']:5.2f} | "
              f"{fast['stock']:6.2f} {fast['padded']:6.2f} {fast['stock'] / fast['padded']:5.2f} | "
              f"{stock_ms:6.2f} {padded_ms:6.2f} {stock_ms / padded_ms:5.2f} | {difference:12.1e}  "
              f"{stock_name} -> {padded_name}", flush=True)


def with_convolutions(model, convolution_class, **options):
    """A copy of `model` (same weights) whose Conv3D layers are `convolution_class`, built from their config."""
    import keras

    def clone(layer):
        if isinstance(layer, keras.layers.Conv3D):
            return convolution_class.from_config(layer.get_config()) if not options else \
                convolution_class(**layer.get_config(), **options)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def model_speed(args) -> None:
    import bench_training as bt
    import keras

    from mnist3d.training import layers, pipeline, train

    pipeline.configure_tensorflow(args.threads, 1)
    params = {**bt.REFERENCE, "batch_size": args.batch_size}
    samples = args.steps * args.batch_size
    x, y, source = bt.load_data(args.data, samples, 1)
    dataset = pipeline.make_dataset(x, y, args.batch_size, shuffle=True, seed=1)
    built = bt.workflow_model(params, args.steps)
    models = {"stock": with_convolutions(built, keras.layers.Conv3D),
              "padded": with_convolutions(built, layers.FastConv3D, weight_gradient="padded")}
    timers = {}
    for model in models.values():
        train.compile_model(model, params, args.steps)
        model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing, primitive caches, allocations
    print(f"\nB (workflow's fast model, reference network), data: {source}; {args.steps} steps per round; "
          f"FastConv3D by itself here: {'padded' if layers.padded_weight_gradient_here() else 'stock'} weight gradient")
    rates = {name: [] for name in models}
    cpu_seconds = {name: 0.0 for name in models}
    for round_number in range(1, args.model_rounds + 1):
        for name, model in models.items():
            timers[name] = timers.get(name) or bt.step_timer()
            cpu_started = time.process_time()
            model.fit(dataset, epochs=1, verbose=0, callbacks=[timers[name]])
            cpu_seconds[name] += time.process_time() - cpu_started
            rates[name].append(samples / timers[name].epochs[-1])
        print(f"round {round_number}: stock {rates['stock'][-1]:6.0f}, padded {rates['padded'][-1]:6.0f} samples/s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    quick = {name: args.batch_size / float(np.percentile(timers[name].steps, 10)) for name in models}
    # CPU time (all threads) per sample: the work done, whatever else runs on the machine.
    cpu_ms = {name: 1000 * cpu_seconds[name] / (samples * args.model_rounds) for name in models}
    for name in models:
        print(f"B {name:7s} weight gradient: {medians[name]:6.0f} samples/s median of rounds "
              f"({min(rates[name]):.0f}-{max(rates[name]):.0f}), {quick[name]:6.0f} from the fast steps, "
              f"{cpu_ms[name]:.2f} CPU-ms per sample")
    print(f"ratio padded / stock: {medians['padded'] / medians['stock']:.3f} (round medians), "
          f"{quick['padded'] / quick['stock']:.3f} (fast steps), "
          f"{cpu_ms['stock'] / cpu_ms['padded']:.3f}x less CPU time per sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9,
                        help="interleaved rounds per shape, 0 to skip them (default 9)")
    parser.add_argument("--calls", type=int, default=10, help="calls per round and way (default 10)")
    parser.add_argument("--model-rounds", type=int, default=6, help="B rounds per way, 0 to skip B (default 6)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per B round (default 40)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data", type=Path, help="a prepared.npz (default: bench_training's choice)")
    parser.add_argument("--implementations-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.implementations_child:
        implementations_child(args)
        return
    from bench_training import cpu_name, instruction_set

    from mnist3d.training import pipeline

    pipeline.configure_tensorflow(args.threads, 1)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "none")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; {instruction_set()}; ONEDNN_MAX_CPU_ISA={cap}; "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")
    if args.rounds > 0:
        per_shape(args)
    if args.model_rounds > 0:
        model_speed(args)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
