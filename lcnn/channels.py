"""What happens to audio between the speaker and the detector: codecs, phone lines, rooms, noise.

Every channel takes a float32 mono waveform at `fs` Hz and returns one of the same length,
time-aligned with the input. They are used twice: `evaluate --condition NAME` passes a split
through one fixed channel (CONDITIONS) to measure robustness, and training can cache
randomised variants (`random_codec`, `random_reverb`, see lcnn.detector.data).

Codecs run through PyAV (FFmpeg's libraries, bundled in the `av` wheels): MP3 (LAME),
Opus, AMR-NB (OpenCORE), G.711 mu-law and A-law, G.722. The `av` wheels hold no GSM or
Speex encoder (decoders only), so those codecs are not offered. scipy.signal is imported
inside the functions that need it: the command line lists CONDITIONS without waiting for it.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
import soxr

from lcnn.errors import LcnnError

# name: (FFmpeg encoder, container, sample rate, bit rates in bit/s; None = the codec's only one)
CODECS: dict[str, tuple[str, str, int, tuple[int | None, ...]]] = {
    "mp3": ("libmp3lame", "mp3", 16000, (16000, 24000, 32000, 64000)),
    "opus": ("libopus", "ogg", 16000, (8000, 12000, 16000, 24000)),
    "amr-nb": ("libopencore_amrnb", "amr", 8000, (4750, 7400, 12200)),
    "g711-mulaw": ("pcm_mulaw", "wav", 8000, (None,)),
    "g711-alaw": ("pcm_alaw", "wav", 8000, (None,)),
    "g722": ("g722", "wav", 16000, (None,)),
}
MAX_DELAY = 4000  # samples: codec delays are far shorter (AMR-NB about 80 at 16 kHz)
TELEPHONE_BAND = (300.0, 3400.0)  # Hz, the ITU-T G.712 voice channel
Channel = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x if rate_in == rate_out else soxr.resample(x, rate_in, rate_out, quality="HQ")


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """x cut or zero-padded at the end to n samples."""
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), x.dtype)])


def _encode_decode(x: np.ndarray, codec: str, bit_rate: int | None) -> tuple[np.ndarray, int]:
    """One codec round trip at the codec's own rate (x is already at that rate), no alignment.
    Returns the decoded float32 mono samples and their rate."""
    import av

    encoder, container, rate, _ = CODECS[codec]
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=container) as out:
            stream = out.add_stream(encoder, rate=rate, layout="mono")
            if bit_rate:
                stream.bit_rate = bit_rate
            frame = av.AudioFrame.from_ndarray(
                np.clip(x, -1, 1).astype(np.float32)[None, :], format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
    except (av.error.FFmpegError, ValueError) as error:  # e.g. an `av` build without LAME
        raise LcnnError(f"cannot encode {codec} with PyAV/FFmpeg: {error}") from None
    buffer.seek(0)
    to_float = av.AudioResampler(format="flt", layout="mono")
    parts, out_rate = [], rate
    with av.open(buffer, "r") as inp:
        for frame in inp.decode(audio=0):
            out_rate = frame.sample_rate
            parts += [f.to_ndarray().reshape(-1) for f in to_float.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in to_float.resample(None)]
    return np.concatenate(parts).astype(np.float32), out_rate


@functools.cache
def codec_delay(codec: str, bit_rate: int | None, fs: int) -> int:
    """Samples (at fs) by which a round trip through the codec lags its input.

    Measured once per setting on a fixed noise probe (band-limited to 100-3,000 Hz so that
    narrow-band codecs keep it): the lag of the cross-correlation peak.
    """
    from scipy import signal

    rng = np.random.default_rng(0)
    sos = signal.butter(4, [100, 3000], btype="bandpass", fs=fs, output="sos")
    probe = 0.1 * signal.sosfilt(sos, rng.standard_normal(fs)).astype(np.float32)
    y = _roundtrip_unaligned(probe, fs, codec, bit_rate)
    corr = signal.correlate(y[: len(probe) + MAX_DELAY], probe, mode="full", method="fft")
    lags = signal.correlation_lags(min(len(y), len(probe) + MAX_DELAY), len(probe), "full")
    keep = (lags >= 0) & (lags <= MAX_DELAY)
    return int(lags[keep][np.argmax(corr[keep])])


def _roundtrip_unaligned(x: np.ndarray, fs: int, codec: str, bit_rate: int | None) -> np.ndarray:
    rate = CODECS[codec][2]
    y, out_rate = _encode_decode(_resample(x, fs, rate), codec, bit_rate)
    return _resample(y, out_rate, fs)


def codec_roundtrip(x: np.ndarray, fs: int, codec: str, bit_rate: int | None = None) -> np.ndarray:
    """x encoded and decoded with `codec` (a key of CODECS) at `bit_rate` bit/s.

    Resampled to the codec's rate and back with soxr where needed (8 kHz for AMR-NB and
    G.711), then shifted by the codec's delay so the output lines up with x, same length.
    """
    if codec not in CODECS:
        raise LcnnError(f"unknown codec {codec!r}: expected one of {', '.join(CODECS)}")
    if len(x) == 0:
        return np.zeros(0, np.float32)
    delay = codec_delay(codec, bit_rate, fs)
    y = _roundtrip_unaligned(x, fs, codec, bit_rate)
    return _fit(y[delay:], len(x))


def telephone(x: np.ndarray, fs: int) -> np.ndarray:
    """A narrow-band phone line: 8 kHz sampling and a 300-3,400 Hz band-pass, back at fs."""
    from scipy import signal

    narrow = _resample(x, fs, 8000)
    sos = signal.butter(6, TELEPHONE_BAND, btype="bandpass", fs=8000, output="sos")
    narrow = signal.sosfiltfilt(sos, narrow).astype(np.float32)  # zero phase: no delay
    return _fit(_resample(narrow, 8000, fs), len(x))


def synthetic_rir(fs: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response from the statistical (Polack) model.

    A direct-path impulse at t = 0 followed by Gaussian noise whose envelope decays by
    60 dB in rt60 seconds (energy ~ exp(-6 ln(10) t / rt60)), the tail scaled so that
    the direct-to-reverberant energy ratio is drr_db. Length 1.2 * rt60.
    """
    n = max(2, int(1.2 * rt60 * fs))
    t = np.arange(1, n) / fs
    tail = rng.standard_normal(n - 1) * 10 ** (-3 * t / rt60)  # amplitude: -60 dB at rt60
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def reverb(x: np.ndarray, fs: int, rt60: float, drr_db: float,
           rng: np.random.Generator) -> np.ndarray:
    """x convolved with a synthetic room response (see synthetic_rir), same length."""
    from scipy import signal

    h = synthetic_rir(fs, rt60, drr_db, rng)
    return signal.oaconvolve(np.asarray(x, np.float64), h)[: len(x)].astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """x plus white Gaussian noise scaled so that the SNR (signal / noise power) is snr_db."""
    x = np.asarray(x, dtype=np.float64)
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(np.sum(x**2) / (np.sum(noise**2) * 10 ** (snr_db / 10)))
    return (x + noise).astype(np.float32)


# ------------------------------------------------------------------ conditions and training draws

CONDITIONS: dict[str, Channel | None] = {
    "clean": None,
    "mp3-32k": lambda x, fs, rng: codec_roundtrip(x, fs, "mp3", 32000),
    "opus-12k": lambda x, fs, rng: codec_roundtrip(x, fs, "opus", 12000),
    "amr-nb": lambda x, fs, rng: codec_roundtrip(x, fs, "amr-nb", 12200),
    "g711": lambda x, fs, rng: codec_roundtrip(x, fs, "g711-mulaw"),
    "telephone": lambda x, fs, rng: telephone(x, fs),
    "reverb": lambda x, fs, rng: reverb(x, fs, rt60=0.5, drr_db=0.0, rng=rng),
    "noise-20db": lambda x, fs, rng: add_noise(x, 20.0, rng),
    "noise-10db": lambda x, fs, rng: add_noise(x, 10.0, rng),
}


def condition(name: str) -> Channel | None:
    """The channel of a robustness condition (None for clean); LcnnError for unknown names."""
    if name not in CONDITIONS:
        raise LcnnError(f"unknown condition {name!r}: expected all or one of "
                        f"{', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def random_codec(x: np.ndarray, fs: int, rng: np.random.Generator) -> np.ndarray:
    """A round trip through a random codec of CODECS at one of its bit rates."""
    codec = list(CODECS)[rng.integers(len(CODECS))]
    rates = CODECS[codec][3]
    return codec_roundtrip(x, fs, codec, rates[rng.integers(len(rates))])


def random_reverb(x: np.ndarray, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Reverberation with RT60 uniform in 0.2-1.0 s and DRR uniform in -3 to 10 dB."""
    return reverb(x, fs, rt60=rng.uniform(0.2, 1.0), drr_db=rng.uniform(-3, 10), rng=rng)
