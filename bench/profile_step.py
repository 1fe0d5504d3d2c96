"""Where a training step's time goes: TensorFlow's profiler over a few steps, summed per layer.

Usage (from the repository root): python -m bench.profile_step [--steps 10] [--model baseline]
                                                               [--set sinc_stride=4 ...]

Trains the default model (or one with Config overrides) on random data with
`train_on_batch`, records `--steps` steps with `tf.profiler`, and prints each layer's share of
the CPU time spent in TensorFlow ops (forward and gradient ops both count for their layer).
Shares are of thread time: with 2 threads, a step's wall time is roughly half the total.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from bench.common import THREADS, parse_settings, random_batch
from lcnn.config import Config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def op_times_ms(logdir: Path) -> collections.Counter:
    """Milliseconds per TensorFlow op name, summed over the compute threads of a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(logdir.rglob("*.xplane.pb")).read_bytes())
    times = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # ops are "scope/name:OpType"; "ExecutorState::Process" and the like wrap them
                if ":" in name and "::" not in name:
                    times[name] += event.duration_ps / 1e9
    return times


def layer_of(op_name: str, layers: set[str]) -> str:
    """The model layer an op belongs to, from its name scope ("lcnn_1/conv1_1/..." -> conv1)."""
    for part in op_name.split(":")[0].split("/"):
        for name in (part, re.sub(r"_\d+$", "", part)):  # Keras suffixes scopes with _1, _2
            if name in layers:
                return name
    return "other (optimizer, loss, metrics)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default=Config.model, help="lcnn (default) or baseline")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = parse_settings(args.set)
    import tensorflow as tf

    from lcnn.detector.model import build_model
    from lcnn.detector.train import compile_model
    from lcnn.runtime import set_threads

    cfg = Config(threads=THREADS, model=args.model)
    set_threads(cfg.threads)
    model = build_model(cfg, **overrides)
    compile_model(model, cfg, steps_per_epoch=10)
    x, y = random_batch(cfg, np.random.default_rng(0))
    for _ in range(3):  # build and warm up outside the trace
        model.train_on_batch(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        tf.profiler.experimental.start(tmp)
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        times = op_times_ms(Path(tmp))
    names = {layer.name for layer in model.layers}
    per_layer = collections.Counter()
    for op, ms in times.items():
        per_layer[layer_of(op, names)] += ms / args.steps
    total = sum(per_layer.values())
    print(f"batch {cfg.batch_size}, {args.steps} steps, overrides {overrides or 'none'}: "
          f"{total:.0f} ms of op time per step (both threads)")
    for layer, ms in per_layer.most_common():
        print(f"{layer:34} {ms:7.1f} ms  {100 * ms / total:5.1f}%")
    print("\nslowest ops:")
    for op, ms in times.most_common(8):
        print(f"{ms / args.steps:7.1f} ms  {op[:100]}")


if __name__ == "__main__":
    main()
