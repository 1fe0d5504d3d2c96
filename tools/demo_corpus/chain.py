"""The one processing chain every demo clip goes through, real or fake.

Whatever differs between the classes after this chain is something a detector may learn, so
the chain makes bandwidth, leading silence, length, loudness and DC offset the same for all.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

RATE = 16000  # output rate, as in FoR for-2sec
BAND_RATE = 8000  # the real recordings are telephone speech: every clip is band-limited alike
CLIP_SECONDS = 2.0
PAD_SECONDS = 0.05  # leading silence put before the detected speech onset of every clip
FRAME_SECONDS = 0.01
TRIM_DB = 35.0  # a frame is speech if its energy is within this many dB of the loudest frame
TARGET_DBFS = -26.0  # RMS level of every clip
NOISE_DBFS = -60.0  # common noise floor added to every clip
PEAK_LIMIT = 0.98  # clips that would clip at the RMS target are rejected, not limited
FADE_SECONDS = 0.005
# A common telephone band-pass: removes DC and rumble below, and keeps the resampler's
# transition band identical above, whatever the generator put there.
_BAND_SOS = butter(4, [80.0, 3700.0], btype="bandpass", fs=BAND_RATE, output="sos")


def to_band(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample a mono signal to 8 kHz with soxr and apply the common telephone band-pass."""
    x = np.asarray(x, dtype=np.float64)
    if sr != BAND_RATE:
        x = soxr.resample(x, sr, BAND_RATE, quality="VHQ")
    return sosfiltfilt(_BAND_SOS, x)


def frame_db(x: np.ndarray, sr: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Energy in dB of consecutive non-overlapping frames."""
    n = max(1, int(round(sr * frame_seconds)))
    m = len(x) // n
    frames = x[: m * n].reshape(m, n)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def speech_span(x: np.ndarray, sr: int, trim_db: float = TRIM_DB) -> tuple[int, int] | None:
    """First and one-past-last sample of the frames within `trim_db` of the loudest frame."""
    db = frame_db(x, sr)
    if len(db) == 0:
        return None
    active = np.flatnonzero(db > db.max() - trim_db)
    n = int(round(sr * FRAME_SECONDS))
    return int(active[0]) * n, (int(active[-1]) + 1) * n


def onsets(x: np.ndarray, sr: int, min_gap_seconds: float = 0.15) -> list[int]:
    """Sample positions where speech starts after at least `min_gap_seconds` of silence.

    Used to cut long recordings into several clips that each start like a prompt does.
    """
    db = frame_db(x, sr)
    active = db > db.max() - TRIM_DB
    gap = int(round(min_gap_seconds / FRAME_SECONDS))
    n = int(round(sr * FRAME_SECONDS))
    found, quiet = [], gap  # the recording's start counts as a pause
    for i, a in enumerate(active):
        if a and quiet >= gap:
            found.append(i * n)
        quiet = 0 if a else quiet + 1
    return found


def noise_floor(n: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited white noise at NOISE_DBFS, shaped by the same chain as the speech."""
    m = int(np.ceil(n * BAND_RATE / RATE)) + 64
    w = to_band(rng.standard_normal(m), BAND_RATE)
    w = soxr.resample(w, BAND_RATE, RATE, quality="VHQ")[16 : 16 + n]
    return w * 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(w**2))


def make_clip(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray | None:
    """Turn one utterance into a finished 2-s clip at 16 kHz, or None if it is too short.

    Steps, identical for every clip: band-limit to 8 kHz and band-pass; find the speech onset
    (energy within TRIM_DB of the loudest frame); take the CLIP_SECONDS - PAD_SECONDS that
    follow it (the utterance must fill them: nothing is padded at the end); upsample to
    16 kHz with soxr; scale to TARGET_DBFS RMS; put PAD_SECONDS of silence in front; add the
    common noise floor (so digital silence in synthetic speech and the recordings' own room
    noise look alike); short fades; remove the mean; rescale to TARGET_DBFS.
    """
    y = to_band(x, sr)
    span = speech_span(y, BAND_RATE)
    n_pad = int(round(PAD_SECONDS * RATE))
    n_clip = int(round(CLIP_SECONDS * RATE))
    need = int(round((CLIP_SECONDS - PAD_SECONDS) * BAND_RATE))
    if span is None or span[1] - span[0] < need:
        return None
    margin = int(0.02 * BAND_RATE)  # context so the resampler has no edge inside the clip
    seg = y[span[0] : span[0] + need + margin]
    speech = soxr.resample(seg, BAND_RATE, RATE, quality="VHQ")[: n_clip - n_pad]
    if len(speech) < n_clip - n_pad:
        return None
    fade = np.linspace(0.0, 1.0, int(FADE_SECONDS * RATE))
    speech[: len(fade)] *= fade
    speech *= 10 ** (TARGET_DBFS / 20) / np.sqrt(np.mean(speech**2))
    z = np.concatenate([np.zeros(n_pad), speech]) + noise_floor(n_clip, rng)
    z[: len(fade)] *= fade
    z[-len(fade) :] *= fade[::-1]
    z -= z.mean()
    z *= 10 ** (TARGET_DBFS / 20) / np.sqrt(np.mean(z**2))
    if np.max(np.abs(z)) > PEAK_LIMIT:
        return None
    return z
