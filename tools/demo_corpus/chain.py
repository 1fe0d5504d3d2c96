"""The one processing chain every demo clip goes through, real or fake.

Whatever differs between the classes after this chain is something a detector may learn, so
the chain makes bandwidth, codec, leading silence, length, loudness and DC offset the same
for all.
"""

from __future__ import annotations

import io

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

RATE = 16000  # output rate, as in FoR for-2sec; the G.722 prompts are wideband 16 kHz
BAND_HZ = (60.0, 7000.0)  # G.722's audio band: every clip gets the same edges
CLIP_SECONDS = 2.0
PAD_SECONDS = 0.05  # leading silence put before the detected speech onset of every clip
FRAME_SECONDS = 0.01
TRIM_DB = 35.0  # a frame is speech if its energy is within this many dB of the loudest frame
TARGET_DBFS = -26.0  # RMS level of every clip
NOISE_DBFS = -60.0  # common noise floor added to every clip
PEAK_LIMIT = 0.9  # clips that would come near clipping at the RMS target are rejected
FADE_SECONDS = 0.005
G722_DELAY = 22  # samples the G.722 encoder + decoder pair delays the signal (QMF filters)
_BAND_SOS = butter(6, BAND_HZ, btype="bandpass", fs=RATE, output="sos")


def to_band(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample a mono signal to 16 kHz with soxr and apply the common band-pass."""
    x = np.asarray(x, dtype=np.float64)
    if sr != RATE:
        x = soxr.resample(x, sr, RATE, quality="VHQ")
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


def speech_segment(x: np.ndarray, sr: int, extra_seconds: float = 0.3) -> np.ndarray | None:
    """The part of an utterance a clip will use, plus context for a vocoder, at 16 kHz.

    Vocoding only this part (not the whole prompt) keeps the neural vocoders affordable;
    make_clip finds the same onset again in the vocoded copy.
    """
    need = int(round((CLIP_SECONDS - PAD_SECONDS) * RATE))
    if len(x) < need * sr / RATE:  # too short (some prompts are empty files)
        return None
    y = to_band(x, sr)
    span = speech_span(y, RATE)
    if span is None or span[1] - span[0] < need:
        return None
    extra = int(extra_seconds * RATE)
    return y[max(0, span[0] - extra) : span[0] + need + extra]


def noise_floor(n: int, rng: np.random.Generator) -> np.ndarray:
    """White noise at NOISE_DBFS, band-limited by the same filter as the speech."""
    w = to_band(rng.standard_normal(n + 512), RATE)[256 : 256 + n]
    return w * 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(w**2))


def g722_round_trip(pcm: np.ndarray) -> np.ndarray:
    """Encode int16 PCM at 16 kHz with G.722 (64 kbit/s, FFmpeg through PyAV) and decode it.

    The real prompts are G.722-coded; passing every clip through the codec once more gives
    real and fake clips the same codec fingerprint.
    """
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="g722") as out:
        stream = out.add_stream("g722", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.rate = RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, format="g722") as inp:
        decoded = [f.to_ndarray().ravel() for f in inp.decode(audio=0)]
    return np.concatenate(decoded)


def g722_pass(x: np.ndarray) -> np.ndarray:
    """One G.722 round trip of a float signal at 16 kHz (peak at half scale, 16-bit).

    The real prompts were G.722-coded once before the builder; a vocoded copy gets this
    pass too, so that after make_clip every clip, real or fake, has been through G.722 twice.
    """
    pcm = np.round(x * (0.5 / np.max(np.abs(x))) * 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(G722_DELAY + 64, np.int16)])
    return g722_round_trip(pcm)[G722_DELAY : G722_DELAY + len(x)] / 32768.0


def make_clip(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray | None:
    """Turn one utterance into a finished 2-s clip (int16 at 16 kHz), or None if it is too short.

    Steps, identical for every clip: resample to 16 kHz and band-pass 60-7000 Hz; find the
    speech onset (energy within TRIM_DB of the loudest frame); take the CLIP_SECONDS -
    PAD_SECONDS that follow it (the utterance must fill them: nothing is padded at the end);
    put PAD_SECONDS of silence in front; add the common noise floor (so digital silence in
    synthetic speech and the recordings' own room noise look alike); short fades; remove the
    mean; scale to TARGET_DBFS; quantise to 16 bits; one G.722 encode/decode round trip.
    """
    y = to_band(x, sr)
    span = speech_span(y, RATE)
    n_pad = int(round(PAD_SECONDS * RATE))
    n_clip = int(round(CLIP_SECONDS * RATE))
    if span is None or span[1] - span[0] < n_clip - n_pad:
        return None
    speech = y[span[0] : span[0] + n_clip - n_pad].copy()
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
    # the codec delays by G722_DELAY samples: give it that much signal past the clip's end
    pcm = np.round(np.concatenate([z, np.zeros(G722_DELAY + 64)]) * 32767).astype(np.int16)
    return g722_round_trip(pcm)[G722_DELAY : G722_DELAY + n_clip]
