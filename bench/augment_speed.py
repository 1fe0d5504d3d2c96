"""Training throughput with channel augmentation on vs off (cached copies, lcnn.detector.data).

Usage (from the repository root): python -m bench.augment_speed [--data data/demo] [--repeats 5]
           [--kinds codec,reverb,rawboost] [--variants 4] [--cache_dir DIR]

1. Builds the training split's augmented copies once (the one-off cost, in clips/s).
2. Trains one model, one epoch at a time, alternating a pipeline without copies and one
   that reads a copy or the clip (as lcnn.detector.train does), and reports clips/s of each and
   their ratio per pair (median, min, max): the ratio holds even when other jobs share the
   CPU, absolute speeds do not. Same for the input pipeline alone (no model).

Writes runs/augment-speed.json; prints a short table. 2 threads, as bench/run.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from bench.common import ROOT, THREADS, interleaved, summary
from bench.step_speed import compiled, epoch_with_step
from lcnn.config import Config
from lcnn.io import atomic_write_text


def augmented_config(cfg: Config, kinds: list[str], variants: int) -> Config:
    """cfg with the given channel kinds on (rawboost as algorithms 1 then 2)."""
    on = {f"augment_{k}": True for k in kinds if k != "rawboost"}
    return dataclasses.replace(cfg, augment_variants=variants,
                               augment_rawboost="12" if "rawboost" in kinds else "", **on)


def measure(data_path: Path, kinds: list[str], variants: int, repeats: int,
            cache_dir: str | None) -> dict:
    from lcnn.detector import data, distribute
    from lcnn.runtime import set_threads

    set_threads(THREADS)
    plain = Config(threads=THREADS)
    augmented = augmented_config(plain, kinds, variants)
    clips = data.load_split(data_path, "training", plain, cache_dir=cache_dir, progress=False)
    start = time.perf_counter()
    copies = data.training_variants(clips, augmented)  # built once, or read from the cache
    build_s = time.perf_counter() - start
    with_copies = dataclasses.replace(clips, variants=copies)
    without = dataclasses.replace(clips, variants=None)
    ds_off = data.make_dataset(without, plain, training=True)
    ds_on = data.make_dataset(with_copies, augmented, training=True)

    strategy = distribute.make_strategy("auto")
    model = compiled(plain, len(clips) // plain.batch_size + 1, strategy)
    n = len(clips)

    weights = data.class_weights(clips.labels)

    def fit(ds):  # one epoch with lcnn's training step, as `train` runs it
        return epoch_with_step(model, plain, ds, weights, strategy)

    def read(ds):
        return lambda: sum(int(x.shape[0]) for x, _ in ds)

    train = interleaved({"off": fit(ds_off), "on": fit(ds_on)}, repeats)
    pipe = interleaved({"off": read(ds_off), "on": read(ds_on)}, repeats)
    return {
        "clips": n, "kinds": kinds, "variants": variants, "threads": THREADS,
        "build_s": build_s, "build_clips_per_s": n * variants / build_s,
        "train_clips_per_s_off": summary([n / t for t in train["off"]]),
        "train_clips_per_s_on": summary([n / t for t in train["on"]]),
        "train_ratio_on_off": summary([b / a for a, b in zip(train["on"], train["off"],
                                                             strict=True)]),
        "pipeline_clips_per_s_off": summary([n / t for t in pipe["off"]]),
        "pipeline_clips_per_s_on": summary([n / t for t in pipe["on"]]),
        "pipeline_ratio_on_off": summary([b / a for a, b in zip(pipe["on"], pipe["off"],
                                                                strict=True)]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--kinds", default="codec,reverb,rawboost")
    p.add_argument("--variants", type=int, default=Config.augment_variants)
    p.add_argument("--cache_dir")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "augment-speed.json")
    args = p.parse_args()
    r = measure(args.data, args.kinds.split(","), args.variants, args.repeats, args.cache_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(r, indent=2) + "\n")
    built = (f"built in {r['build_s']:.0f} s ({r['build_clips_per_s']:.1f} copies/s, once)"
             if r["build_s"] > 1 else "read from the cache (built by an earlier run)")
    print(f"{r['clips']} training clips, {r['variants']} copies each ({'+'.join(r['kinds'])}): "
          f"{built}")
    for what in ("train", "pipeline"):
        off, on = r[f"{what}_clips_per_s_off"], r[f"{what}_clips_per_s_on"]
        ratio = r[f"{what}_ratio_on_off"]
        print(f"  {what:<9} off {off['median']:7.1f} clips/s  on {on['median']:7.1f} clips/s  "
              f"on/off {ratio['median']:.3f} (min {ratio['min']:.3f}, max {ratio['max']:.3f}, "
              f"n {ratio['n']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
