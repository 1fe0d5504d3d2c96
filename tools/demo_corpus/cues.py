"""Simple per-clip measurements that would give the class away if they differed between classes.

Only numpy, scipy, soundfile and scikit-learn, so the corpus test can use them without the
builder's extras.
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
    "high_band_ratio_db",  # 4-8 kHz: where the telephone band ended and vocoders differ most
    "flatness_above_6k",
    "odd_sample_share",  # least significant bit: 0.5 unless something shaped the quantisation
    "bit1_share",  # the same for the second bit (a 14-bit codec output would give 0)
    "missing_small_values",  # sample-value histogram: share of the levels -64..63 never used
)
METADATA_FEATURES = ("speaker", "gender", "lang")  # one-hot columns for the cue classifier
FRAME_SECONDS = 0.01
SILENCE_DB = 30.0  # frames more than this many dB below the loudest frame count as silence


def _frame_db(x: np.ndarray, sr: int) -> np.ndarray:
    n = int(round(sr * FRAME_SECONDS))
    m = len(x) // n
    return 10.0 * np.log10(np.mean(x[: m * n].reshape(m, n) ** 2, axis=1) + 1e-20)


def _rolloff(freqs: np.ndarray, power: np.ndarray, fraction: float) -> float:
    cum = np.cumsum(power)
    return float(freqs[np.searchsorted(cum, fraction * cum[-1])])


def _flatness(power: np.ndarray) -> float:
    """Spectral flatness: geometric over arithmetic mean of a power spectrum (1 = white)."""
    return float(np.exp(np.mean(np.log(power + 1e-30))) / (np.mean(power) + 1e-30))


def measure(x: np.ndarray, sr: int) -> dict[str, float]:
    """The spectral and level cues of one mono float clip (full scale = 1.0)."""
    db = _frame_db(x, sr)
    loud = np.flatnonzero(db > db.max() - SILENCE_DB)
    freqs, power = welch(x, fs=sr, nperseg=512)
    total = power.sum() + 1e-20
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
        "low_band_ratio_db": float(10 * np.log10(power[freqs < 300].sum() / total + 1e-20)),
        "high_band_ratio_db": float(10 * np.log10(
            power[(freqs >= 4000) & (freqs <= 8000)].sum() / total + 1e-20)),
        "flatness_above_6k": _flatness(power[(freqs >= 6000) & (freqs < sr / 2)]),
    }


def measure_pcm(pcm: np.ndarray) -> dict[str, float]:
    """Quantisation fingerprints of int16 samples: low bits and gaps in the sample-value
    histogram near zero, where every clip (noise floor included) has many samples.

    A clip that was once coarser (8 or 14 bits, or scaled after quantisation) leaves levels
    or bit patterns unused. (A count of all distinct levels would mostly measure how wide the
    amplitude distribution is, not the quantisation.)
    """
    values = pcm.astype(np.int64)
    small = np.unique(values[(values >= -64) & (values < 64)])
    return {
        "odd_sample_share": float(np.mean(values & 1)),
        "bit1_share": float(np.mean((values >> 1) & 1)),
        "missing_small_values": 1.0 - len(small) / 128.0,
    }


def measure_file(path: str | Path) -> dict[str, float]:
    """All cues of one 16-bit audio file."""
    pcm, sr = sf.read(str(path), dtype="int16", always_2d=True)
    return measure(pcm.mean(axis=1) / 32768.0, sr) | measure_pcm(pcm[:, 0])


def features(measured: list[dict[str, float]], rows: list[dict[str, str]] | None = None,
             levels: dict[str, list[str]] | None = None) -> np.ndarray:
    """Cue matrix, with one-hot speaker, gender and language columns when `rows` are given.

    `levels` lists the values that get a column (those of the training rows); a value seen
    only in testing gets all zeros, as an unseen speaker should.
    """
    x = np.array([[m[c] for c in CUES] for m in measured])
    if rows is None:
        return x
    onehot = [[float(r[col] == v) for col in METADATA_FEATURES for v in levels[col]]
              for r in rows]
    return np.hstack([x, np.array(onehot)])


def cue_auc(train: list[dict[str, float]], train_labels: list[int],
            test: list[dict[str, float]], test_labels: list[int],
            train_rows: list[dict[str, str]] | None = None,
            test_rows: list[dict[str, str]] | None = None) -> float:
    """ROC-AUC on `test` of a logistic regression on standardised cues fitted on `train`.

    With `train_rows`/`test_rows` (metadata rows), speaker, gender and language are features
    too. Near 0.5 means these cues do not tell real from fake; 1.0 means a shortcut.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    levels = None
    if train_rows is not None:
        levels = {c: sorted({r[c] for r in train_rows}) for c in METADATA_FEATURES}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features(train, train_rows, levels), train_labels)
    scores = model.predict_proba(features(test, test_rows, levels))[:, 1]
    return float(roc_auc_score(test_labels, scores))
