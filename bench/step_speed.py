"""lcnn's training step (lcnn.detector.loop.TrainStep, what `train` runs) against Keras'
`model.fit`, or (--mirrored N) on one device against `--strategy mirrored` over N logical CPU
devices, or (--autotune) on the input pipeline as it is against the same pipeline with
tf.data's autotuner on, as it was until 4 December: the same model, the same cached training
batches, one epoch each (ending its iterator), taking turns.

Usage (from the repository root): python -m bench.step_speed [--data data/demo] [--repeats 5]
                                                             [--mirrored 2 | --autotune]

Reports clips/s of each and their ratio per round (median, min, max): the ratio holds even
when other jobs share the CPU, absolute speeds do not. 2 threads, as bench/run.py. Writes
runs/step-speed.json (runs/step-speed-mirrored.json with --mirrored). Under `mirrored` the
batch (64) is the global batch, split over the devices, and the devices share the same 2
cores: the ratio is the cost of distributing, not a speed-up.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from bench.common import ROOT, THREADS, interleaved, round_ratios, summary
from lcnn.config import Config
from lcnn.io import atomic_write_text


def epoch_with_step(model, cfg: Config, dataset, weights, strategy):
    """A function that trains one epoch of `dataset` with lcnn's own step under `strategy`
    (the model built and compiled for it: compiled). `dataset` may also be a function of the
    epoch number that makes that epoch's dataset, as lcnn.detector.train does."""
    from lcnn.detector import loop
    from lcnn.detector.train import focal_loss

    step = loop.TrainStep(model, strategy, focal_loss(cfg), weights)
    epochs = itertools.count()

    def epoch() -> None:
        epoch_data = dataset(next(epochs)) if callable(dataset) else dataset
        step.reset()
        for batch in loop.distributed(strategy, epoch_data):
            step(batch)
    return epoch


def compiled(cfg: Config, steps: int, strategy):
    """The model of cfg, built and compiled as lcnn.detector.train does under `strategy`."""
    from lcnn.detector.model import build_model
    from lcnn.detector.train import prepare_to_train

    with strategy.scope():
        model = build_model(cfg)
    prepare_to_train(model, cfg, steps, strategy)
    return model


def autotuned_dataset(clips, cfg: Config, epoch: int):
    """make_dataset's training batches for an epoch, with tf.data.AUTOTUNE and the autotuner
    on."""
    from unittest import mock

    import tensorflow as tf

    from lcnn.detector import data

    with mock.patch.multiple(data, PARALLEL_CALLS=tf.data.AUTOTUNE,
                             PREFETCH_BATCHES=tf.data.AUTOTUNE):
        dataset = data.make_dataset(clips, cfg, training=True, seed=cfg.seed + epoch)
    options = tf.data.Options()
    options.autotune.enabled = True
    return dataset.with_options(options)


def measure(data_path: Path, repeats: int, mirrored: int = 0, autotune: bool = False) -> dict:
    """Clips/s per round of two ways to train an epoch, and their ratio per round: TrainStep
    against model.fit, or (mirrored > 0) TrainStep on one device against TrainStep under
    `mirrored` over that many logical CPU devices, or (autotune) TrainStep on make_dataset
    against TrainStep on autotuned_dataset."""
    import os

    from lcnn.detector import data, distribute
    from lcnn.runtime import set_threads

    several = None
    if mirrored:  # first, before TensorFlow runs anything: it splits the CPU into devices
        os.environ[distribute.CPU_DEVICES] = str(mirrored)
        several = distribute.make_strategy("mirrored")
    one = distribute.make_strategy("auto")
    set_threads(THREADS)
    cfg = Config(threads=THREADS)
    clips = data.load_split(data_path, "training", cfg, progress=False)
    dataset = data.make_dataset(clips, cfg, training=True)
    if autotune:  # a new dataset every epoch, as in training
        def dataset(epoch: int):
            return data.make_dataset(clips, cfg, training=True, seed=cfg.seed + epoch)
    weights = data.class_weights(clips.labels)
    steps = len(clips) // cfg.batch_size + 1
    step = epoch_with_step(compiled(cfg, steps, one), cfg, dataset, weights, one)
    if autotune:
        other = "autotuned pipeline"
        fns = {"step": step, other: epoch_with_step(
            compiled(cfg, steps, one), cfg, lambda epoch: autotuned_dataset(clips, cfg, epoch),
            weights, one)}
    elif mirrored:
        other = f"mirrored x{mirrored}"
        fns = {"step": step, other: epoch_with_step(compiled(cfg, steps, several), cfg,
                                                    dataset, weights, several)}
    else:
        other, fit_model = "fit", compiled(cfg, steps, one)
        fns = {"step": step, "fit": lambda: fit_model.fit(dataset, epochs=1, verbose=0,
                                                          class_weight=weights, shuffle=False)}
    times = interleaved(fns, repeats)
    n = len(clips)
    return {"clips": n, "threads": THREADS, "rounds": repeats, "compared": other,
            "clips_per_s": {k: summary([n / t for t in v]) for k, v in times.items()},
            # > 1: lcnn's one-device step is faster than the other way
            "speed_ratio_step_vs_other": round_ratios(times[other], times["step"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--mirrored", type=int, default=0, metavar="N",
                   help="compare with --strategy mirrored over N logical CPU devices instead "
                        "of model.fit")
    p.add_argument("--autotune", action="store_true",
                   help="compare with the same pipeline under tf.data's autotuner instead of "
                        "model.fit")
    p.add_argument("--out", type=Path, default=None,
                   help="default runs/step-speed.json (-mirrored.json, -autotune.json)")
    args = p.parse_args()
    if args.mirrored < 0 or args.mirrored == 1:
        p.error(f"--mirrored {args.mirrored}: expected at least 2 devices (0: compare with fit)")
    if args.mirrored and args.autotune:
        p.error("--mirrored and --autotune: pick one comparison")
    name = ("step-speed-mirrored" if args.mirrored else "step-speed-autotune" if args.autotune
            else "step-speed")
    out = args.out or ROOT / "runs" / f"{name}.json"
    r = measure(args.data, args.repeats, args.mirrored, args.autotune)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(r, indent=2) + "\n")
    speed, ratio, other = r["clips_per_s"], r["speed_ratio_step_vs_other"], r["compared"]
    print(f"{r['clips']} training clips, {r['rounds']} rounds, {r['threads']} threads: "
          f"TrainStep {speed['step']['median']:.0f} clips/s, {other} "
          f"{speed[other]['median']:.0f} clips/s; step/{other} speed {ratio['median']:.3f} "
          f"(min {ratio['min']:.3f}, max {ratio['max']:.3f})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
