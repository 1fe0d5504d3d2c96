"""lcnn's training step (lcnn.detector.loop.TrainStep, what `train` runs) against Keras'
`model.fit`, or (--mirrored N) on one device against `--strategy mirrored` over N logical CPU
devices: the same model, the same cached training batches, one epoch each, taking turns.

Usage (from the repository root): python -m bench.step_speed [--data data/demo] [--repeats 5]
                                                             [--mirrored 2]

Reports clips/s of each and their ratio per round (median, min, max): the ratio holds even
when other jobs share the CPU, absolute speeds do not. 2 threads, as bench/run.py. Writes
runs/step-speed.json (runs/step-speed-mirrored.json with --mirrored). Under `mirrored` the
batch (64) is the global batch, split over the devices, and the devices share the same 2
cores: the ratio is the cost of distributing, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import ROOT, THREADS, interleaved, round_ratios, summary
from lcnn.config import Config
from lcnn.io import atomic_write_text


def epoch_with_step(model, cfg: Config, dataset, weights, strategy):
    """A function that trains one epoch of `dataset` with lcnn's own step under `strategy`
    (the model built and compiled for it: _compiled)."""
    from lcnn.detector import loop
    from lcnn.detector.train import focal_loss

    step = loop.TrainStep(model, strategy, focal_loss(cfg), weights)
    batches = loop.distributed(strategy, dataset)

    def epoch() -> None:
        step.reset()
        for batch in batches:
            step(batch)
    return epoch


def _compiled(cfg: Config, steps: int, strategy):
    """The model of cfg, built and compiled as lcnn.detector.train does under `strategy`."""
    from lcnn.detector.model import build_model
    from lcnn.detector.train import prepare_to_train

    with strategy.scope():
        model = build_model(cfg)
    prepare_to_train(model, cfg, steps, strategy)
    return model


def measure(data_path: Path, repeats: int, mirrored: int = 0) -> dict:
    """Clips/s per round of two ways to train an epoch, and their ratio per round: TrainStep
    against model.fit, or (mirrored > 0) TrainStep on one device against TrainStep under
    `mirrored` over that many logical CPU devices."""
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
    weights = data.class_weights(clips.labels)
    steps = len(clips) // cfg.batch_size + 1
    step = epoch_with_step(_compiled(cfg, steps, one), cfg, dataset, weights, one)
    if mirrored:
        other = f"mirrored x{mirrored}"
        fns = {"step": step, other: epoch_with_step(_compiled(cfg, steps, several), cfg,
                                                    dataset, weights, several)}
    else:
        other, fit_model = "fit", _compiled(cfg, steps, one)
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
    p.add_argument("--out", type=Path, default=None,
                   help="default runs/step-speed.json (runs/step-speed-mirrored.json)")
    args = p.parse_args()
    if args.mirrored < 0 or args.mirrored == 1:
        p.error(f"--mirrored {args.mirrored}: expected at least 2 devices (0: compare with fit)")
    out = args.out or ROOT / "runs" / ("step-speed-mirrored.json" if args.mirrored
                                       else "step-speed.json")
    r = measure(args.data, args.repeats, args.mirrored)
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
