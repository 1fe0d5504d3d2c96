"""The run folder: what a training run writes, written so that an interruption loses nothing.

    <run_dir>/config.json          the Config of the run (plus the data path)
    <run_dir>/history.csv          one row per finished epoch
    <run_dir>/state.json           progress: last finished epoch, best epoch, early-stopping count
    <run_dir>/last.keras           model + optimizer after the last finished epoch (for resuming)
    <run_dir>/best.keras           model with the best validation EER (what evaluate/predict use)
    <run_dir>/scores-<split>.tsv   per-file raw scores (higher = more fake; not probabilities)
    <run_dir>/calibration.json     score -> LLR and probability of fake, thresholds (validation)

Every file is written to a temporary name in the same folder and then renamed over the old
one (os.replace is atomic), so a killed process leaves either the old or the new file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from lcnn.config import Config
from lcnn.errors import RunError
from lcnn.io import atomic_path, atomic_write_text

CONFIG, STATE, HISTORY = "config.json", "state.json", "history.csv"
BEST, LAST = "best.keras", "last.keras"


def atomic_save_model(model, path: str | Path) -> None:
    """Save a Keras model to path (a .keras file) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_history(path: Path, rows: list[dict]) -> None:
    """Write the per-epoch history as CSV (all rows, atomically)."""
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_history(path: Path) -> list[dict]:
    """Read history.csv back as a list of dicts with float values."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_scores(path: Path, files: Sequence, scores: Iterable[float], labels=None,
                 groups=None, extra: dict[str, Sequence[float]] | None = None) -> None:
    """Write a tab-separated score file: file, score[, label[, attack]][, extra...] with a
    header; `extra` adds numeric columns (e.g. the calibrated LLR).

    The score is the model's raw output, higher = more fake (the opposite direction from
    ASVspoof's cm-score); runs written before calibration existed name the column p_fake.
    """
    header = ["file", "score"] + (["label"] if labels is not None else [])
    header += ["attack"] if groups is not None else []
    header += list(extra or {})
    lines = ["\t".join(header)]
    for i, (f, s) in enumerate(zip(files, scores, strict=True)):
        row = [str(f), f"{float(s):.9g}"]  # all of float32's digits: calibration takes logits
        if labels is not None:
            row.append("fake" if int(labels[i]) == 1 else "real")
        if groups is not None:
            row.append(str(groups[i]))
        row += [f"{float(values[i]):.6g}" for values in (extra or {}).values()]
        lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")


def load_config(run_dir: Path) -> Config:
    """The Config a run was trained with."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{run_dir}: not a run folder (no {CONFIG}); train one with "
                       "`python -m lcnn train --data_path DIR --run_dir RUN`")
    return Config.from_json(path)


def data_path(run_dir: Path) -> str:
    """The dataset a run was trained on."""
    return read_json(Path(run_dir) / CONFIG)["data_path"]


def load_model(run_dir: Path, which: str = BEST):
    """Load the best (or last) model of a run, with a clear error if there is none."""
    import keras

    import lcnn.detector.layers  # noqa: F401  registers the custom layers for deserialisation

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder does not exist")
    path = run_dir / which
    if not path.exists():
        raise RunError(f"{run_dir}: no trained model ({which} is missing); "
                       "has training finished at least one epoch?")
    try:
        return keras.saving.load_model(path, compile=which == LAST)
    except Exception as e:  # a damaged file: name it rather than show Keras' traceback
        raise RunError(f"{path}: cannot load model ({type(e).__name__}: {e})") from None
