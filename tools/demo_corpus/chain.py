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
CREST_DB = 11.0  # peaks are limited to this many dB above the RMS target
LIMITER_SECONDS = 0.005  # half-width of the limiter's gain window
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


def match_spectrum(y: np.ndarray, ref: np.ndarray, max_db: float = 12.0) -> np.ndarray:
    """Filter a vocoded copy so its long-term spectrum matches the recording it copies.

    Vocoders lose or add energy in whole bands (most lose some above 4 kHz): a difference in
    spectral balance that simple band-energy cues catch without any artefact being heard.
    A linear-phase FIR with the smoothed square root of the two Welch spectra's ratio
    (at most +-max_db) removes it and leaves the vocoder's fine structure alone.
    """
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import fftconvolve, firwin2, welch

    freqs, p_ref = welch(ref, fs=RATE, nperseg=512)
    _, p_y = welch(y, fs=RATE, nperseg=512)
    smooth = 9  # bins of 31.25 Hz: about 280 Hz
    ratio = uniform_filter1d(p_ref, smooth) / np.maximum(uniform_filter1d(p_y, smooth), 1e-20)
    limit = 10 ** (max_db / 10)
    taps = firwin2(513, freqs, np.sqrt(np.clip(ratio, 1 / limit, limit)), fs=RATE)
    return fftconvolve(y, taps, mode="same")


def g722_pass(x: np.ndarray) -> np.ndarray:
    """One G.722 round trip of a float signal at 16 kHz (peak at half scale, 16-bit).

    The real prompts were G.722-coded once before the builder; a vocoded copy gets this
    pass too, so that after make_clip every clip, real or fake, has been through G.722 twice.
    """
    pcm = np.round(x * (0.5 / np.max(np.abs(x))) * 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(G722_DELAY + 64, np.int16)])
    return g722_round_trip(pcm)[G722_DELAY : G722_DELAY + len(x)] / 32768.0


def limit_peaks(x: np.ndarray, ceiling: float) -> np.ndarray:
    """Look-ahead peak limiter: a gain that keeps |x| <= ceiling and changes over 10 ms.

    Vocoders make waveforms with higher peaks than the recordings for the same loudness (a
    level cue a detector could use without hearing the artefacts); every clip is limited alike.
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

    width = 2 * int(LIMITER_SECONDS * RATE) + 1
    gain = np.minimum(1.0, ceiling / np.maximum(maximum_filter1d(np.abs(x), width), 1e-12))
    # the minimum over a window, then its mean over the same window, stays below the gain
    # each peak needs, so the smoothed gain still keeps every sample under the ceiling
    return x * uniform_filter1d(minimum_filter1d(gain, width), width)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def make_clip(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray | None:
    """Turn one utterance into a finished 2-s clip (int16 at 16 kHz), or None if it is too short.

    Steps, identical for every clip: resample to 16 kHz and band-pass 60-7000 Hz; find the
    speech onset (energy within TRIM_DB of the loudest frame); take the CLIP_SECONDS -
    PAD_SECONDS that follow it (the utterance must fill them: nothing is padded at the end);
    scale to TARGET_DBFS and limit peaks to CREST_DB above it; put PAD_SECONDS of silence in
    front; add the common noise floor (so digital silence in synthetic speech and the
    recordings' own room noise look alike); short fades; remove the mean; quantise to 16 bits
    and make one G.722 encode/decode round trip, with the gain set so that the decoded clip
    is at TARGET_DBFS; limit the decoded clip's peaks again, rescale, remove its mean and
    round to 16 bits.
    """
    y = to_band(x, sr)
    span = speech_span(y, RATE)
    n_pad = int(round(PAD_SECONDS * RATE))
    n_clip = int(round(CLIP_SECONDS * RATE))
    if span is None or span[1] - span[0] < n_clip - n_pad:
        return None
    target = 10 ** (TARGET_DBFS / 20)
    speech = y[span[0] : span[0] + n_clip - n_pad].copy()
    fade = np.linspace(0.0, 1.0, int(FADE_SECONDS * RATE))
    speech[: len(fade)] *= fade
    for _ in range(2):  # limiting lowers the RMS a little: limit again after rescaling
        speech *= target / _rms(speech)
        speech = limit_peaks(speech, target * 10 ** (CREST_DB / 20))
    z = np.concatenate([np.zeros(n_pad), speech]) + noise_floor(n_clip, rng)
    z[: len(fade)] *= fade
    z[-len(fade) :] *= fade[::-1]
    z -= z.mean()
    gain = 32767 * target / _rms(z)
    for _ in range(2):  # the codec changes the level a little, more for some clips than others
        # it delays by G722_DELAY samples: give it that much signal past the clip's end
        pcm = np.round(np.concatenate([z * gain, np.zeros(G722_DELAY + 64)]))
        if np.max(np.abs(pcm)) > PEAK_LIMIT * 32767:
            return None
        out = g722_round_trip(pcm.astype(np.int16))[G722_DELAY : G722_DELAY + n_clip]
        gain *= 32767 * target / _rms(out)
    # the codec raises some peaks again, vocoded ones more: limit the decoded clip too
    ceiling = 32767 * target * 10 ** (CREST_DB / 20)
    y = out.astype(np.float64)
    for _ in range(4):  # each pass lowers the RMS less: the last rescaling moves peaks by ~0
        y = limit_peaks(y * 32767 * target / _rms(y), ceiling)
    return np.round(y * 32767 * target / _rms(y) - y.mean()).astype(np.int16)
