"""Copy-synthesis: re-create a real recording through a vocoder, so only the vocoder differs."""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import lfilter

RATE = 8000  # the recordings' own rate; analysis and synthesis happen there
FRAME_MS = 5.0


def to_rate(x: np.ndarray, sr: int) -> np.ndarray:
    """The recording at 8 kHz, C-contiguous float64 as pyworld wants it."""
    if sr != RATE:
        x = soxr.resample(x, sr, RATE, quality="VHQ")
    return np.ascontiguousarray(x, dtype=np.float64)


def world(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """WORLD analysis (Harvest F0, CheapTrick envelope, D4C aperiodicity) and resynthesis."""
    import pyworld

    x = to_rate(x, sr)
    f0, t = pyworld.harvest(x, RATE, frame_period=FRAME_MS)
    sp = pyworld.cheaptrick(x, f0, t, RATE)
    ap = pyworld.d4c(x, f0, t, RATE)
    return pyworld.synthesize(f0, sp, ap, RATE, frame_period=FRAME_MS), RATE


def griffin_lim(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Keep the STFT magnitude, throw the phase away, and let Griffin-Lim estimate it."""
    import librosa

    x = to_rate(x, sr)
    n_fft, hop = 256, 64  # 32 ms / 8 ms at 8 kHz
    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
    seed = int(rng.integers(2**31))
    y = librosa.griffinlim(mag, n_iter=32, hop_length=hop, n_fft=n_fft, length=len(x),
                           random_state=seed)
    return y, RATE


def _excitation(f0: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pulse train where F0 > 0 (voiced), white noise elsewhere."""
    per_sample = np.interp(np.arange(n), np.arange(len(f0)) * FRAME_MS / 1000 * RATE, f0)
    voiced = per_sample > 0
    phase = np.cumsum(np.where(voiced, per_sample, 0.0) / RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0) > 0
    period = RATE / np.maximum(per_sample, 1.0)
    return np.where(voiced, pulses * np.sqrt(period), rng.standard_normal(n))


def lpc(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Classic LPC-10-style vocoder: per-frame all-pole filter driven by pulses or noise."""
    import librosa
    import pyworld

    x = to_rate(x, sr)
    f0, t = pyworld.dio(x, RATE, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, RATE)
    exc = _excitation(f0, len(x), rng)
    size, hop, order = 200, 100, 10  # 25 ms Hann frames, 50 % overlap
    window = np.hanning(size)
    out = np.zeros(len(x) + size)
    for start in range(0, len(x) - size, hop):
        frame = x[start : start + size] * window
        if np.sum(frame**2) < 1e-10:
            continue
        a = librosa.lpc(frame, order=order)
        if not np.all(np.isfinite(a)):
            continue
        gain = np.sqrt(np.mean(lfilter(a, [1.0], frame) ** 2))
        out[start : start + size] += lfilter([gain], a, exc[start : start + size]) * window
    return out[: len(x)], RATE
