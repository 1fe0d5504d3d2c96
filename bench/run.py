"""The benchmark (`make bench`): training, inference, TFLite and data-pipeline speed, and targets.

Usage (from the repository root): python -m bench.run [--data data/demo] [--rounds 7] [--quick]

One process, 2 threads, on the demo corpus's 2-s clips at 16 kHz:

1. training speed (bench.measure.training_ratio): the default model and the baseline, each
   one compiled training step per batch on the same cached training batches, and TensorFlow's
   and numpy's float32 matmul, taking turns for `--rounds` rounds; the default / baseline ratio
   and the FLOP-rate fraction per round.
2. pipeline: one epoch of make_dataset decoding the files against the same from the cache.
3. training runs (lcnn.detector.train.train): the default model for the Config's epochs, then
   the default and the baseline for the same short number of epochs (`--compare_epochs`),
   once per seed (`--seeds`, three by default), for the EER comparison; EERs on `testing`.
4. export and inference: TFLite float32 and int8 EERs, int8 score error, the float EER's
   bootstrap CI; batch inference and single-clip latency (Keras, both TFLite files), in turns.

Writes bench/results.json and the results section of bench/README.md. `--quick` (2 epochs,
2 rounds of one batch, a 2048 matmul) is for checking the script; it writes
runs/bench-quick/results.json only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

from bench import measure, report
from bench.common import ROOT, THREADS, atomic_write
from lcnn.config import ORIGINAL_BASELINE, Config
from lcnn.dataset import unseen_attacks

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def trainings(data_path: Path, out_dir: Path, cfg: Config, compare_epochs: int,
              seeds: list[int]) -> dict:
    """The default model on its full schedule, then, for each seed, default and baseline for
    an equal short one (the baseline's full schedule alone would take longer than the whole
    benchmark may)."""
    short = dataclasses.replace(cfg, epochs=compare_epochs)
    plan = [("lcnn", "run0-lcnn", cfg)]
    for seed in seeds:
        for model, fields in (("lcnn", {}), ("baseline", ORIGINAL_BASELINE)):
            plan.append((short_run(model, compare_epochs, seed), f"short-{model}-{seed}",
                         dataclasses.replace(short, **fields, seed=seed)))
    runs = {}
    for name, folder, c in plan:
        print(f"training {name} ({c.model}, {c.epochs} epochs) ...", flush=True)
        runs[name] = measure.train_and_evaluate(data_path, out_dir / folder, c)
    return runs


def short_run(model: str, epochs: int, seed: int) -> str:
    """The name of a short comparison run in results.json's "runs"."""
    return f"{model}, {epochs} epochs, seed {seed}"


def comparison(runs: dict, compare_epochs: int, seeds: list[int]) -> dict:
    """Testing EERs of the short runs per model, in seed order, and their paired differences."""
    eers = {model: [runs[short_run(model, compare_epochs, s)]["test_eer"] for s in seeds]
            for model in ("lcnn", "baseline")}
    gain = [b - a for a, b in zip(eers["lcnn"], eers["baseline"], strict=True)]
    return {"epochs": compare_epochs, "seeds": seeds, **eers, "gain": gain}


def cpu_model() -> str:
    """The CPU's model name (Linux), so that runs on different machines are told apart."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                "unknown")


def run(data_path: Path, out_dir: Path, rounds: int, epochs: int | None, compare_epochs: int,
        batches: int | None, seeds: list[int]) -> dict:
    import tensorflow as tf

    from lcnn.runtime import set_threads

    tf.get_logger().setLevel("ERROR")  # retracing notices for the single-clip batch shape
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # Keras, on tf.data input
    set_threads(THREADS)
    cfg = Config(threads=THREADS)
    if epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    started = time.perf_counter()
    r: dict = {"command": "make bench (python -m bench.run)",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "tensorflow": tf.__version__, "threads": THREADS, "cpus": os.cpu_count(),
               "cpu_model": cpu_model(),
               "load_average_at_start": list(os.getloadavg()), "data": str(data_path),
               "config": dataclasses.asdict(cfg), "rounds": rounds}
    print(f"training speed: default vs baseline vs matmul, {rounds} rounds ...", flush=True)
    r["training_ratio"] = measure.training_ratio(
        data_path, cfg, rounds, warmup=1 if batches else 2, max_batches=batches,
        matmul_n=measure.MATMUL_N // 2 if batches else measure.MATMUL_N)
    print("data pipeline: files vs cache ...", flush=True)
    r["pipeline"] = measure.pipeline(data_path, cfg, rounds)
    r["runs"] = trainings(data_path, out_dir, cfg, compare_epochs, seeds)
    r["compare"] = comparison(r["runs"], compare_epochs, seeds)
    print("TFLite export, EER and latency ...", flush=True)
    lcnn_dir = out_dir / "run0-lcnn"
    clips, test_batches = measure.testing_batches(data_path, cfg)
    r["tflite"] = measure.tflite_fidelity(lcnn_dir, clips.labels, test_batches)
    r["inference"] = measure.inference(lcnn_dir, test_batches, r["tflite"], rounds)
    r["unseen_attacks"] = unseen_attacks(data_path)
    r["ratios"] = report.ratios(r)
    r["targets"] = report.check_targets(r["ratios"])
    r["load_average_at_end"] = list(os.getloadavg())
    r["seconds"] = time.perf_counter() - started
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--rounds", type=int, default=7,
                        help="rounds of the measurements taken in turns (make bench: 7)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the Config's)")
    parser.add_argument("--compare_epochs", type=int, default=6,
                        help="epochs of the equal short training of default and baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                        help="seeds of the short default-vs-baseline comparison")
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs, 2 rounds of one batch, one seed; checks the script only")
    args = parser.parse_args()
    quick = args.quick
    out_dir = ROOT / "runs" / ("bench-quick" if quick else "bench")
    r = run(args.data, out_dir, 2 if quick else args.rounds, 2 if quick else args.epochs,
            2 if quick else args.compare_epochs, 1 if quick else None,
            args.seeds[:1] if quick else args.seeds)
    table = report.results_table(r)
    print(table)
    print(f"\n{r['seconds']:.0f} s; load average {r['load_average_at_start'][0]:.1f} at start, "
          f"{r['load_average_at_end'][0]:.1f} at end")
    results = out_dir / "results.json" if quick else ROOT / "bench" / "results.json"
    atomic_write(results, json.dumps(r, indent=2) + "\n")
    if not quick:
        report.update_readme(ROOT / "bench" / "README.md", table, report.header(r))
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
