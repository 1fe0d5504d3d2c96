"""The benchmark's report: target checks and markdown tables from a results dict, and the
generated section of bench/README.md. Pure functions of the results (no measuring)."""

from __future__ import annotations

import operator
import statistics
from pathlib import Path

from bench.common import atomic_write

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"

# (key in ratios(), comparison, threshold, what it means)
TARGETS = [
    ("train_speedup_vs_baseline", ">=", 8.0,
     "training clips/s >= 8x the baseline's (same batches, compiled step, in turns)"),
    ("train_clips_per_s", ">=", 300.0, "training >= 300 clips/s (compiled step)"),
    ("flop_fraction_of_tf_matmul", ">=", 0.40,
     "training FLOP rate >= 40% of TensorFlow's float32 matmul, same rounds"),
    ("int8_score_error_median", "<=", 0.005,
     "median abs(int8 - float32 score) on testing <= 0.005"),
    ("int8_eer_outside_float_ci_pp", "<=", 0.0,
     "int8 EER inside the float32 EER's 95% bootstrap CI (points outside)"),
    ("latency_ms_tflite_int8", "<=", 2.0, "int8 TFLite single-clip latency <= 2 ms"),
    ("cache_speedup", ">=", 2.0, "cached epoch >= 2x faster than decoding files"),
    ("pipeline_headroom", ">", 1.0, "cached pipeline faster than training (never the bottleneck)"),
    ("eer_gain_vs_baseline_pp", ">", 0.0,
     "default model's testing EER beats the baseline's (same short training; mean of the "
     "paired differences over the seeds)"),
]
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le}


def ratios(r: dict) -> dict:
    """The numbers the targets are checked on (medians over rounds where measured in turns)."""
    tr, fp32 = r["training_ratio"], r["tflite"]["fp32"]
    low, high = fp32["test_eer_ci95"]
    int8_eer = r["tflite"]["int8"]["test_eer"]
    return {
        "train_speedup_vs_baseline": tr["speedup_vs_baseline"]["median"],
        "train_clips_per_s": tr["clips_per_s"]["lcnn"]["median"],
        "flop_fraction_of_tf_matmul": tr["flop_fraction_of_tf_matmul"]["median"],
        "int8_score_error_median": r["tflite"]["int8"]["score_error"]["median"],
        "int8_eer_outside_float_ci_pp": 100 * max(0.0, low - int8_eer, int8_eer - high),
        "latency_ms_tflite_int8": r["inference"]["latency_ms_tflite_int8"]["median"],
        "cache_speedup": r["pipeline"]["cache_speedup"]["median"],
        "pipeline_headroom": r["pipeline"]["pipeline_clips_per_s"]["median"]
        / tr["clips_per_s"]["lcnn"]["median"],
        "eer_gain_vs_baseline_pp": 100 * statistics.mean(r["compare"]["gain"]),
        # Not targets: the same FLOP rate against numpy's BLAS, the cache without augmentation.
        "flop_fraction_of_numpy_matmul": tr["flop_fraction_of_numpy_matmul"]["median"],
        "cache_speedup_no_augmentation": r["pipeline"]["cache_speedup_no_augmentation"]["median"],
    }


def check_targets(ratio: dict) -> list[dict]:
    """One row per target: its value, threshold and whether it passes (missing value: fails)."""
    rows = []
    for key, op, threshold, text in TARGETS:
        value = ratio.get(key)
        rows.append({"target": text, "key": key, "value": value, "threshold": threshold,
                     "op": op, "pass": value is not None and bool(OPS[op](value, threshold))})
    return rows


def spread_cells(s: dict, digits: int) -> list[str]:
    """Median, min - max and interquartile range of a summary, as table cells."""
    f = f"{{:.{digits}f}}"
    return [f.format(s["median"]), f"{f.format(s['min'])} - {f.format(s['max'])}",
            f"{f.format(s['q1'])} - {f.format(s['q3'])}"]


def measurements(r: dict) -> list[tuple[str, dict, int]]:
    """(label, summary, digits) for each measured quantity of a results dict."""
    tr, pipe, inf = r["training_ratio"], r["pipeline"], r["inference"]
    return [
        ("**training speed, default / baseline (ratio per round)**", tr["speedup_vs_baseline"], 2),
        ("training, default model, compiled step (clips/s)", tr["clips_per_s"]["lcnn"], 1),
        ("training, baseline, compiled step (clips/s)", tr["clips_per_s"]["baseline"], 1),
        ("training, default model, whole fit epochs (clips/s)",
         r["runs"]["lcnn"]["train_clips_per_s"], 1),
        ("default model training FLOP rate (GFLOP/s)", tr["model_gflops"], 1),
        ("float32 matmul, TensorFlow (GFLOP/s)", tr["matmul_gflops"]["matmul_tensorflow"], 1),
        ("float32 matmul, numpy (GFLOP/s)", tr["matmul_gflops"]["matmul_numpy"], 1),
        ("FLOP rate / TensorFlow matmul (ratio per round)", tr["flop_fraction_of_tf_matmul"], 2),
        ("batch inference, default model (clips/s)", inf["infer_clips_per_s"], 1),
        ("single clip, Keras (ms)", inf["latency_ms_keras"], 2),
        ("single clip, TFLite float32 (ms)", inf["latency_ms_tflite_fp32"], 2),
        ("single clip, TFLite int8 (ms)", inf["latency_ms_tflite_int8"], 2),
        ("epoch decoding the files, pipeline only (s)", pipe["uncached_epoch_s"], 3),
        ("epoch from the cache, pipeline only (s)", pipe["cached_epoch_s"], 3),
        ("cache speed-up (ratio per round)", pipe["cache_speedup"], 2),
        ("same, no augmentation (ratio per round)", pipe["cache_speedup_no_augmentation"], 2),
        ("cached pipeline alone (clips/s)", pipe["pipeline_clips_per_s"], 0),
    ]


def results_table(r: dict) -> str:
    """Markdown tables: measurements (median, min - max, IQR), EERs, targets."""
    tr = r["training_ratio"]
    lines = [f"Training speeds: {tr['rounds']} rounds, each one pass of {tr['clips_per_pass']} "
             f"clips (batch {tr['batch_size']}) per model and one {tr['matrix']}^2 matmul per "
             "library. "
             "Ratios per round: "
             + ", ".join(f"{x:.2f}" for x in tr["speedup_vs_baseline"]["each"]) + ".", "",
             "| measurement | median | min - max | IQR |", "|---|---|---|---|"]
    for text, s, digits in measurements(r):
        lines.append("| " + " | ".join([text, *spread_cells(s, digits)]) + " |")
    int8, fp32 = r["tflite"]["int8"], r["tflite"]["fp32"]
    error = int8["score_error"]
    lines.append(f"| TFLite int8 score - float32 score, absolute, on testing | "
                 f"{error['median']:.4f} | max {error['max']:.4f} | |")
    lines.append(f"| TFLite int8 / float32 file (bytes) | {int8['bytes']:,} / {fp32['bytes']:,} "
                 "| | |")
    lines += ["", "| training run | params | GFLOP/clip (training) | fit epochs clips/s | "
              "epochs (best) | val EER | testing EER | unseen attack EER |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in r["runs"].items():
        unseen = ", ".join(f"{a} {100 * run['eer_by_attack'][a]:.1f}%"
                           for a in r["unseen_attacks"] if a in run["eer_by_attack"]) or "-"
        lines.append(f"| {name} | {run['params']:,} | {run['gflop_per_clip']:.3f} | "
                     f"{run['train_clips_per_s']['median']:.1f} | "
                     f"{run['epochs']} ({run['best_epoch']}) | {100 * run['val_eer']:.1f}% | "
                     f"{100 * run['test_eer']:.1f}% | {unseen} |")
    low, high = fp32["test_eer_ci95"]
    lines.append(f"| lcnn, TFLite fp32 | | | | | | {100 * fp32['test_eer']:.1f}% "
                 f"(95% CI {100 * low:.1f} - {100 * high:.1f}) | |")
    lines.append(f"| lcnn, TFLite int8 | | | | | | {100 * int8['test_eer']:.1f}% | |")
    lines += ["", comparison_line(r["compare"])]
    lines += ["", "| target | value | pass |", "|---|---|---|"]
    for t in r["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"| {t['target']} ({t['key']} {t['op']} {t['threshold']:g}) | {value} | "
                     f"{'yes' if t['pass'] else '**no**'} |")
    return "\n".join(lines)


def comparison_line(c: dict) -> str:
    """Default vs baseline after the same short training: mean +- sd over seeds, and each."""
    def pct(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        each = ", ".join(f"{100 * v:.1f}" for v in values)
        return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f} % ({each})"

    return (f"Default vs baseline, {c['epochs']} epochs each, seeds "
            f"{', '.join(map(str, c['seeds']))}: testing EER {pct(c['lcnn'])} against "
            f"{pct(c['baseline'])}; baseline minus default, paired by seed: {pct(c['gain'])}.")


def header(r: dict) -> str:
    """One line saying which run the tables come from."""
    return (f"Latest run: `{r['command']}`, {r['date']}, TensorFlow {r['tensorflow']}, "
            f"{r['threads']} threads on {r['cpus']} CPUs ({r.get('cpu_model', 'unknown')}), "
            "load average "
            f"{r['load_average_at_start'][0]:.1f} at start / "
            f"{r['load_average_at_end'][0]:.1f} at end, {r['seconds']:.0f} s.")


def replace_section(text: str, table: str, head: str) -> str:
    """text with everything between the results markers replaced by head and table (markers
    appended at the end if missing)."""
    if README_START not in text or README_END not in text:
        text += f"\n{README_START}\n{README_END}\n"
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    return f"{before}{README_START}\n{head}\n\n{table}\n{README_END}{after}"


def update_readme(path: Path, table: str, head: str) -> None:
    """Replace the generated section of a markdown file (bench/README.md, bench/ablation.md)."""
    text = path.read_text() if path.exists() else ""
    atomic_write(path, replace_section(text, table, head))
