"""lcnn.channels: codec round trips (PyAV), phone band, synthetic rooms, noise at a given SNR."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from lcnn import channels
from lcnn.errors import LcnnError

FS = 16000


def voice(seconds: float = 1.0, fs: int = FS, seed: int = 0) -> np.ndarray:
    """A voiced-speech stand-in: a 120 Hz pulse train through two formant resonances, plus a
    little noise, at -20 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    x = np.zeros(n)
    x[:: fs // 120] = 1.0
    x += 0.05 * rng.standard_normal(n)
    for formant in (500, 1500):
        b, a = signal.iirpeak(formant, Q=5, fs=fs)
        x = signal.lfilter(b, a, x)
    x -= x.mean()
    return (0.1 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


def best_lag(x: np.ndarray, y: np.ndarray, max_lag: int = 200) -> int:
    lags = range(-max_lag, max_lag + 1)
    return max(lags, key=lambda k: np.dot(x[max_lag:-max_lag], np.roll(y, -k)[max_lag:-max_lag]))


@pytest.mark.parametrize(("codec", "bit_rate", "min_corr"), [
    ("mp3", 32000, 0.95), ("opus", 12000, 0.8), ("amr-nb", 12200, 0.8), ("g722", None, 0.95),
])
def test_codec_round_trip_is_aligned_close_and_lossy(codec, bit_rate, min_corr):
    x = voice()
    y = channels.codec_roundtrip(x, FS, codec, bit_rate)
    assert y.shape == x.shape and y.dtype == np.float32
    assert best_lag(x, y) == 0  # the codec's delay was removed
    assert min_corr < np.corrcoef(x, y)[0, 1] < 0.9999  # close, but not the input
    assert not np.allclose(x, y)


def test_lower_mp3_bit_rate_loses_more():
    x = voice()
    errors = [np.mean((channels.codec_roundtrip(x, FS, "mp3", r) - x) ** 2)
              for r in (16000, 64000)]
    assert errors[0] > 2 * errors[1]


def mulaw_step(x: np.ndarray, mu: float = 255.0, levels: int = 256) -> np.ndarray:
    """Quantisation step of an ideal mu-law compander at |x|: (dF/dx)^-1 * 2 / levels, with
    F(x) = ln(1 + mu |x|) / ln(1 + mu) (ITU-T G.711 approximates F with 8 linear segments)."""
    return (1 + mu * np.abs(x)) * np.log1p(mu) / mu * 2 / levels


@pytest.mark.parametrize("level", [0.3, 0.03, 0.003])
def test_g711_mulaw_error_follows_the_mu_law(level):
    t = np.arange(8000) / 8000
    x = (level * np.sin(2 * np.pi * 441 * t)).astype(np.float32)
    y = channels.codec_roundtrip(x, 8000, "g711-mulaw")  # at 8 kHz: no resampling involved
    error = np.abs(y - x)
    # a rounding quantiser errs by at most half a step; G.711's segments and the 16-to-14-bit
    # input conversion allow up to one step of the ideal law (+ one 14-bit unit)
    assert np.all(error <= mulaw_step(x) + 1 / 8192)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
    assert snr > 25  # companding: 8 bits keep > 25 dB even at -50 dBFS (linear 8-bit: ~1 dB)


def test_telephone_band_has_no_energy_above_3600_hz():
    x = voice()
    x = x + 0.05 * np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)
    y = channels.telephone(x, FS)
    assert y.shape == x.shape
    freqs, power = signal.welch(y, FS, nperseg=1024)
    assert power[freqs > 3600].sum() < 1e-4 * power.sum()
    t = np.arange(FS) / FS
    tone = np.sin(2 * np.pi * 1000 * t)
    passed = channels.telephone(tone, FS)
    assert np.corrcoef(tone[1000:-1000], passed[1000:-1000])[0, 1] > 0.999  # no delay
    hum = channels.telephone(np.sin(2 * np.pi * 100 * t), FS)
    assert np.std(hum[1000:-1000]) < 0.05 * np.std(tone)  # below the band


def schroeder_rt60(h: np.ndarray, fs: int) -> float:
    """RT60 from the Schroeder backward integral, line fitted between -5 and -35 dB (T30)."""
    energy = np.cumsum(h[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    fit = (decay_db <= -5) & (decay_db >= -35)
    slope, _ = np.polyfit(np.arange(len(h))[fit] / fs, decay_db[fit], 1)
    return -60 / slope


@pytest.mark.parametrize(("rt60", "drr_db"), [(0.3, 0.0), (0.8, 6.0), (0.5, -3.0)])
def test_synthetic_rir_has_the_requested_rt60_and_drr(rt60, drr_db):
    h = channels.synthetic_rir(FS, rt60, drr_db, np.random.default_rng(0))
    assert schroeder_rt60(h, FS) == pytest.approx(rt60, rel=0.05)
    assert 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2)) == pytest.approx(drr_db, abs=1e-9)


def test_reverb_keeps_length_and_timing():
    x = voice()
    y = channels.reverb(x, FS, 0.5, 0.0, np.random.default_rng(0))
    assert y.shape == x.shape
    assert y[0] == pytest.approx(x[0])  # causal, direct path first
    assert best_lag(x, y) == 0


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 0.0])
def test_add_noise_measured_snr_is_the_request(snr_db):
    x = voice()
    y = channels.add_noise(x, snr_db, np.random.default_rng(0))
    x64, noise = x.astype(np.float64), y.astype(np.float64) - x
    assert 10 * np.log10(np.sum(x64**2) / np.sum(noise**2)) == pytest.approx(snr_db, abs=0.01)


@pytest.mark.parametrize("name", list(channels.CONDITIONS))
def test_every_condition_keeps_length_and_is_repeatable(name):
    x = voice(0.5)
    fn = channels.condition(name)
    if fn is None:
        assert name == "clean"
        return
    a = fn(x, FS, np.random.default_rng(5))
    b = fn(x, FS, np.random.default_rng(5))
    assert a.shape == x.shape and np.all(np.isfinite(a)) and np.array_equal(a, b)
    assert not np.allclose(a, x)


def test_unknown_condition_and_codec_are_named():
    with pytest.raises(LcnnError, match="unknown condition 'mp4'"):
        channels.condition("mp4")
    with pytest.raises(LcnnError, match="unknown codec 'gsm'"):
        channels.codec_roundtrip(voice(0.1), FS, "gsm")


def test_random_draws_are_seeded():
    x = voice(0.5)
    for draw in (channels.random_codec, channels.random_reverb):
        a = draw(x, FS, np.random.default_rng(7))
        assert np.array_equal(a, draw(x, FS, np.random.default_rng(7)))
        assert a.shape == x.shape
