"""The run folder: what a training run writes, written so that an interruption loses nothing.

    <run_dir>/config.json          the Config of the run, plus "data": the dataset it trained on
                                   (lcnn.dataset.data_spec; older runs: "data_path", a path)
    <run_dir>/history.csv          one row per finished epoch
    <run_dir>/state.json           progress: last finished epoch, best epoch, early-stopping count
    <run_dir>/last.keras           model + optimizer after the last finished epoch (for resuming)
    <run_dir>/best.keras           model with the best validation EER (what evaluate/predict use)
    <run_dir>/next-<epoch>-<name>  an epoch's last.keras, best.keras and scores-validation.tsv
                                   until state.json records the epoch (see settle_epoch)
    <run_dir>/scores-<split>.tsv   per-file raw scores (higher = more fake; not probabilities):
                                   validation's from training, the others from evaluate, which
                                   names another dataset's files scores-<split>-<dataset>-<hash>
    <run_dir>/calibration.json     score -> LLR and probability of fake, thresholds (validation)
    <run_dir>/.lcnn-run            marker: an lcnn run folder (is_run_folder), and which training
                                   it holds (run_id: a folder started over gets another)
    <run_dir>/.lcnn-lock           while training: pid, host and start time of the trainer

Every file is written to a temporary name in the same folder and then renamed over the old
one (os.replace is atomic), so a killed process leaves either the old or the new file; the
temporary files it leaves are named after it and removed by the next run
(lcnn.io.clean_temporaries).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import re
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from lcnn.config import Config
from lcnn.dataset import data_spec as _data_spec
from lcnn.errors import LayoutError, RunError
from lcnn.io import HOST, TMP_TAG, atomic_path, atomic_write_text, pid_alive, temp_prefix

CONFIG, STATE, HISTORY = "config.json", "state.json", "history.csv"
DATA = "data"  # config.json's key for the dataset (lcnn.dataset.data_spec)
BEST, LAST = "best.keras", "last.keras"
VALIDATION_SCORES = "scores-validation.tsv"  # the best epoch's, written by training
CALIBRATION = "calibration.json"  # fitted on VALIDATION_SCORES (lcnn.detector.calibration)
MARKER, LOCK = ".lcnn-run", ".lcnn-lock"
# What lcnn writes into a run folder (glob patterns). `--overwrite` deletes a folder only if
# every entry in it matches one of these, so a data folder or a thesis is never deleted.
RUN_FILES = (MARKER, LOCK, CONFIG, STATE, HISTORY, BEST, LAST, "next-*.keras", "next-*.tsv",
             "scores-*.tsv", "metrics-*.json", "robustness-*.json", "model.tflite",
             "model-int8.tflite", "calibration*.json", f"*{TMP_TAG}*")


def atomic_save_model(model, path: str | Path) -> None:
    """Save a Keras model to path (a .keras file) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def pending(run_dir: Path, epoch: int, name: str) -> Path:
    """Where the file `name` (LAST, BEST or VALIDATION_SCORES) of an epoch's end waits until
    state.json records the epoch (see settle_epoch)."""
    return Path(run_dir) / f"next-{epoch}-{name}"


# next-<epoch>-<name> of the files `pending` takes (no other file is moved or deleted);
# next-<epoch>.keras is last.keras as earlier versions named it
_PENDING_NAMES = "|".join(map(re.escape, (LAST, BEST, VALIDATION_SCORES)))
_PENDING = re.compile(rf"next-(?P<epoch>\d+)(?:-(?P<name>{_PENDING_NAMES})|\.keras)")


def settle_epoch(run_dir: Path, epoch: int) -> None:
    """Move the files an epoch's end wrote (`pending`) into place once state.json says
    `epoch` is done; delete those of a later epoch, whose state was not written, so that epoch
    is trained again from the files of the one before. Training calls it after each state.json
    and when it resumes a run killed in between."""
    for path in Path(run_dir).glob("next-*"):
        if not (m := _PENDING.fullmatch(path.name)):
            continue
        if int(m["epoch"]) == epoch:
            os.replace(path, Path(run_dir) / (m["name"] or LAST))
        else:
            path.unlink()


_BEING_WRITTEN = {"pid": "?", "host": "?", "started": "just now"}  # a lock without its text yet


def _lock_text(path: Path) -> str | None:
    """A lock file's text: None if there is no lock, "" if it cannot be read."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def _lock_owner(path: Path, text: str) -> dict | None:
    """The process holding the lock at path whose text is `text`, or None if the lock is stale
    (its process is gone)."""
    try:
        owner = json.loads(text)
        pid, host = int(owner["pid"]), str(owner["host"])
    except (ValueError, KeyError, TypeError):
        # being written this very moment, or damaged: stale unless it is brand new
        return _BEING_WRITTEN if _age(path) < 10 else None
    if host == HOST and (pid == os.getpid() or not pid_alive(pid)):
        return None
    return owner


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _in_use(run_dir: Path, owner: dict) -> RunError:
    path = Path(run_dir) / LOCK
    return RunError(f"{run_dir}: in use by another training (pid {owner['pid']} on "
                    f"{owner['host']}, started {owner.get('started', '?')}); wait for it to "
                    f"finish, or delete {path} if that process is gone")


def check_unlocked(run_dir: Path) -> None:
    """RunError naming the process (pid, host, start time) that holds run_dir's lock, if a
    live one does."""
    path = Path(run_dir) / LOCK
    text = _lock_text(path)
    if text is not None and (owner := _lock_owner(path, text)) is not None:
        raise _in_use(run_dir, owner)


def _take_over(run_dir: Path, stale: str) -> None:
    """Remove run_dir's lock if it still holds `stale`, the text of a lock whose process is
    gone. Two trainers can find the same stale lock; the first to remove it may have made its
    own lock by the time the second removes one, so the lock is first renamed (atomic: one
    process gets it) and put back if it turns out to be a live trainer's."""
    path = Path(run_dir) / LOCK
    taken = path.with_name(temp_prefix(path) + "stale")
    try:
        os.replace(path, taken)
    except FileNotFoundError:
        return  # another trainer removed it first
    except PermissionError:  # Windows: open in its creator, who is writing it just now
        raise _in_use(run_dir, _BEING_WRITTEN) from None
    try:
        text = taken.read_text()
        if text != stale:
            _put_back(taken, path)
            raise _in_use(run_dir, _lock_owner(taken, text) or _BEING_WRITTEN)
    finally:
        taken.unlink(missing_ok=True)


def _put_back(taken: Path, path: Path) -> None:
    """Restore a lock renamed away by mistake, unless a third trainer has taken the name."""
    try:
        os.link(taken, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links (FAT, some network shares)
        if not path.exists():
            os.replace(taken, path)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold <run_dir>/.lcnn-lock while the block runs, creating run_dir if needed.

    A second trainer is refused with the first one's pid, host and start time; a lock left by
    a killed process on this machine is taken over.
    """
    run_dir = Path(run_dir)
    make_folder(run_dir)
    path = run_dir / LOCK
    mine = {"pid": os.getpid(), "host": HOST,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if (text := _lock_text(path)) is None:
                continue  # released meanwhile
            if (owner := _lock_owner(path, text)) is not None:
                raise _in_use(run_dir, owner) from None
            _take_over(run_dir, text)
            continue
        except OSError as e:
            raise RunError(f"{run_dir}: cannot write in this folder ({e.strerror})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        break
    else:
        raise RunError(f"{run_dir}: could not take the lock {path}; try again")
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()) == mine:
                path.unlink()
        except (OSError, ValueError):
            pass


def check_writable(folder: Path) -> None:
    """RunError unless folder is a writable folder or can be created (checked before any
    slow work, so a bad --run_dir fails at once)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == folder else f"is under {probe}, which is a file"
        raise RunError(f"{folder}: {where}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f" (in {probe})"
        raise RunError(f"{folder}: cannot write here{where}: permission denied")


def make_folder(folder: Path) -> None:
    """Create folder (and parents) with one clear error when that is impossible."""
    folder = Path(folder)
    if folder.is_dir():
        return
    if folder.exists():
        raise RunError(f"{folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"{folder}: a part of this path is a file, not a folder") from None
    except OSError as e:
        raise RunError(f"{folder}: cannot create this folder ({e.strerror})") from None


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
        # a column that older rows lack (a run resumed after a version added it) reads as NaN
        writer = csv.DictWriter(f, fieldnames=fields, restval="nan")
        writer.writeheader()
        writer.writerows(rows)


def read_history(path: Path) -> list[dict]:
    """Read history.csv back as a list of dicts with float values (NaN where a row has no
    value: histories written before write_history filled those in left them empty), the
    epoch as an int, as training writes it."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) if v else math.nan for k, v in row.items()}
                for row in csv.DictReader(f)]
    for row in rows:
        if "epoch" in row and math.isfinite(row["epoch"]):
            row["epoch"] = int(row["epoch"])
    return rows


_TSV_ESCAPES = {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}


def tsv_field(value: object) -> str:
    """A value as one field of a tab-separated line: tabs and line breaks escaped as \\t,
    \\n, \\r, and file-name bytes that are not UTF-8 shown as \\xNN."""
    text = os.fsencode(value).decode("utf-8", "backslashreplace") if isinstance(
        value, os.PathLike) else str(value)
    return text.translate(_TSV_ESCAPES)


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
        row = [tsv_field(f), f"{float(s):.9g}"]  # all of float32's digits: calibration takes logits
        if labels is not None:
            row.append("fake" if int(labels[i]) == 1 else "real")
        if groups is not None:
            row.append(str(groups[i]))
        row += [f"{float(values[i]):.6g}" for values in (extra or {}).values()]
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


# Settings every lcnn config.json has held since the first version: how a run saved before
# the marker existed is told from another program's config.json + state.json
_FIRST_SETTINGS = {"sample_rate", "duration", "focal_alpha", "focal_gamma"}


def is_marked(run_dir: Path) -> bool:
    """Whether run_dir carries lcnn's marker, or is a run saved before the marker existed: a
    state.json beside a config.json that holds lcnn's settings."""
    run_dir = Path(run_dir)
    if (run_dir / MARKER).is_file():
        return True
    try:
        saved = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return (run_dir / STATE).is_file() and isinstance(saved, dict) and (
        _FIRST_SETTINGS <= saved.keys())


def is_run_folder(run_dir: Path) -> bool:
    """Whether run_dir is an lcnn run folder: marked (is_marked) and holding only files lcnn
    writes."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink() or not run_dir.is_dir():
        return False
    return is_marked(run_dir) and not foreign_entries(run_dir)


# What training writes and resuming, calibration and evaluate read back: no other command's
# output may replace one of these.
TRAINING_FILES = (MARKER, LOCK, CONFIG, STATE, HISTORY, BEST, LAST, VALIDATION_SCORES,
                  CALIBRATION)


def check_not_training_file(path: str | Path, what: str) -> None:
    """Raise RunError when `path` (an output named by the user, `what` its option) is a file
    that training wrote into a run folder."""
    path = Path(path)
    if path.name in TRAINING_FILES and (path.parent / CONFIG).is_file():
        raise RunError(f"{what} {path}: would replace a file of the run in {path.parent}; "
                       "choose another name")


def check_output(path: str | Path, what: str, signature: bytes, offset: int = 0) -> None:
    """Raise RunError unless `path` (an output named by the user, `what` its option) may be
    written: not a file training wrote, and either new or an earlier output of this option,
    which begins with `signature` at byte `offset`. A typo naming the dataset's metadata.csv,
    an audio file or a protocol replaces nothing."""
    check_not_training_file(path, what)
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(len(signature))
    if head != signature:
        raise RunError(f"{what} {path}: exists and is not an earlier output of {what}; "
                       "choose another name (or delete it first)")


def check_deletable(run_dir: Path) -> None:
    """Raise RunError unless run_dir is missing, empty, or an lcnn run folder."""
    run_dir = Path(run_dir)
    if not run_dir.exists() and not run_dir.is_symlink():
        return
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a folder; --overwrite deletes only lcnn run folders")
    # empty, or holding only the lock that the trainer asking for the overwrite has taken
    if not any(e.name != LOCK for e in run_dir.iterdir()) or is_run_folder(run_dir):
        return
    foreign = foreign_entries(run_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        reason = f"it holds {shown}, which lcnn did not write"
    else:
        reason = f"it has no {MARKER} marker and no {CONFIG} of lcnn's + {STATE}"
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
    """Write the marker that identifies run_dir as an lcnn run folder, and this training of it
    (run_id): a folder started over gets another."""
    atomic_write_text(Path(run_dir) / MARKER, "lcnn run folder: written by `python -m lcnn "
                      "train`; `train --overwrite` may delete this folder\n"
                      f"run {uuid.uuid4().hex}\n")


def run_id(run_dir: Path) -> str | None:
    """Which training of run_dir the folder holds: its marker's text (mark_run_folder); None
    without a marker (a run saved before markers existed)."""
    try:
        return (Path(run_dir) / MARKER).read_text()
    except OSError:
        return None


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object from path; RunError naming the file if it is unreadable or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise RunError(f"{path}: cannot read the {what} ({e.strerror})") from None
    except ValueError as e:
        raise RunError(f"{path}: damaged {what} (not valid JSON: {e})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: damaged {what} (a JSON {type(data).__name__}, not an object)")
    return data


def load_config(run_dir: Path) -> Config:
    """The Config a run was trained with."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{run_dir}: not a run folder (no {CONFIG}); train one with "
                       "`python -m lcnn train --data_path DIR --run_dir RUN`")
    return Config.from_json(path)


def saved_data(saved: dict, where: Path) -> dict:
    """The dataset spec in a run's settings: "data", or the "data_path" of older runs."""
    value = saved.get(DATA, saved.get("data_path"))
    if not isinstance(value, dict) and not (isinstance(value, str) and value):
        raise RunError(f"{where}: no dataset saved; pass --data_path or --protocol")
    try:
        return _data_spec(value)
    except LayoutError as e:
        raise RunError(f"{where}: {e}") from None


def data_spec(run_dir: Path) -> dict:
    """The dataset a run was trained on, as lcnn.dataset.data_spec describes it."""
    path = Path(run_dir) / CONFIG
    return saved_data(read_json_object(path, "run settings"), path)


# state.json: key -> the types its value may have
_STATE_TYPES = {"epoch": int, "best_eer": (float, int, type(None)), "best_epoch": int,
                "wait": int, "stopped_early": bool, "finished": bool}


def load_state(run_dir: Path) -> dict:
    """A run's progress (state.json), checked: RunError naming the key that is wrong."""
    path = Path(run_dir) / STATE
    state = read_json_object(path, "run state")
    for key, types in _STATE_TYPES.items():
        value = state.get(key)
        wrong = not isinstance(value, types) or (types is int and (isinstance(value, bool)
                                                                    or value < 0))
        if wrong:
            raise RunError(f"{path}: damaged run state ({key} is {value!r}); "
                           "train --overwrite starts the run over")
    return state


def best_epoch(run_dir: Path) -> int | None:
    """The best epoch state.json records: the one best.keras holds (None without one; RunError
    naming state.json if it is damaged)."""
    if not (Path(run_dir) / STATE).exists():
        return None
    return load_state(run_dir)["best_epoch"] or None


class BestModel(NamedTuple):
    """A run's best model as loaded, the epoch it is from and the training (run_id) it belongs
    to: what is written about the model later goes into its run folder only while that folder
    still holds the same training."""
    model: Any
    epoch: int | None
    run: str | None

    def still_in(self, run_dir: Path) -> bool:
        """Whether run_dir still holds the training this model came from (not started over)."""
        return run_id(run_dir) == self.run


def load_best(run_dir: Path) -> BestModel:
    """A run's best model with its epoch and run_id, read before the model (a training
    started over meanwhile then shows as another run_id)."""
    run, epoch = run_id(run_dir), best_epoch(run_dir)
    return BestModel(load_model(run_dir), epoch, run)


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
    if not zipfile.is_zipfile(path):  # Keras would say "file not found" for a damaged file
        raise RunError(f"{path}: damaged model file (not a .keras zip archive)")
    try:
        return keras.saving.load_model(path, compile=which == LAST)
    except Exception as e:  # a damaged file: name it rather than show Keras' traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise RunError(f"{path}: damaged model file ({type(e).__name__}: {first})") from None
