"""Evaluate a trained run on a split: scores, metrics, and per-attack EER when known."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lcnn import channels
from lcnn.detector import runs
from lcnn.metrics import eer_by_group, summarize


def evaluate(run_dir: str | Path, data_path: str | Path | None = None, split: str = "testing",
             threshold: float = 0.5, skip_bad: bool = False,
             cache_dir: str | Path | None = None, condition: str = "clean",
             windows: bool = False, seed: int = 0, model=None) -> dict:
    """Score every clip of a split with the run's best model and summarise.

    `condition` passes every clip through one channel of lcnn.channels.CONDITIONS first
    (seeded by `seed`); `windows` scores whole files as `predict` does (see window_scores)
    instead of one centre clip each. Writes <run_dir>/scores-<split><tag>.tsv and
    metrics-<split><tag>.json (tag: "-<condition>" unless clean, "-windows" with windows);
    returns the metrics dict (see lcnn.metrics.summarize) plus `eer_by_attack` when the
    dataset names attacks. `model`: the run's model if already loaded.
    """
    from lcnn.detector import data
    from lcnn.detector.predict import predict_scores
    from lcnn.runtime import set_threads

    channel = channels.condition(condition)  # an unknown name fails before any loading
    run_dir = Path(run_dir)
    cfg = runs.load_config(run_dir)
    set_threads(cfg.threads)
    if data_path is None:
        data_path = runs.data_path(run_dir)
    model = runs.load_model(run_dir) if model is None else model
    clips = data.load_split(data_path, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad)
    if windows:
        scores = window_scores(model, clips.files, cfg, channel, seed)
    else:
        if channel is not None:
            clips = with_channel(clips, cfg, condition, channel, seed)
        scores = predict_scores(model, data.make_dataset(clips, cfg, training=False))
    result = summarize(clips.labels, scores, threshold)
    result.update(split=split, condition=condition, windows=windows)
    attacks = clips.meta.get("attack")
    if attacks is not None:
        result["eer_by_attack"] = eer_by_group(clips.labels, scores, attacks)
    tag = ("" if condition == "clean" else f"-{condition}") + ("-windows" if windows else "")
    runs.write_scores(run_dir / f"scores-{split}{tag}.tsv", clips.files, scores, clips.labels,
                      attacks)
    runs.write_json(run_dir / f"metrics-{split}{tag}.json", result)
    return result


def with_channel(clips, cfg, name: str, channel: channels.Channel, seed: int):
    """The clips after `channel` (cached like training copies; see data.build_variants)."""
    from lcnn.detector import data

    def fn(x: np.ndarray, rng: np.random.Generator, j: int) -> np.ndarray:
        return channel(x, cfg.sample_rate, rng)

    audio = data.build_variants(clips, fn, 1, f"condition {name} seed={seed}")[:, 0]
    return dataclasses.replace(clips, audio=audio, variants=None)


def window_scores(model, files: list[Path], cfg, channel: channels.Channel | None = None,
                  seed: int = 0, chunk: int = 32) -> np.ndarray:
    """Each file's score as `predict` gives it: the mean over 50 %-overlapping windows of the
    whole file (after `channel`, seeded per file, and normalised like any loaded file)."""
    from lcnn.audio import load_audio, normalize
    from lcnn.detector.predict import clip_windows

    def windows_of(i: int) -> np.ndarray:
        x = load_audio(files[i], cfg.sample_rate)
        if channel is not None:
            x = normalize(channel(x, cfg.sample_rate, np.random.default_rng([seed, i])))
        return clip_windows(x, cfg).astype(np.float32)

    scores = np.zeros(len(files))
    with ThreadPoolExecutor(max_workers=2) as pool:  # decoding and channels overlap
        for start in range(0, len(files), chunk):  # a chunk of files at a time: flat memory
            parts = list(pool.map(windows_of, range(start, min(start + chunk, len(files)))))
            scores[start : start + len(parts)] = _mean_scores(model, parts, cfg.batch_size)
    return scores


def _mean_scores(model, parts: list[np.ndarray], batch_size: int) -> list[float]:
    """The mean model score of each group of windows in `parts`, scored in batches."""
    batch = np.concatenate(parts)
    out = np.concatenate([np.asarray(model.predict_on_batch(batch[b : b + batch_size]))
                          .reshape(-1) for b in range(0, len(batch), batch_size)])
    return [w.mean() for w in np.split(out, np.cumsum([len(p) for p in parts])[:-1])]


def robustness(run_dir: str | Path, data_path: str | Path | None = None,
               split: str = "testing", seed: int = 0, windows: bool = False,
               **kwargs) -> dict[str, dict]:
    """evaluate() under every condition of lcnn.channels.CONDITIONS; also written to
    <run_dir>/robustness-<split>.json. Returns {condition: metrics}."""
    model = runs.load_model(run_dir)
    table = {name: evaluate(run_dir, data_path, split, condition=name, windows=windows,
                            seed=seed, model=model, **kwargs) for name in channels.CONDITIONS}
    tag = "-windows" if windows else ""
    runs.write_json(Path(run_dir) / f"robustness-{split}{tag}.json", table)
    return table
