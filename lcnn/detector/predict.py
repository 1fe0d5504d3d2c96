"""Score your own audio: files and folders, any length.

A file longer than one clip is cut into windows of one clip length with 50 % overlap (the last
window is aligned to the end of the file, so no audio is dropped); each window is scored and the
file's score is the mean of the window scores, so a long file is judged on all of it. A file
shorter than a clip is padded. Scores are the model's raw output, higher = more fake; they are
not probabilities (lcnn.detector.calibration turns them into LLRs and probabilities of fake).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcnn.audio import fix_length, load_audio, window_starts
from lcnn.config import Config
from lcnn.dataset import AUDIO_SUFFIXES
from lcnn.errors import AudioError, LcnnError

Scorer = Callable[[np.ndarray], np.ndarray]  # [windows, n_samples] -> [windows] raw scores


@dataclass
class Prediction:
    path: Path
    score: float | None  # raw score (higher = more fake), None when the file could not be read
    windows: int = 0
    error: str | None = None

    def verdict(self, threshold: float = 0.5) -> str:
        return "error" if self.score is None else verdict(self.score, threshold)


def verdict(score: float, threshold: float) -> str:
    """"fake" when a raw score reaches the threshold, else "real"."""
    return "fake" if score >= threshold else "real"


def predict_scores(model, dataset) -> np.ndarray:
    """Raw score (higher = more fake) of every clip of a (non-shuffled) dataset."""
    return np.asarray(model.predict(dataset, verbose=0)).reshape(-1)


def keras_scorer(model) -> Scorer:
    """Wrap a Keras model as a Scorer."""
    return lambda x: np.asarray(model.predict_on_batch(x)).reshape(-1)


BATCH_WINDOWS = 32  # windows scored at once: memory stays flat for files of any length


def _os_reason(error: OSError) -> str:
    return f"cannot read ({error.strerror or type(error).__name__})"


def _folder_files(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Audio files under folder (sorted per folder, hidden ones skipped), and the sub-folders,
    links and files that cannot be used, each with the reason."""
    errors: list[OSError] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, onerror=errors.append, followlinks=True):
        here = Path(dirpath)
        yield from ((Path(e.filename), _os_reason(e)) for e in errors)
        errors.clear()
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
            dirnames[:] = []
            yield here, "link to a folder already searched (a symbolic link loop?)"
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            path = here / name
            yield path, None if path.is_file() else "broken link or not a regular file"
    yield from ((Path(e.filename), _os_reason(e)) for e in errors)


def list_inputs(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Files as given, folders searched recursively for audio files, each with None or the
    reason the path cannot be used (so one bad path costs one line, not the whole run)."""
    for path in map(Path, paths):
        try:
            if not path.is_dir():
                yield path, None
                continue
            found = False
            for item in _folder_files(path):
                found = True
                yield item
            if not found:  # said, so that a folder named by mistake is not passed over
                yield path, "folder with no audio file"
        except OSError as e:
            yield path, _os_reason(e)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for audio files."""
    return [path for path, _ in list_inputs(paths)]


def clip_windows(x: np.ndarray, cfg: Config) -> np.ndarray:
    """The windows a waveform is scored on: [k, n_samples], 50 % overlap."""
    return np.concatenate(list(window_batches(x, cfg, batch=1 << 30)))


def window_batches(x: np.ndarray, cfg: Config, batch: int = BATCH_WINDOWS
                   ) -> Iterator[np.ndarray]:
    """The windows of a waveform (50 % overlap, the last aligned to the end), `batch` at a
    time, cut only when needed so a long file never sits in memory twice over."""
    n = cfg.n_samples
    if len(x) <= n:
        yield fix_length(x, n, mode="start")[None, :]
        return
    starts = window_starts(len(x), n, hop=n // 2)
    for i in range(0, len(starts), batch):
        yield np.stack([x[s : s + n] for s in starts[i : i + batch]])


def score_file(scorer: Scorer, path: str | Path, cfg: Config) -> Prediction:
    """Score one file; an unreadable file gives a Prediction with its error instead."""
    try:
        x = load_audio(path, cfg.sample_rate)
    except AudioError as e:  # OS errors too (permissions, a file gone meanwhile)
        return Prediction(Path(path), None, error=e.reason)
    scores = np.concatenate([scorer(w.astype(np.float32)) for w in window_batches(x, cfg)])
    score = float(np.mean(scores))
    if not np.isfinite(score):  # a damaged model; NaN would also break the JSON output
        return Prediction(Path(path), None, error=f"the model gave a non-finite score ({score})")
    return Prediction(Path(path), score, windows=len(scores))


def iter_predictions(scorer: Scorer, paths: Iterable[str | Path], cfg: Config
                     ) -> Iterator[Prediction]:
    """Score every file under the given files and folders, yielding each as soon as it is
    scored; a path that cannot be used gives a Prediction with its error."""
    paths = list(paths)
    found = False
    for path, reason in list_inputs(paths):
        found = True
        yield Prediction(path, None, error=reason) if reason else score_file(scorer, path, cfg)
    if not found:
        raise LcnnError("no audio files found in: " + ", ".join(map(str, paths)))


def predict_paths(scorer: Scorer, paths: Iterable[str | Path], cfg: Config) -> list[Prediction]:
    """Score every file under the given files and folders (see iter_predictions)."""
    return list(iter_predictions(scorer, paths, cfg))
