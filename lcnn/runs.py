"""The run folder: what a training run writes, written so that an interruption loses nothing.

    <run_dir>/config.json          the Config of the run (plus the data path)
    <run_dir>/history.csv          one row per finished epoch
    <run_dir>/state.json           progress: last finished epoch, best epoch, early-stopping count
    <run_dir>/last.keras           model + optimizer after the last finished epoch (for resuming)
    <run_dir>/best.keras           model with the best validation EER (what evaluate/predict use)
    <run_dir>/scores-<split>.tsv   per-file scores (probability of fake)
    <run_dir>/.lcnn-run            marker: this folder is an lcnn run folder (see is_run_folder)

Every file is written to a temporary name in the same folder and then renamed over the old
one (os.replace is atomic), so a killed process leaves either the old or the new file.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lcnn.config import Config
from lcnn.errors import LcnnError

CONFIG, STATE, HISTORY = "config.json", "state.json", "history.csv"
BEST, LAST = "best.keras", "last.keras"
MARKER = ".lcnn-run"
TMP_TAG = ".lcnn-tmp"  # in the name of every temporary file lcnn writes
# What lcnn writes into a run folder (glob patterns). `--overwrite` deletes a folder only if
# every entry in it matches one of these, so a data folder or a thesis is never deleted.
RUN_FILES = (MARKER, ".lcnn-lock", CONFIG, STATE, HISTORY, BEST, LAST, "scores-*.tsv",
             "metrics-*.json", "model.tflite", "model-int8.tflite", "calibration*.json",
             f"*{TMP_TAG}*")


class RunError(LcnnError):
    """A run folder that is missing or incomplete."""


@contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it into place only if the block succeeds.

    The temporary file gets an ordinary file's mode (mkstemp makes it private) and `suffix`
    (some writers pick the format from it: Keras wants .keras).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to path atomically."""
    atomic_write_bytes(path, text.encode())


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
                 groups=None) -> None:
    """Write a tab-separated score file: file, p_fake[, label[, attack]] with a header.

    The column is named p_fake because the score is the probability of fake, the opposite
    direction from ASVspoof's cm-score.
    """
    header = ["file", "p_fake"] + (["label"] if labels is not None else [])
    header += ["attack"] if groups is not None else []
    lines = ["\t".join(header)]
    for i, (f, s) in enumerate(zip(files, scores, strict=True)):
        row = [str(f), f"{float(s):.6f}"]
        if labels is not None:
            row.append("fake" if int(labels[i]) == 1 else "real")
        if groups is not None:
            row.append(str(groups[i]))
        lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _is_run_file(name: str) -> bool:
    """Whether lcnn writes files of this name into a run folder (also the temporary files of
    older versions, `.best.keras.<random>.keras`, left by a killed run)."""
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, f".{pattern}.*")
               for pattern in RUN_FILES)


def foreign_entries(run_dir: Path) -> list[str]:
    """Names in run_dir that lcnn did not write: sub-folders, links and unknown files."""
    return sorted(entry.name for entry in Path(run_dir).iterdir()
                  if entry.is_symlink() or not entry.is_file() or not _is_run_file(entry.name))


def is_run_folder(run_dir: Path) -> bool:
    """Whether run_dir is an lcnn run folder: marked (or an older run with config.json and
    state.json) and holding only files lcnn writes."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink() or not run_dir.is_dir():
        return False
    marked = (run_dir / MARKER).is_file() or all(
        (run_dir / name).is_file() for name in (CONFIG, STATE))
    return marked and not foreign_entries(run_dir)


def check_deletable(run_dir: Path) -> None:
    """Raise RunError unless run_dir is missing, empty, or an lcnn run folder."""
    run_dir = Path(run_dir)
    if not run_dir.exists() and not run_dir.is_symlink():
        return
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a folder; --overwrite deletes only lcnn run folders")
    if not any(run_dir.iterdir()) or is_run_folder(run_dir):
        return
    foreign = foreign_entries(run_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        reason = f"it holds {shown}, which lcnn did not write"
    else:
        reason = f"it has no {MARKER} marker and no {CONFIG} + {STATE}"
    raise RunError(f"{run_dir}: not an lcnn run folder ({reason}); --overwrite refuses to "
                   "delete it: pick another --run_dir")


def clear_run(run_dir: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete the files of an lcnn run folder (after check_deletable), except `keep`."""
    run_dir = Path(run_dir)
    check_deletable(run_dir)
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            if entry.name not in keep:
                entry.unlink()


def mark_run_folder(run_dir: Path) -> None:
    """Write the marker that identifies run_dir as an lcnn run folder."""
    atomic_write_text(Path(run_dir) / MARKER, "lcnn run folder: written by `python -m lcnn "
                      "train`; `train --overwrite` may delete this folder\n")


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

    import lcnn.layers  # noqa: F401  registers the custom layers for deserialisation

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
