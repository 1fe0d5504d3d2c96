"""Training and inference speed of the default model and the baseline, on random data.

Usage (from the repository root): python -m bench.model_speed [--steps 8] [--warmup 3]
                                                              [--set sinc_stride=4 ...]

Both models are measured in the same process, batch 64 of 2-s clips, so the ratio is fair
even when other jobs share the CPU. Random data: this measures speed, not learning.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from bench.common import THREADS, parse_settings, random_batch, timed, turn_order
from lcnn.config import Config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(configs: dict[str, tuple[Config, dict]], steps: int, warmup: int) -> dict:
    """Clips/s of training and inference for each model, timed step by step in turn.

    Taking turns (model A, model B, model A, ...) exposes every model to the same
    background load, so the ratio stays fair on a CPU shared with other jobs.
    """
    from lcnn.detector.model import build_model, model_flops
    from lcnn.detector.train import compile_model

    rng = np.random.default_rng(0)
    runs = {}
    for name, (cfg, overrides) in configs.items():
        model = build_model(cfg, **overrides)
        compile_model(model, cfg, steps_per_epoch=10)  # the optimizer and loss training uses
        x, y = random_batch(cfg, rng)
        train = lambda m=model, x=x, y=y: m.train_on_batch(x, y)  # noqa: E731
        infer = lambda m=model, x=x: m.predict_on_batch(x)  # noqa: E731
        for _ in range(warmup):
            train(), infer()
        runs[name] = {"model": model, "cfg": cfg, "train": train, "infer": infer,
                      "train_s": [], "infer_s": []}
    for step in range(steps):
        for run in (runs[name] for name in turn_order(list(runs), step)):
            run["train_s"].append(timed(run["train"]))
            run["infer_s"].append(timed(run["infer"]))
    results = {}
    for name, run in runs.items():
        batch = run["cfg"].batch_size
        train, infer = np.array(run["train_s"]), np.array(run["infer_s"])
        # The median is the typical speed; the fastest step is the least disturbed by others.
        results[name] = {
            "params": run["model"].count_params(),
            "gflops": model_flops(run["model"], run["cfg"]) / 1e9,
            "train": batch / np.median(train),
            "train_best": batch / train.min(),
            "infer": batch / np.median(infer),
            "infer_best": batch / infer.min(),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="Config overrides for the default model (an ablation)")
    args = parser.parse_args()
    overrides = parse_settings(args.set)
    from lcnn.runtime import set_threads

    set_threads(args.threads)  # as training sets them: one op at a time

    cfg = Config()
    configs = {"lcnn": (cfg, overrides), "baseline": (Config(model="baseline"), {})}
    results = measure(configs, args.steps, args.warmup)
    print(f"batch {cfg.batch_size} x {cfg.duration:g} s clips, {args.threads} threads, "
          f"{args.steps} timed steps after {args.warmup} warm-up; overrides {overrides or 'none'}")
    print("clips/s as median (fastest step)")
    print(f"{'model':8} {'params':>8} {'train GFLOP/clip':>17} {'train clips/s':>16} "
          f"{'infer clips/s':>18}")
    for name, r in results.items():
        print(f"{name:8} {r['params']:>8,} {r['gflops']:>17.3f} "
              f"{r['train']:>7.1f} ({r['train_best']:6.1f}) "
              f"{r['infer']:>8.1f} ({r['infer_best']:7.1f})")
    lcnn, baseline = results["lcnn"], results["baseline"]
    print(f"training speed ratio lcnn / baseline: {lcnn['train'] / baseline['train']:.1f}x median, "
          f"{lcnn['train_best'] / baseline['train_best']:.1f}x fastest step")


if __name__ == "__main__":
    main()
