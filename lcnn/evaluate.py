"""Evaluate a trained run on a split: scores, metrics, and per-attack EER when known."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from lcnn import runs
from lcnn.metrics import eer_by_group, summarize

METADATA = "metadata.csv"
log = logging.getLogger(__name__)


def read_metadata(data_path: str | Path) -> dict[str, dict[str, str]]:
    """Rows of <data_path>/metadata.csv keyed by the `file` column (a path relative to
    data_path). Empty when there is no such file or it has no `file` column (e.g. FoR)."""
    path = Path(data_path) / METADATA
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        return {}
    return {Path(row["file"]).as_posix(): row for row in rows}


def read_attacks(data_path: Path, files: list[Path]) -> np.ndarray | None:
    """Attack family of each file from <data_path>/metadata.csv (columns file, attack), if any.

    The demo corpus ships such a file; FoR does not, and then this returns None.
    """
    rows = read_metadata(data_path)
    if not rows or "attack" not in next(iter(rows.values())):
        return None
    root = Path(data_path).resolve()
    keys = [Path(f).resolve().relative_to(root).as_posix() for f in files]
    if not all(k in rows for k in keys):
        return None  # metadata does not describe this folder; don't guess
    return np.array([rows[k]["attack"] for k in keys])


def evaluate(run_dir: str | Path, data_path: str | Path | None = None, split: str = "testing",
             threshold: float = 0.5, skip_bad: bool = False,
             cache_dir: str | Path | None = None) -> dict:
    """Score every clip of a split with the run's best model and summarise.

    Writes <run_dir>/scores-<split>.tsv and metrics-<split>.json; returns the metrics dict
    (see lcnn.metrics.summarize) plus `eer_by_attack` when the data has a metadata.csv.
    """
    from lcnn import data
    from lcnn.train import predict_scores, set_threads

    run_dir = Path(run_dir)
    cfg = runs.load_config(run_dir)
    set_threads(cfg.threads)
    if data_path is None:
        data_path = runs.data_path(run_dir)
    model = runs.load_model(run_dir)
    clips = data.load_split(data_path, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad)
    data.check_both_classes(clips, f"{data_path} ({split})")
    scores = predict_scores(model, data.make_dataset(clips, cfg, training=False))
    result = summarize(clips.labels, scores, threshold)
    result["split"] = split
    attacks = read_attacks(Path(data_path), clips.files)
    if attacks is not None:
        result["eer_by_attack"] = eer_by_group(clips.labels, scores, attacks)
    try:
        runs.write_scores(run_dir / f"scores-{split}.tsv", clips.files, scores, clips.labels,
                          attacks)
        runs.write_json(run_dir / f"metrics-{split}.json", result)
    except OSError as e:  # e.g. a read-only run folder: the metrics are still worth showing
        log.warning("lcnn evaluate: warning: could not save the scores and metrics in %s (%s)",
                    run_dir, e.strerror or e)
    return result
