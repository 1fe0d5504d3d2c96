"""Front-end ablation: sinc kernel length, stride + pooling and filter count, trained the same way.

Usage (from the repository root): python -m bench.ablation [--data data/demo] [--seeds 42 43]
                                                           [--quick]

Each setting is the default Config with a few front-end fields changed (see SETTINGS), trained
with lcnn.detector.train.train (same epochs, augmentation, early stopping and seed) on the demo
corpus, and evaluated on `testing`: EER overall and on the unseen attack family (the one that
appears in testing only, read from metadata.csv). Clips/s are the training epochs' median
(first epoch excluded) from each run's history; runs share the CPU with whatever else runs,
so compare speeds within one table.

Writes bench/ablation.json and the generated section of bench/ablation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bench.common import ROOT, THREADS, atomic_write, epoch_speeds, summary, unseen_attacks
from bench.report import update_readme
from lcnn.config import Config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# (name, Config overrides). Stride x pool is the hop of the band envelopes in samples; the
# "stride 4" setting keeps the default's frame rate (a 64-sample hop) with a 4x denser sinc.
SETTINGS = [
    ("default", {}),
    ("kernel 251 (SincNet)", {"sinc_kernel_size": 251}),
    ("stride 4, pool 16", {"sinc_stride": 4, "sinc_pool": 16}),
    ("32 filters", {"sinc_filters": 32}),
    ("fixed filters (mel)", {"sinc_trainable": False}),
]


def front_end(cfg: Config) -> dict:
    """The front-end fields of a Config, plus the frame rate the LCNN body sees."""
    hop = cfg.sinc_stride * cfg.sinc_pool
    return {"filters": cfg.sinc_filters, "kernel": cfg.sinc_kernel_size,
            "stride": cfg.sinc_stride, "pool": cfg.sinc_pool,
            "frames_per_s": cfg.sample_rate / hop}


def train_setting(data_path: Path, run_dir: Path, cfg: Config, unseen: list[str]) -> dict:
    """Train and evaluate one setting; its speed, size and EERs."""
    from lcnn.detector import data
    from lcnn.detector.evaluate import evaluate
    from lcnn.detector.model import build_model, model_flops
    from lcnn.detector.train import train

    started = time.perf_counter()
    state = train(data_path, run_dir, cfg, overwrite=True, verbose=0)
    result = evaluate(run_dir, data_path, "testing")
    clips = len(data.load_split(data_path, "training", cfg, progress=False))
    model = build_model(cfg)
    by_attack = result.get("eer_by_attack", {})
    return {"seed": cfg.seed, "params": model.count_params(),
            "gflop_per_clip": model_flops(model, cfg) / 1e9,
            "train_clips_per_s": summary(epoch_speeds(run_dir, clips)),
            "epochs": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "val_eer": state["best_eer"], "test_eer": result["eer"],
            "unseen_eer": {a: by_attack[a] for a in unseen if a in by_attack},
            "eer_by_attack": by_attack, "seconds": time.perf_counter() - started}


def table(rows: list[dict], unseen: list[str]) -> str:
    """Markdown: one line per setting, EERs as mean over seeds (each seed in brackets)."""
    def pct(values):
        values = [100 * v for v in values]
        each = ", ".join(f"{v:.1f}" for v in values)
        return f"{np.mean(values):.1f}" + (f" ({each})" if len(values) > 1 else "")

    lines = ["| setting | filters x kernel | stride x pool | frames/s | params | "
             "GFLOP/clip | train clips/s | val EER % | testing EER % | "
             f"unseen ({', '.join(unseen) or '-'}) EER % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        fe, seeds = row["front_end"], row["runs"]
        speed = np.median([r["train_clips_per_s"]["median"] for r in seeds])
        unseen_eers = [np.mean(list(r["unseen_eer"].values())) for r in seeds if r["unseen_eer"]]
        lines.append(
            f"| {row['name']} | {fe['filters']} x {fe['kernel']} | {fe['stride']} x "
            f"{fe['pool']} | {fe['frames_per_s']:g} | {seeds[0]['params']:,} | "
            f"{seeds[0]['gflop_per_clip']:.3f} | {speed:.0f} | "
            f"{pct([r['val_eer'] for r in seeds])} | {pct([r['test_eer'] for r in seeds])} | "
            f"{pct(unseen_eers) if unseen_eers else '-'} |")
    return "\n".join(lines)


def main() -> None:
    import tensorflow as tf

    from lcnn.runtime import set_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[Config.seed],
                        help="one training per seed and setting (make ablation: 42 43)")
    parser.add_argument("--quick", action="store_true", help="2 epochs; checks the script only")
    args = parser.parse_args()
    set_threads(THREADS)
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")

    base = Config(threads=THREADS)
    if args.quick:
        base = dataclasses.replace(base, epochs=2)
    out_dir = ROOT / "runs" / ("ablation-quick" if args.quick else "ablation")
    unseen = unseen_attacks(args.data)
    started = time.perf_counter()
    rows = []
    for name, overrides in SETTINGS:
        cfg = dataclasses.replace(base, **overrides)
        seeds = []
        for seed in args.seeds:
            print(f"{name}, seed {seed} ({cfg.epochs} epochs) ...", flush=True)
            slug = name.split(" (")[0].replace(" ", "-").replace(",", "")
            seeds.append(train_setting(args.data, out_dir / f"{slug}-{seed}",
                                       dataclasses.replace(cfg, seed=seed), unseen))
        rows.append({"name": name, "overrides": overrides, "front_end": front_end(cfg),
                     "runs": seeds})
    result = {"command": " ".join(["python -m bench.ablation", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "tensorflow": tf.__version__, "threads": THREADS, "data": str(args.data),
              "config": dataclasses.asdict(base), "seeds": args.seeds, "unseen": unseen,
              "settings": rows, "seconds": time.perf_counter() - started}
    text = table(rows, unseen)
    print(text)
    print(f"\n{result['seconds']:.0f} s")
    if args.quick:
        atomic_write(out_dir / "ablation.json", json.dumps(result, indent=2) + "\n")
        return
    atomic_write(ROOT / "bench" / "ablation.json", json.dumps(result, indent=2) + "\n")
    header = (f"Latest run: `{result['command']}`, {result['date']}, {base.epochs} epochs "
              f"(early stopping patience {base.patience}), seeds {', '.join(map(str, args.seeds))}"
              f", {THREADS} threads, {result['seconds']:.0f} s. Testing: 120 clips (60 real), "
              "so one real clip moves an EER by about 1.7 points.")
    update_readme(ROOT / "bench" / "ablation.md", text, header)


if __name__ == "__main__":
    main()
