"""RawBoost: signal-dependent noise for raw-waveform anti-spoofing, in numpy.

Tak, Kamble, Patino, Todisco and Evans, "RawBoost: A Raw Data Boosting and Augmentation
Method applied to Automatic Speaker Verification Anti-Spoofing", ICASSP 2022
(arXiv 2111.04433). Reference code: github.com/TakHemlata/RawBoost-antispoofing (MIT).
The defaults are the reference code's defaults. Three algorithms:

1. linear and non-linear convolutive noise: y = sum_{j=1..N_f} b_j * x^j, each b_j a
   cascade of random band-stop (notch) FIR filters, the non-linear terms 5-20 dB quieter
   (a channel that both colours and distorts);
2. impulsive signal-dependent noise: a random fraction (0 to P %) of the samples gets
   x[n] * g * f, f the product of two uniform(-1, 1) draws (clipping, bad connections);
3. stationary signal-independent noise: white noise coloured by a random notch cascade,
   added at a random SNR (10-40 dB).

`rawboost(x, rng, algos="12")` applies several in series, as the paper's "series" modes do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from lcnn import channels


@dataclass(frozen=True)
class RawBoostParams:
    """Ranges each random draw is taken from (uniform); defaults from the reference code."""

    n_bands: int = 5  # notch filters per cascade
    f_range: tuple[float, float] = (20.0, 8000.0)  # centre frequencies, Hz (capped at fs/2)
    bw_range: tuple[float, float] = (100.0, 1000.0)  # notch widths, Hz
    taps_range: tuple[int, int] = (10, 100)  # FIR length of each notch (made odd)
    gain_db_range: tuple[float, float] = (0.0, 0.0)  # peak gain of the linear term
    nonlinear_bias_db: tuple[float, float] = (5.0, 20.0)  # non-linear terms this much quieter
    n_f: int = 5  # highest power of x (1 = linear only)
    impulse_percent: float = 10.0  # P: up to this % of samples get impulsive noise
    impulse_gain: float = 2.0  # g_sd
    snr_db_range: tuple[float, float] = (10.0, 40.0)  # stationary noise


DEFAULT = RawBoostParams()


def peak_normalize(x: np.ndarray) -> np.ndarray:
    """Scale x down to a peak of 1 if it exceeds 1 (as the reference's normWav)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x / peak if peak > 1.0 else x


def notch_filter(centres, widths, taps, gain_db: float, fs: int) -> np.ndarray:
    """FIR coefficients of a cascade of Hamming-window band-stop filters.

    Band i stops [centre - width/2, centre + width/2] Hz (kept inside (0, fs/2)) with an FIR
    of taps[i] coefficients (made odd: a band-stop FIR needs an odd length). The cascade is
    scaled so that its largest gain (on scipy.signal.freqz's 512-point grid) is gain_db.
    """
    b = np.ones(1)
    for fc, bw, n in zip(centres, widths, taps, strict=True):
        n = int(n) + 1 - int(n) % 2
        lo = max(fc - bw / 2, 1e-3)
        hi = min(fc + bw / 2, fs / 2 - 1e-3)
        b = np.convolve(b, signal.firwin(n, [lo, hi], window="hamming", fs=fs))
    _, h = signal.freqz(b, 1, fs=fs)
    return 10 ** (gain_db / 20) * b / np.max(np.abs(h))


def random_notch_filter(rng: np.random.Generator, fs: int, gain_db_range: tuple[float, float],
                        p: RawBoostParams = DEFAULT) -> np.ndarray:
    """A notch cascade with p.n_bands random bands and a random peak gain."""
    n = p.n_bands
    centres = rng.uniform(p.f_range[0], min(p.f_range[1], fs / 2), n)
    widths = rng.uniform(*p.bw_range, n)
    taps = rng.integers(p.taps_range[0], p.taps_range[1], n, endpoint=False)
    return notch_filter(centres, widths, taps, rng.uniform(*gain_db_range), fs)


def fir_same(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x filtered by the linear-phase FIR b, its group delay removed (same length as x)."""
    return signal.oaconvolve(x, b, mode="same")


def convolutive(x: np.ndarray, filters: list[np.ndarray]) -> np.ndarray:
    """Algorithm 1 with given filters: sum_j filters[j] * x^(j+1), DC removed, peak <= 1."""
    x = np.asarray(x, dtype=np.float64)
    y = sum(fir_same(x ** (j + 1), b) for j, b in enumerate(filters))
    return peak_normalize(y - np.mean(y))


def lnl_convolutive_noise(x: np.ndarray, rng: np.random.Generator, fs: int = 16000,
                          p: RawBoostParams = DEFAULT) -> np.ndarray:
    """Algorithm 1: linear and non-linear convolutive noise with random notch cascades."""
    bias = p.nonlinear_bias_db
    nonlinear_gain = (p.gain_db_range[0] - bias[1], p.gain_db_range[1] - bias[0])
    filters = [random_notch_filter(rng, fs, p.gain_db_range if j == 0 else nonlinear_gain, p)
               for j in range(p.n_f)]
    return convolutive(x, filters)


def impulsive(x: np.ndarray, positions: np.ndarray, factors: np.ndarray,
              gain: float) -> np.ndarray:
    """Algorithm 2 at given positions: y[n] = x[n] (1 + gain * factors) there, peak <= 1."""
    y = np.array(x, dtype=np.float64)
    y[positions] += gain * y[positions] * factors
    return peak_normalize(y)


def isd_additive_noise(x: np.ndarray, rng: np.random.Generator,
                       p: RawBoostParams = DEFAULT) -> np.ndarray:
    """Algorithm 2: impulsive signal-dependent noise on a random 0-P % of the samples."""
    share = rng.uniform(0, p.impulse_percent) / 100
    positions = rng.permutation(len(x))[: int(len(x) * share)]
    factors = rng.uniform(-1, 1, len(positions)) * rng.uniform(-1, 1, len(positions))
    return impulsive(x, positions, factors, p.impulse_gain)


def ssi_additive_noise(x: np.ndarray, rng: np.random.Generator, fs: int = 16000,
                       p: RawBoostParams = DEFAULT) -> np.ndarray:
    """Algorithm 3: white noise through a random notch cascade, added at a random SNR."""
    x = np.asarray(x, dtype=np.float64)
    noise = fir_same(rng.standard_normal(len(x)), random_notch_filter(rng, fs, p.gain_db_range, p))
    snr_db = rng.uniform(*p.snr_db_range)
    noise *= np.linalg.norm(x) / (np.linalg.norm(noise) * 10 ** (snr_db / 20))
    return x + noise


def rawboost(x: np.ndarray, rng: np.random.Generator, algos: str = "12", fs: int = 16000,
             p: RawBoostParams = DEFAULT) -> np.ndarray:
    """Apply the algorithms named by the digits of `algos` in series ("12" = 1 then 2)."""
    steps = {
        "1": lambda y: lnl_convolutive_noise(y, rng, fs, p),
        "2": lambda y: isd_additive_noise(y, rng, p),
        "3": lambda y: ssi_additive_noise(y, rng, fs, p),
    }
    check_algos(algos)
    y = np.asarray(x, dtype=np.float64)
    for a in algos:
        y = steps[a](y)
    return y.astype(np.float32)


def check_algos(algos: str) -> str:
    """`algos` if it names RawBoost algorithms ("1", "2", "3", in series: "12", "123"...)."""
    if not algos or any(a not in "123" for a in algos):
        raise ValueError(f"RawBoost algorithms must be digits 1-3 (e.g. 12), not {algos!r}")
    return algos


def rawboost_groups(setting: str) -> list[str]:
    """The series of a Config's augment_rawboost, one per RawBoost copy in turn: "12" -> ["12"],
    "12,3" -> ["12", "3"] (copies alternate between 1 then 2, and 3 alone); "" (off) -> []."""
    return [check_algos(group) for group in setting.split(",")] if setting else []


# ------------------------------------------------------------------ cached training variants


def channel_kinds(cfg) -> list[str]:
    """The channel augmentations a Config switches on, in a fixed order."""
    kinds = [k for k in ("codec", "reverb", "telephone") if getattr(cfg, f"augment_{k}")]
    groups = rawboost_groups(cfg.augment_rawboost)  # none when off
    kinds += ["rawboost"] if len(groups) == 1 else [f"rawboost:{g}" for g in groups]
    return kinds


def variant(x: np.ndarray, kind: str, fs: int, rng: np.random.Generator,
            algos: str = "12") -> np.ndarray:
    """x through one random draw of one kind of channel (see channel_kinds; "rawboost:3"
    names its own algorithms, "rawboost" takes `algos`)."""
    if kind == "codec":
        return channels.random_codec(x, fs, rng)
    if kind == "reverb":
        return channels.random_reverb(x, fs, rng)
    if kind == "telephone":
        return channels.telephone(x, fs)
    if kind == "rawboost":
        return rawboost(x, rng, algos, fs)
    if kind.startswith("rawboost:"):
        return rawboost(x, rng, kind.removeprefix("rawboost:"), fs)
    raise ValueError(f"unknown augmentation kind {kind!r}")
