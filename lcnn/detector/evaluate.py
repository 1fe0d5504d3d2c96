"""Evaluate a trained run on a split: scores, metrics, and per-attack EER when known."""

from __future__ import annotations

from pathlib import Path

from lcnn.detector import runs
from lcnn.metrics import eer_by_group, summarize


def evaluate(run_dir: str | Path, data_path: str | Path | None = None, split: str = "testing",
             threshold: float = 0.5, skip_bad: bool = False,
             cache_dir: str | Path | None = None) -> dict:
    """Score every clip of a split with the run's best model and summarise.

    Writes <run_dir>/scores-<split>.tsv and metrics-<split>.json; returns the metrics dict
    (see lcnn.metrics.summarize) plus `eer_by_attack` when the dataset names attacks.
    """
    from lcnn.detector import data
    from lcnn.detector.predict import predict_scores
    from lcnn.runtime import set_threads

    run_dir = Path(run_dir)
    cfg = runs.load_config(run_dir)
    set_threads(cfg.threads)
    if data_path is None:
        data_path = runs.data_path(run_dir)
    model = runs.load_model(run_dir)
    clips = data.load_split(data_path, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad)
    scores = predict_scores(model, data.make_dataset(clips, cfg, training=False))
    result = summarize(clips.labels, scores, threshold)
    result["split"] = split
    attacks = clips.meta.get("attack")
    if attacks is not None:
        result["eer_by_attack"] = eer_by_group(clips.labels, scores, attacks)
    runs.write_scores(run_dir / f"scores-{split}.tsv", clips.files, scores, clips.labels,
                      attacks)
    runs.write_json(run_dir / f"metrics-{split}.json", result)
    return result
