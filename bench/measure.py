"""The benchmark's measurements: each function times or scores one thing and returns numbers.

Speeds that are compared are measured in turns (bench.common.interleaved) in one process, so
that both sides of a ratio see the same background load; results are summaries (median,
min - max, quartiles) and, for ratios, the ratio of each round.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import (
    THREADS,
    epoch_speeds,
    interleaved,
    round_ratios,
    summary,
)
from lcnn.config import ORIGINAL_BASELINE, Config

MATMUL_N = 4096
LATENCY_WARMUP, LATENCY_ROUNDS = 10, 50


# ------------------------------------------------------------------ training speed


def matmuls(n: int = MATMUL_N) -> tuple[dict, float]:
    """Callables multiplying two n x n float32 matrices in TensorFlow and in numpy's BLAS, and
    the FLOPs of one call (2 n^3)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n), dtype=np.float32)
    b_np = rng.standard_normal((n, n), dtype=np.float32)
    a, b = tf.constant(a_np), tf.constant(b_np)

    @tf.function
    def tf_matmul():
        return tf.linalg.matmul(a, b)

    return ({"matmul_tensorflow": lambda: tf_matmul().numpy(),
             "matmul_numpy": lambda: a_np @ b_np}, 2.0 * n**3)


def training_batches(data_path: Path, cfg: Config) -> tuple[list, dict | None]:
    """One epoch of the training split as numpy batches from lcnn.detector.data.make_dataset
    (cached clips, random crops, augmentation), full batches only, and the class weights
    training uses."""
    from lcnn.detector import data

    clips = data.load_split(data_path, "training", cfg, progress=False)
    batches = [(x.numpy(), y.numpy()) for x, y in data.make_dataset(clips, cfg, training=True)]
    batches = [(x, y) for x, y in batches if len(x) == cfg.batch_size]
    if not batches:
        raise SystemExit(f"{data_path}: fewer training clips than one batch of {cfg.batch_size}")
    weights = data.class_weights(clips.labels) if cfg.class_weights else None
    return batches, weights


def compiled_pass(cfg: Config, batches: list, weights: dict | None):
    """A callable running one compiled training step (train_on_batch, compiled as
    lcnn.detector.train compiles) on each batch: one epoch without the input pipeline."""
    from lcnn.detector.model import build_model
    from lcnn.detector.train import compile_model

    model = build_model(cfg)
    compile_model(model, cfg, steps_per_epoch=len(batches))

    def epoch():
        for x, y in batches:
            model.train_on_batch(x, y, class_weight=weights)

    return model, epoch


def training_ratio(data_path: Path, cfg: Config, rounds: int, warmup: int = 2,
                   max_batches: int | None = None, matmul_n: int = MATMUL_N) -> dict:
    """The default model (cfg) against the baseline (cfg with model="baseline") and TensorFlow's
    own matmul, in turns: the same cached batches, batch size and compiled step for both models.

    Per round: each model's clips/s over one pass of the batches, the default / baseline ratio,
    and the default's training FLOP rate as a fraction of the matmul's, measured in that round.
    The first `warmup` passes (graph building, memory allocation) are not timed.
    `max_batches` and a smaller `matmul_n` shorten each round (for --quick).
    """
    from lcnn.detector.model import model_flops

    batches, weights = training_batches(data_path, cfg)
    batches = batches[:max_batches]
    clips = len(batches) * cfg.batch_size
    models, fns = {}, {}
    for name, c in (("lcnn", cfg), ("baseline", dataclasses.replace(cfg, **ORIGINAL_BASELINE))):
        models[name], fns[name] = compiled_pass(c, batches, weights)
    mm, mm_flops = matmuls(matmul_n)
    times = interleaved({**fns, **mm}, rounds, warmup=warmup)
    speed = {k: [clips / t for t in times[k]] for k in fns}
    gflop = {k: model_flops(models[k], cfg) / 1e9 for k in models}
    lcnn_gflops = [s * gflop["lcnn"] for s in speed["lcnn"]]
    matmul_gflops = {k: [mm_flops / 1e9 / t for t in times[k]] for k in mm}
    return {
        "clips_per_pass": clips, "batch_size": cfg.batch_size, "rounds": rounds,
        "matrix": matmul_n,
        "gflop_per_clip": gflop,
        "clips_per_s": {k: {**summary(v), "each": v} for k, v in speed.items()},
        "speedup_vs_baseline": round_ratios(speed["lcnn"], speed["baseline"]),
        "model_gflops": summary(lcnn_gflops),
        "matmul_gflops": {k: summary(v) for k, v in matmul_gflops.items()},
        "flop_fraction_of_tf_matmul": round_ratios(lcnn_gflops,
                                                   matmul_gflops["matmul_tensorflow"]),
        "flop_fraction_of_numpy_matmul": round_ratios(lcnn_gflops,
                                                      matmul_gflops["matmul_numpy"]),
    }


# ------------------------------------------------------------------ data pipeline


class DecodedOnRead:
    """Stands in for `Clips.audio` (int16 rows, zero-padded to a width): each row is decoded
    from its file when read, by the function that fills the cache (`data._decode`: load_audio,
    centre crop of long files, int16), two files at a time as the cache build does."""

    def __init__(self, files: list[Path], width: int, cfg: Config):
        self.files, self.shape = files, (len(files), width)
        self.sample_rate, self.max_len = cfg.sample_rate, cfg.n_samples + cfg.n_samples // 2
        self.pool = ThreadPoolExecutor(max_workers=2)

    def _decode(self, i: int) -> np.ndarray:
        from lcnn.detector.data import _decode

        clip, reason = _decode(self.files[i], self.sample_rate, self.max_len)
        if clip is None:
            raise SystemExit(f"{self.files[i]}: {reason}")
        return clip

    def __getitem__(self, index) -> np.ndarray:
        out = np.zeros((len(index), self.shape[1]), dtype=np.int16)
        for row, clip in zip(out, self.pool.map(self._decode, index), strict=True):
            row[: len(clip)] = clip
        return out


def uncached_dataset(clips, cfg: Config):
    """The training pipeline with the cache replaced by decoding: `make_dataset` itself, on the
    same clips, except that its rows come from DecodedOnRead instead of the int16 cache.

    Everything else is make_dataset's own code with its own random semantics: shuffle,
    batching, random crops, augmentation and their seeds. The only difference is where the
    int16 rows come from (files decoded on every read instead of the memory-mapped cache).
    """
    from lcnn.detector import data

    audio = DecodedOnRead(clips.files, clips.audio.shape[1], cfg)
    return data.make_dataset(dataclasses.replace(clips, audio=audio), cfg, training=True)


def pipeline(data_path: Path, cfg: Config, repeats: int) -> dict:
    """Seconds per training epoch from the audio files vs from the decoded cache (no model),
    with and without augmentation, in turns."""
    from lcnn.detector import data

    clips = data.load_split(data_path, "training", cfg, progress=False)

    def epoch(ds):
        return lambda: sum(int(x.shape[0]) for x, _ in ds)

    plain = dataclasses.replace(cfg, augment_noise=False, augment_shift=False,
                                augment_gain=False)
    fns = {"uncached": epoch(uncached_dataset(clips, cfg)),
           "cached": epoch(data.make_dataset(clips, cfg, training=True)),
           "decode_only": epoch(uncached_dataset(clips, plain)),
           "cache_only": epoch(data.make_dataset(clips, plain, training=True))}
    times = interleaved(fns, repeats)
    return {"clips": len(clips), **{f"{k}_epoch_s": summary(v) for k, v in times.items()},
            "cache_speedup": round_ratios(times["uncached"], times["cached"]),
            "cache_speedup_no_augmentation": round_ratios(times["decode_only"],
                                                          times["cache_only"]),
            "pipeline_clips_per_s": summary([len(clips) / t for t in times["cached"]])}


# ------------------------------------------------------------------ training runs, EER


def train_and_evaluate(data_path: Path, run_dir: Path, cfg: Config) -> dict:
    """Train cfg.model as `python -m lcnn train` does, then evaluate it on `testing`.

    Clips/s here are whole fit epochs from the run's history (the input pipeline included,
    validation excluded), not the compiled step alone that training_ratio times.
    """
    from lcnn.detector import data
    from lcnn.detector.evaluate import evaluate
    from lcnn.detector.model import build_model, model_flops
    from lcnn.detector.train import train

    state = train(data_path, run_dir, cfg, overwrite=True, verbose=0)
    clips = len(data.load_split(data_path, "training", cfg, progress=False))
    speeds = epoch_speeds(run_dir, clips)
    result = evaluate(run_dir, data_path, "testing")
    model = build_model(cfg)
    return {"model": cfg.model, "params": model.count_params(),
            "gflop_per_clip": model_flops(model, cfg) / 1e9,
            "epochs": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "val_eer": state["best_eer"], "epoch_clips_per_s": speeds,
            "train_clips_per_s": summary(speeds),
            "test_eer": result["eer"], "eer_by_attack": result.get("eer_by_attack", {})}


def testing_batches(data_path: Path, cfg: Config) -> tuple:
    """The testing split (clips with labels) and its batches as numpy, loaded once."""
    from lcnn.detector import data

    clips = data.load_split(data_path, "testing", cfg, progress=False)
    return clips, [x.numpy() for x, _ in data.make_dataset(clips, cfg, training=False)]


def tflite_fidelity(run_dir: Path, labels: np.ndarray, batches: list[np.ndarray]) -> dict:
    """Export float32 and int8 TFLite files; their sizes and EERs on `testing`, how far the
    int8 scores are from the float ones, and the float EER's bootstrap CI."""
    from lcnn.detector.export import export_tflite, tflite_scorer
    from lcnn.metrics import bootstrap_ci, compute_eer

    out, scores = {}, {}
    for name, int8 in (("fp32", False), ("int8", True)):
        path = export_tflite(run_dir, int8=int8)
        score = tflite_scorer(path, threads=THREADS)
        scores[name] = np.concatenate([score(x) for x in batches])
        out[name] = {"path": str(path), "bytes": path.stat().st_size,
                     "test_eer": compute_eer(labels, scores[name])[0]}
    error = np.abs(scores["int8"] - scores["fp32"])
    out["int8"]["score_error"] = {"median": float(np.median(error)), "max": float(error.max())}
    out["fp32"]["test_eer_ci95"] = bootstrap_ci(labels, scores["fp32"], n_boot=2000)
    return out


def inference(run_dir: Path, batches: list[np.ndarray], tflite: dict, repeats: int) -> dict:
    """Batch inference clips/s of the Keras model; single-clip latency of Keras and TFLite."""
    from lcnn.detector import runs
    from lcnn.detector.export import tflite_scorer

    model = runs.load_model(run_dir)
    n = sum(len(x) for x in batches)
    times = interleaved({"batch": lambda: [model.predict_on_batch(x) for x in batches]}, repeats)

    one = batches[0][:1]
    scorers = {"keras": lambda: model.predict_on_batch(one)}
    for name, info in tflite.items():
        score = tflite_scorer(info["path"], threads=THREADS)
        scorers[f"tflite_{name}"] = lambda s=score: s(one)
    latency = interleaved(scorers, LATENCY_ROUNDS, warmup=LATENCY_WARMUP)
    return {"infer_clips_per_s": summary([n / t for t in times["batch"]]),
            **{f"latency_ms_{k}": summary(1000 * np.asarray(v)) for k, v in latency.items()}}
