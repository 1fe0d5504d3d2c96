"""The benchmark (`make bench`): training, inference, TFLite and data-pipeline speed, and targets.

Usage: .venv/bin/python bench/run.py [--data data/demo] [--repeats 5] [--quick]

One process, one run, 2 threads, on the demo corpus's 2-s clips at 16 kHz:

1. peak: a large float32 matmul, the machine's attainable FLOP rate for TensorFlow.
2. pipeline: one epoch over the training split decoded from the audio files
   (lcnn.audio.load_audio in tf.data) against the same epoch from the decoded cache
   (lcnn.detector.data.make_dataset), both with the training augmentation, taking turns.
3. training (lcnn.detector.train.train: cached pipeline, the Config's batch size and settings): the
   default model for the Config's epochs, then the default model and the seed design for
   the same short number of epochs (`--compare_epochs`) with each of `--seeds`, which gives
   the seed's speed and the EER comparison as mean +- sd over the seeds (one training run
   says little: two seeds of one model differ by several points). Clips/s per epoch come
   from the runs' history (the first epoch, which builds the graph, excluded); EER on
   `testing` from lcnn.detector.evaluate.evaluate.
4. inference and export: batch inference of the trained default model, TFLite float32 and
   int8 export (lcnn.detector.export), their EER on `testing`, and single-clip latency of Keras and
   both TFLite files, taking turns, median after warm-up.

Writes bench/results.json and the results section of bench/README.md. `--quick` (2 epochs,
2 repeats) is for checking the script; it writes runs/bench-quick/results.json only.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lcnn.config import Config  # noqa: E402
from lcnn.detector import runs  # noqa: E402
from lcnn.io import atomic_write_text  # noqa: E402

THREADS = 2
MATMUL_N = 4096
LATENCY_WARMUP, LATENCY_ROUNDS = 10, 50
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"

# Targets: (key in results, comparison, threshold, what it means)
TARGETS = [
    ("train_speedup_vs_seed", ">=", 8.0, "training clips/s >= 8x the seed design's"),
    ("eer_gain_vs_seed_pp", ">", 0.0,
     "default model's testing EER beats the seed's (same short training)"),
    ("latency_ms_tflite_int8", "<=", 2.0, "int8 TFLite single-clip latency <= 2 ms"),
    ("int8_eer_delta_pp", "<=", 0.5, "int8 EER within 0.5 pp of the float model"),
    ("cache_speedup", ">=", 2.0, "cached epoch >= 2x faster than decoding files"),
    ("pipeline_headroom", ">", 1.0, "cached pipeline faster than training (never the bottleneck)"),
    ("flop_fraction", ">=", 0.40, "model training FLOP rate >= 40% of matmul peak"),
]


# ------------------------------------------------------------------ helpers


def summary(values) -> dict:
    """Median with the spread (min, max, quartiles) of repeated measurements."""
    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "min": float(v.min()), "max": float(v.max()),
            "q1": float(q1), "q3": float(q3), "n": int(v.size)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, calling them in turn so they share the CPU's mood."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


# ------------------------------------------------------------------ measurements


def peak_gflops(repeats: int) -> dict:
    """GFLOP/s of an N x N float32 matmul (2 N^3 FLOPs) in TensorFlow and in numpy's BLAS.

    The peak is the faster library's median: the best FLOP rate this machine shows here.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    b_np = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    a, b = tf.constant(a_np), tf.constant(b_np)

    @tf.function
    def tf_matmul():
        return tf.linalg.matmul(a, b)

    fns = {"tensorflow": lambda: tf_matmul().numpy(), "numpy": lambda: a_np @ b_np}
    times = interleaved(fns, max(repeats, 3), warmup=1)
    by_lib = {k: summary([2 * MATMUL_N**3 / t / 1e9 for t in v]) for k, v in times.items()}
    best = max(by_lib, key=lambda k: by_lib[k]["median"])
    return {**by_lib[best], "library": best, "matrix": MATMUL_N, "by_library": by_lib}


def uncached_dataset(files: list[Path], labels: np.ndarray, cfg: Config, seed: int):
    """The training pipeline without the cache: decode each file with load_audio every epoch.

    Same shuffling, random crop, batching and augmentation as
    lcnn.detector.data.make_dataset, so the comparison isolates the decoding cost.
    """
    import tensorflow as tf

    from lcnn.audio import fix_length, load_audio
    from lcnn.detector.data import augment

    rng = np.random.default_rng(seed)
    paths = np.array([str(f) for f in files])

    def decode(path: bytes) -> np.ndarray:
        x = load_audio(path.decode(), cfg.sample_rate)
        return fix_length(x, cfg.n_samples, "random", rng).astype(np.float32)

    def load(path, label):
        x = tf.numpy_function(decode, [path], tf.float32, stateful=True)
        x.set_shape([cfg.n_samples])
        return x, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels.astype(np.float32)))
    ds = ds.shuffle(len(files), seed=seed).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds.batch(cfg.batch_size), seeds))
    ds = ds.map(lambda b, s: (augment(b[0], cfg, s), b[1]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def pipeline(data_path: Path, cfg: Config, repeats: int) -> dict:
    """Seconds per training epoch from the audio files vs from the decoded cache (no model)."""
    from lcnn.dataset import list_files
    from lcnn.detector import data

    files, labels = list_files(data_path, "training")
    clips = data.load_split(data_path, "training", cfg, progress=False)
    cached = data.make_dataset(clips, cfg, training=True)
    uncached = uncached_dataset(files, labels, cfg, cfg.seed)

    def epoch(ds):
        return lambda: sum(int(x.shape[0]) for x, _ in ds)

    # Without augmentation: decoding vs reading the cache, nothing else.
    plain = dataclasses.replace(cfg, augment_noise=False, augment_shift=False,
                                augment_gain=False)
    fns = {"uncached": epoch(uncached), "cached": epoch(cached),
           "decode_only": epoch(uncached_dataset(files, labels, plain, cfg.seed)),
           "cache_only": epoch(data.make_dataset(clips, plain, training=True))}
    times = interleaved(fns, repeats)
    return {"clips": len(clips), "uncached_epoch_s": summary(times["uncached"]),
            "cached_epoch_s": summary(times["cached"]),
            "decode_only_epoch_s": summary(times["decode_only"]),
            "cache_only_epoch_s": summary(times["cache_only"]),
            "pipeline_clips_per_s": summary([len(clips) / t for t in times["cached"]])}


def epoch_speeds(run_dir: Path, clips: int) -> list[float]:
    """Training clips/s of each epoch of a run, from its history.

    The first epoch also builds and compiles the training graph, so it is left out when
    there are later ones.
    """
    history = runs.read_history(run_dir / runs.HISTORY)
    later = [row for row in history if row["epoch"] > 1] or history
    return [clips / row["seconds"] for row in later]


def train_and_evaluate(data_path: Path, run_dir: Path, cfg: Config) -> dict:
    """Train cfg.model as `python -m lcnn train` does, then evaluate it on `testing`."""
    from lcnn.detector import data
    from lcnn.detector.evaluate import evaluate
    from lcnn.detector.train import train

    state = train(data_path, run_dir, cfg, overwrite=True, verbose=0)
    clips = len(data.load_split(data_path, "training", cfg, progress=False))
    speeds = epoch_speeds(run_dir, clips)
    result = evaluate(run_dir, data_path, "testing")
    return {"epochs": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "val_eer": state["best_eer"], "epoch_clips_per_s": speeds,
            "train_clips_per_s": summary(speeds),
            "test_eer": result["eer"], "eer_by_attack": result.get("eer_by_attack", {})}


def testing_batches(data_path: Path, cfg: Config) -> tuple:
    """The testing split (clips with labels) and its batches as numpy, loaded once."""
    from lcnn.detector import data

    clips = data.load_split(data_path, "testing", cfg, progress=False)
    return clips, [x.numpy() for x, _ in data.make_dataset(clips, cfg, training=False)]


def tflite_eers(run_dir: Path, labels: np.ndarray, batches: list[np.ndarray]) -> dict:
    """Export float32 and int8 TFLite files; their sizes, EER on `testing`, and how far the
    int8 scores are from the float32 ones (EER alone moves in steps of one clip)."""
    from lcnn.detector.export import export_tflite, tflite_scorer
    from lcnn.metrics import compute_eer

    out, scores = {}, {}
    for name, int8 in (("fp32", False), ("int8", True)):
        path = export_tflite(run_dir, int8=int8)
        score = tflite_scorer(path, threads=THREADS)
        scores[name] = np.concatenate([score(x) for x in batches])
        out[name] = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                     "bytes": path.stat().st_size,
                     "test_eer": compute_eer(labels, scores[name])[0]}
    error = np.abs(scores["int8"] - scores["fp32"])
    out["int8"]["score_error"] = {"median": float(np.median(error)), "max": float(error.max())}
    return out


def inference(run_dir: Path, batches: list[np.ndarray], tflite: dict, repeats: int) -> dict:
    """Batch inference clips/s of the Keras model; single-clip latency of Keras and TFLite."""
    from lcnn.detector.export import tflite_scorer

    model = runs.load_model(run_dir)
    n = sum(len(x) for x in batches)
    times = interleaved({"batch": lambda: [model.predict_on_batch(x) for x in batches]}, repeats)

    one = batches[0][:1]
    scorers = {"keras": lambda: model.predict_on_batch(one)}
    for name, info in tflite.items():
        score = tflite_scorer(ROOT / info["path"], threads=THREADS)
        scorers[f"tflite_{name}"] = lambda s=score: s(one)
    latency = interleaved(scorers, LATENCY_ROUNDS, warmup=LATENCY_WARMUP)
    return {"infer_clips_per_s": summary([n / t for t in times["batch"]]),
            **{f"latency_ms_{k}": summary(1000 * np.asarray(v)) for k, v in latency.items()}}


# ------------------------------------------------------------------ report


def ratios(r: dict) -> dict:
    """The numbers the targets are checked on."""
    med = {k: v["median"] for k, v in r.items() if isinstance(v, dict) and "median" in v}
    return {
        "train_speedup_vs_seed": med["train_clips_per_s"] / med["seed_train_clips_per_s"],
        "train_speedup_vs_seed_fastest": r["train_clips_per_s"]["max"]
        / r["seed_train_clips_per_s"]["max"],
        "eer_gain_vs_seed_pp": 100 * (r["compare"]["seed"] - r["compare"]["lcnn"]),
        "int8_eer_delta_pp": 100 * abs(r["tflite"]["int8"]["test_eer"]
                                       - r["tflite"]["fp32"]["test_eer"]),
        "cache_speedup": med["uncached_epoch_s"] / med["cached_epoch_s"],
        "pipeline_headroom": med["pipeline_clips_per_s"] / med["train_clips_per_s"],
        "flop_fraction": med["model_gflops"] / med["peak_gflops"],
        # Not a target: the same rate against TensorFlow's own matmul, the kernels it runs on.
        "flop_fraction_of_tf_matmul": med["model_gflops"]
        / r["peak_gflops"]["by_library"]["tensorflow"]["median"],
        "cache_speedup_no_augmentation": med["decode_only_epoch_s"] / med["cache_only_epoch_s"],
        "latency_ms_tflite_int8": med["latency_ms_tflite_int8"],
    }


def check_targets(ratio: dict) -> list[dict]:
    ops = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal}
    rows = []
    for key, op, threshold, text in TARGETS:
        value = ratio[key] if key in ratio else None
        rows.append({"target": text, "key": key, "value": value, "threshold": threshold,
                     "op": op, "pass": bool(value is not None and ops[op](value, threshold))})
    return rows


def mean_sd(name: str, values: list[float]) -> dict:
    """{name: mean, name_sd: sample sd (0 for one value), name_each: values}."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {name: float(np.mean(values)), f"{name}_sd": sd, f"{name}_each": list(values)}


def fmt(v: dict, digits: int = 1) -> tuple[str, str]:
    return f"{v['median']:.{digits}f}", f"{v['min']:.{digits}f} - {v['max']:.{digits}f}"


def results_table(r: dict) -> str:
    """Markdown tables: measurements (median, min - max), EERs, targets."""
    rows = [
        ("train_clips_per_s", "training, default model (clips/s)", 1),
        ("seed_train_clips_per_s", "training, seed design (clips/s)", 1),
        ("infer_clips_per_s", "batch inference, default model (clips/s)", 1),
        ("latency_ms_keras", "single clip, Keras (ms)", 2),
        ("latency_ms_tflite_fp32", "single clip, TFLite float32 (ms)", 2),
        ("latency_ms_tflite_int8", "single clip, TFLite int8 (ms)", 2),
        ("uncached_epoch_s", "epoch decoding the files, pipeline only (s)", 3),
        ("cached_epoch_s", "epoch from the cache, pipeline only (s)", 3),
        ("decode_only_epoch_s", "same, decoding the files, no augmentation (s)", 3),
        ("cache_only_epoch_s", "same, from the cache, no augmentation (s)", 3),
        ("pipeline_clips_per_s", "cached pipeline alone (clips/s)", 0),
        ("peak_gflops", "float32 matmul peak, faster of TF / numpy (GFLOP/s)", 1),
        ("model_gflops", "default model training FLOP rate (GFLOP/s)", 1),
    ]
    lines = ["| measurement | median | min - max |", "|---|---|---|"]
    for key, text, digits in rows:
        med, spread = fmt(r[key], digits)
        lines.append(f"| {text} | {med} | {spread} |")
    med, spread = fmt(r["peak_gflops"]["by_library"]["tensorflow"])
    lines.append(f"| float32 matmul in TensorFlow alone (GFLOP/s) | {med} | {spread} |")
    lines.append(f"| TFLite int8 file (bytes) | {r['tflite_int8_bytes']:,} | |")
    error = r["tflite"]["int8"]["score_error"]
    lines.append(f"| TFLite int8 score - float32 score, absolute, on testing | "
                 f"{error['median']:.4f} | max {error['max']:.4f} |")
    lines += ["", "| training run | params | GFLOP/clip (training) | clips/s | epochs (best) | "
              "val EER | "
              "testing EER | unseen attack EER |", "|---|---|---|---|---|---|---|---|"]
    for name, run in r["runs"].items():
        unseen = ", ".join(f"{a} {100 * run['eer_by_attack'][a]:.1f}%"
                           for a in r["unseen_attacks"] if a in run["eer_by_attack"]) or "-"
        lines.append(f"| {name} | {run['params']:,} | {run['gflop_per_clip']:.3f} | "
                     f"{run['train_clips_per_s']['median']:.1f} | "
                     f"{run['epochs']} ({run['best_epoch']}) | {100 * run['val_eer']:.1f}% | "
                     f"{100 * run['test_eer']:.1f}% | {unseen} |")
    for name, info in r["tflite"].items():
        lines.append(f"| lcnn, TFLite {name} | | | | | | {100 * info['test_eer']:.1f}% | |")
    c = r["compare"]
    lines += ["", f"Testing EER after {c['epochs']} epochs, mean ± sample sd over seeds "
              f"{', '.join(map(str, c['seeds']))}: default "
              f"{100 * c['lcnn']:.1f} ± {100 * c['lcnn_sd']:.1f}%, seed design "
              f"{100 * c['seed']:.1f} ± {100 * c['seed_sd']:.1f}%."]
    lines += ["", "| target | value | pass |", "|---|---|---|"]
    for t in r["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"| {t['target']} ({t['key']} {t['op']} {t['threshold']:g}) | {value} | "
                     f"{'yes' if t['pass'] else '**no**'} |")
    return "\n".join(lines)


def update_readme(path: Path, table: str, header: str) -> None:
    """Replace the text between the results markers of bench/README.md."""
    text = path.read_text() if path.exists() else f"{README_START}\n{README_END}\n"
    if README_START not in text or README_END not in text:
        text += f"\n{README_START}\n{README_END}\n"
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    atomic_write(path, f"{before}{README_START}\n{header}\n\n{table}\n{README_END}{after}")


# ------------------------------------------------------------------ main


def run(data_path: Path, out_dir: Path, repeats: int, epochs: int | None,
        compare_epochs: int, seeds: list[int]) -> dict:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices for the single-clip batch shape
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # Keras, on tf.data input

    from lcnn.detector.model import build_model, model_flops
    from lcnn.runtime import set_threads

    set_threads(THREADS)
    cfg = Config(threads=THREADS)
    if epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    started = time.perf_counter()
    r: dict = {"command": "make bench (.venv/bin/python bench/run.py)",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "tensorflow": tf.__version__, "threads": THREADS, "cpus": os.cpu_count(),
               "load_average_at_start": list(os.getloadavg()), "data": str(data_path),
               "config": dataclasses.asdict(cfg), "repeats": repeats}

    print("peak matmul ...", flush=True)
    r["peak_gflops"] = peak_gflops(repeats)
    print("data pipeline: files vs cache ...", flush=True)
    r.update(pipeline(data_path, cfg, repeats))
    # The default model trained as the course trains it (exported, timed, FLOP rate), then
    # the default and the seed design both trained a short, equal number of epochs: the
    # seed's full schedule alone would take longer than the whole benchmark may.
    short = dataclasses.replace(cfg, epochs=compare_epochs)
    trainings = [("lcnn", cfg)]
    for seed in seeds:
        trainings += [(f"lcnn, {compare_epochs} epochs, seed {seed}",
                       dataclasses.replace(short, seed=seed)),
                      (f"seed design, {compare_epochs} epochs, seed {seed}",
                       dataclasses.replace(short, model="seed", seed=seed))]
    r["runs"] = {}
    for i, (name, c) in enumerate(trainings):
        print(f"training {name} ({c.model}, {c.epochs} epochs) ...", flush=True)
        run_info = train_and_evaluate(data_path, out_dir / f"run{i}-{c.model}-{c.epochs}", c)
        model = build_model(c)
        run_info.update(model=c.model, seed=c.seed, params=model.count_params(),
                        gflop_per_clip=model_flops(model, c) / 1e9)
        r["runs"][name] = run_info
    full, *short_runs = r["runs"].values()
    lcnn_short, seed_short = short_runs[0::2], short_runs[1::2]
    r["compare"] = {"epochs": compare_epochs, "seeds": seeds,
                    **mean_sd("lcnn", [s["test_eer"] for s in lcnn_short]),
                    **mean_sd("seed", [s["test_eer"] for s in seed_short])}
    r["train_clips_per_s"] = full["train_clips_per_s"]
    r["seed_train_clips_per_s"] = summary(
        [v for s in seed_short for v in s["epoch_clips_per_s"]])
    gflop = full["gflop_per_clip"]
    r["model_gflops"] = summary(np.asarray(full["epoch_clips_per_s"]) * gflop)
    lcnn_dir = out_dir / f"run0-{cfg.model}-{cfg.epochs}"
    print("TFLite export and EER ...", flush=True)
    clips, batches = testing_batches(data_path, cfg)
    r["tflite"] = tflite_eers(lcnn_dir, clips.labels, batches)
    r["tflite_int8_bytes"] = r["tflite"]["int8"]["bytes"]
    r["tflite_fp32_bytes"] = r["tflite"]["fp32"]["bytes"]
    print("inference and latency ...", flush=True)
    r.update(inference(lcnn_dir, batches, r["tflite"], repeats))
    r["unseen_attacks"] = unseen_attacks(data_path)
    r["ratios"] = ratios(r)
    r["targets"] = check_targets(r["ratios"])
    r["load_average_at_end"] = list(os.getloadavg())
    r["seconds"] = time.perf_counter() - started
    return r


def unseen_attacks(data_path: Path) -> list[str]:
    """Attack families found in `testing` but not in `training` (from metadata.csv)."""
    from lcnn.dataset import open_source

    source = open_source(data_path)
    found = {split: set(source.listing(split).meta.get("attack", []))
             for split in ("training", "testing")}
    return sorted(found["testing"] - found["training"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, help="training epochs (default: the Config's)")
    parser.add_argument("--compare_epochs", type=int, default=6,
                        help="epochs of the equal short training of default and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                        help="seeds of the short default-vs-seed-design trainings")
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs, 2 repeats, first seed only; check only")
    args = parser.parse_args()
    quick = args.quick
    out_dir = ROOT / "runs" / ("bench-quick" if quick else "bench")
    r = run(args.data, out_dir, 2 if quick else args.repeats, 2 if quick else args.epochs,
            2 if quick else args.compare_epochs, args.seeds[:1] if quick else args.seeds)
    table = results_table(r)
    print(table)
    print(f"\n{r['seconds']:.0f} s; load average {r['load_average_at_start'][0]:.1f} at start, "
          f"{r['load_average_at_end'][0]:.1f} at end")
    results = out_dir / "results.json" if quick else ROOT / "bench" / "results.json"
    atomic_write(results, json.dumps(r, indent=2) + "\n")
    if not quick:
        header = (f"Latest run: `{r['command']}`, {r['date']}, TensorFlow {r['tensorflow']}, "
                  f"{r['threads']} threads on {r['cpus']} CPUs, load average "
                  f"{r['load_average_at_start'][0]:.1f} at start / "
                  f"{r['load_average_at_end'][0]:.1f} at end, {r['seconds']:.0f} s. "
                  f"Medians of {r['repeats']} repeats (training: epochs after the first).")
        update_readme(ROOT / "bench" / "README.md", table, header)
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
