"""Score your own audio: files and folders, any length.

A file longer than one clip is cut into windows of one clip length with 50 % overlap (the last
window is aligned to the end of the file, so no audio is dropped); each window is scored and the
file's score is the mean of the window scores, so a long file is judged on all of it. A file
shorter than a clip is padded. Scores are the model's raw output, higher = more fake; they are
not probabilities (lcnn.detector.calibration turns them into LLRs and probabilities of fake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcnn.audio import fix_length, load_audio, sliding_windows
from lcnn.config import Config
from lcnn.dataset import audio_files
from lcnn.errors import AudioError, LcnnError

Scorer = Callable[[np.ndarray], np.ndarray]  # [windows, n_samples] -> [windows] raw scores


@dataclass
class Prediction:
    path: Path
    score: float | None  # raw score (higher = more fake), None when the file could not be read
    windows: int = 0
    error: str | None = None

    def verdict(self, threshold: float = 0.5) -> str:
        if self.score is None:
            return "error"
        return "fake" if self.score >= threshold else "real"


def predict_scores(model, dataset) -> np.ndarray:
    """Raw score (higher = more fake) of every clip of a (non-shuffled) dataset."""
    return np.asarray(model.predict(dataset, verbose=0)).reshape(-1)


def keras_scorer(model) -> Scorer:
    """Wrap a Keras model as a Scorer."""
    return lambda x: np.asarray(model.predict_on_batch(x)).reshape(-1)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for audio files (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += audio_files(p)
        else:
            out.append(p)  # a missing file is reported when it is read
    return out


def clip_windows(x: np.ndarray, cfg: Config) -> np.ndarray:
    """The windows a waveform is scored on: [k, n_samples], 50 % overlap."""
    n = cfg.n_samples
    if len(x) <= n:
        return fix_length(x, n, mode="start")[None, :]
    return sliding_windows(x, n, hop=n // 2)


def score_file(scorer: Scorer, path: str | Path, cfg: Config) -> Prediction:
    """Score one file; an unreadable file gives a Prediction with its error instead."""
    try:
        windows = clip_windows(load_audio(path, cfg.sample_rate), cfg)
    except AudioError as e:
        return Prediction(Path(path), None, error=e.reason)
    scores = scorer(windows.astype(np.float32))
    return Prediction(Path(path), float(np.mean(scores)), windows=len(windows))


def predict_paths(scorer: Scorer, paths: Iterable[str | Path], cfg: Config) -> list[Prediction]:
    """Score every file under the given files and folders."""
    files = expand_paths(paths)
    if not files:
        raise LcnnError("no audio files found in: " + ", ".join(map(str, paths)))
    return [score_file(scorer, f, cfg) for f in files]
