"""lcnn's training step (lcnn.detector.loop.TrainStep, what `train` runs) against Keras'
`model.fit`: the same compiled model, the same cached training batches, one epoch each,
taking turns.

Usage (from the repository root): python -m bench.step_speed [--data data/demo] [--repeats 5]

Reports clips/s of each and their ratio per round (median, min, max): the ratio holds even
when other jobs share the CPU, absolute speeds do not. 2 threads, as bench/run.py. Writes
runs/step-speed.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import ROOT, THREADS, interleaved, round_ratios, summary
from lcnn.config import Config
from lcnn.io import atomic_write_text


def epoch_with_step(model, cfg: Config, dataset, weights):
    """A function that trains one epoch of `dataset` with lcnn's own step (one device)."""
    import tensorflow as tf

    from lcnn.detector import loop
    from lcnn.detector.train import focal_loss

    strategy = tf.distribute.get_strategy()
    step = loop.TrainStep(model, strategy, focal_loss(cfg), weights)
    batches = loop.distributed(strategy, dataset)

    def epoch() -> None:
        step.reset()
        for batch in batches:
            step(batch)
    return epoch


def measure(data_path: Path, repeats: int) -> dict:
    from lcnn.detector import data
    from lcnn.detector.model import build_model
    from lcnn.detector.train import compile_model
    from lcnn.runtime import set_threads

    set_threads(THREADS)
    cfg = Config(threads=THREADS)
    clips = data.load_split(data_path, "training", cfg, progress=False)
    dataset = data.make_dataset(clips, cfg, training=True)
    weights = data.class_weights(clips.labels)
    models = {}
    for name in ("step", "fit"):
        models[name] = build_model(cfg)
        compile_model(models[name], cfg, steps_per_epoch=len(clips) // cfg.batch_size + 1)
    fns = {"step": epoch_with_step(models["step"], cfg, dataset, weights),
           "fit": lambda: models["fit"].fit(dataset, epochs=1, verbose=0, class_weight=weights,
                                            shuffle=False)}
    times = interleaved(fns, repeats)
    n = len(clips)
    return {"clips": n, "threads": THREADS, "rounds": repeats,
            "clips_per_s": {k: summary([n / t for t in v]) for k, v in times.items()},
            "speed_ratio_step_vs_fit": round_ratios(times["fit"], times["step"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "step-speed.json")
    args = p.parse_args()
    r = measure(args.data, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(r, indent=2) + "\n")
    speed, ratio = r["clips_per_s"], r["speed_ratio_step_vs_fit"]
    print(f"{r['clips']} training clips, {r['rounds']} rounds, {r['threads']} threads: "
          f"TrainStep {speed['step']['median']:.0f} clips/s, model.fit "
          f"{speed['fit']['median']:.0f} clips/s; step/fit speed {ratio['median']:.3f} "
          f"(min {ratio['min']:.3f}, max {ratio['max']:.3f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
