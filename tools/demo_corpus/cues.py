"""Simple per-clip measurements that would give the class away if they differed between classes.

Only numpy, scipy and soundfile, so the corpus test can use them without the builder's extras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import welch

CUES = (
    "duration_s",
    "rms_dbfs",
    "peak_dbfs",
    "lead_silence_s",
    "trail_silence_s",
    "dc_offset",
    "rolloff99_hz",
    "rolloff85_hz",
    "noise_floor_dbfs",
    "low_band_ratio_db",
)
FRAME_SECONDS = 0.01
SILENCE_DB = 30.0  # frames more than this many dB below the loudest frame count as silence


def _frame_db(x: np.ndarray, sr: int) -> np.ndarray:
    n = int(round(sr * FRAME_SECONDS))
    m = len(x) // n
    return 10.0 * np.log10(np.mean(x[: m * n].reshape(m, n) ** 2, axis=1) + 1e-20)


def _rolloff(freqs: np.ndarray, power: np.ndarray, fraction: float) -> float:
    cum = np.cumsum(power)
    return float(freqs[np.searchsorted(cum, fraction * cum[-1])])


def measure(x: np.ndarray, sr: int) -> dict[str, float]:
    """All cues of one mono float clip (full scale = 1.0)."""
    db = _frame_db(x, sr)
    loud = np.flatnonzero(db > db.max() - SILENCE_DB)
    freqs, power = welch(x, fs=sr, nperseg=512)
    low = power[freqs < 300].sum() / (power.sum() + 1e-20)
    return {
        "duration_s": len(x) / sr,
        "rms_dbfs": float(10 * np.log10(np.mean(x**2) + 1e-20)),
        "peak_dbfs": float(20 * np.log10(np.max(np.abs(x)) + 1e-10)),
        "lead_silence_s": float(loud[0] * FRAME_SECONDS),
        "trail_silence_s": float((len(db) - 1 - loud[-1]) * FRAME_SECONDS),
        "dc_offset": float(np.mean(x)),
        "rolloff99_hz": _rolloff(freqs, power, 0.99),
        "rolloff85_hz": _rolloff(freqs, power, 0.85),
        "noise_floor_dbfs": float(np.percentile(db, 5)),
        "low_band_ratio_db": float(10 * np.log10(low + 1e-20)),
    }


def measure_file(path: str | Path) -> dict[str, float]:
    """Cues of one WAV file."""
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return measure(x.mean(axis=1), sr)


def cue_auc(train: list[dict[str, float]], train_labels: list[int],
            test: list[dict[str, float]], test_labels: list[int]) -> float:
    """ROC-AUC on `test` of a logistic regression on standardised cues fitted on `train`.

    Near 0.5 means the simple cues do not tell real from fake; 1.0 means a shortcut.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def matrix(rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([[r[c] for c in CUES] for r in rows])

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(matrix(train), train_labels)
    return float(roc_auc_score(test_labels, model.predict_proba(matrix(test))[:, 1]))
