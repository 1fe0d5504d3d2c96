"""lcnn.augment: each RawBoost algorithm against its definition (Tak et al., ICASSP 2022)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats

from lcnn import augment

FS = 16000


def speechlike(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Band-limited noise at -20 dBFS RMS with no exact zeros."""
    rng = np.random.default_rng(seed)
    sos = signal.butter(4, [100, 4000], btype="bandpass", fs=FS, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(int(FS * seconds)))
    return 0.1 * x / np.sqrt(np.mean(x**2))


def tone_level_db(y: np.ndarray, freq: float) -> float:
    """Level of a sinusoid at `freq` (dB), from the projection on sin/cos."""
    t = np.arange(len(y)) / FS
    a = 2 * np.mean(y * np.sin(2 * np.pi * freq * t))
    b = 2 * np.mean(y * np.cos(2 * np.pi * freq * t))
    return 20 * np.log10(np.hypot(a, b) + 1e-20)


def test_notch_filter_stops_its_bands_and_peaks_at_the_gain():
    b = augment.notch_filter([1000, 5000], [400, 800], [101, 99], gain_db=-6, fs=FS)
    freqs, h = signal.freqz(b, 1, worN=8192, fs=FS)
    gain = 20 * np.log10(np.abs(h) + 1e-12)
    assert gain.max() == pytest.approx(-6, abs=0.05)  # scaled on a 512-point grid
    for centre in (1000, 5000):
        assert gain[np.argmin(np.abs(freqs - centre))] < -6 - 20
    assert gain[np.argmin(np.abs(freqs - 3000))] > -6 - 1  # between the notches: passes
    assert np.allclose(b, b[::-1])  # linear phase, so fir_same adds no delay


def test_fir_same_is_the_centred_convolution():
    x = speechlike(0.1)
    b = augment.notch_filter([2000], [500], [31], 0, FS)
    full = np.convolve(x, b)  # direct definition; the delay of a 31-tap FIR is 15
    assert np.allclose(augment.fir_same(x, b), full[15 : 15 + len(x)])


def test_convolutive_sums_filtered_powers_of_x():
    x = speechlike(0.25)
    filters = [augment.notch_filter([1000 * (j + 1)], [300], [51], -5 * j, FS) for j in range(3)]
    expected = sum(np.convolve(x ** (j + 1), b)[25 : 25 + len(x)] for j, b in enumerate(filters))
    assert np.allclose(augment.convolutive(x, filters), expected - expected.mean())


def test_nonlinear_terms_add_harmonics_below_the_fundamental():
    t = np.arange(FS) / FS
    x = 0.5 * np.sin(2 * np.pi * 500 * t)
    params = augment.RawBoostParams(n_f=3, f_range=(7000, 8000), bw_range=(100, 200))
    y = augment.lnl_convolutive_noise(x, np.random.default_rng(0), FS, params)
    fundamental = tone_level_db(y, 500)
    assert tone_level_db(x, 1000) < -200  # a pure tone has no harmonic ...
    # ... x^2 puts one at 1 kHz and x^3 at 1.5 kHz, at least the 5 dB bias below the linear
    # term (which the notches at 7-8 kHz leave alone)
    for harmonic in (1000, 1500):
        assert -120 < tone_level_db(y, harmonic) < fundamental - 5


def test_linear_only_changes_the_spectrum_not_the_level_order():
    x = speechlike()
    params = augment.RawBoostParams(n_f=1)
    y = augment.lnl_convolutive_noise(x, np.random.default_rng(1), FS, params)
    assert y.shape == x.shape and not np.allclose(y, x)
    assert np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_impulsive_noise_touches_at_most_p_percent_within_the_bound(seed):
    x = 0.5 * speechlike(seed=seed)  # peak < 1/3: the output needs no peak normalisation
    params = augment.RawBoostParams(impulse_percent=10, impulse_gain=2)
    y = augment.isd_additive_noise(x, np.random.default_rng(seed), params)
    changed = y != x
    assert changed.sum() <= 0.10 * len(x)
    # y = x + g x f with |f| <= 1
    assert np.all(np.abs(y - x) <= 2 * np.abs(x) + 1e-12)
    assert np.array_equal(y[~changed], x[~changed])


def test_impulsive_noise_share_is_uniform_up_to_p():
    x = 0.5 * speechlike(0.5)
    rng = np.random.default_rng(0)
    shares = [np.mean(augment.isd_additive_noise(x, rng) != x) for _ in range(300)]
    assert stats.kstest(shares, "uniform", args=(0, 0.10)).pvalue > 0.05  # uniform on [0, P]


def test_stationary_noise_snr_is_within_its_range_and_spread():
    x = speechlike()
    snrs = []
    for s in range(40):
        y = augment.ssi_additive_noise(x, np.random.default_rng(s), FS)
        snrs.append(10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2)))
    assert 10 - 1e-9 <= min(snrs) and max(snrs) <= 40 + 1e-9
    assert max(snrs) - min(snrs) > 15


def test_stationary_noise_does_not_depend_on_the_signal():
    x = speechlike()
    noise_a = augment.ssi_additive_noise(x, np.random.default_rng(3), FS) - x
    noise_b = augment.ssi_additive_noise(2 * x, np.random.default_rng(3), FS) - 2 * x
    assert np.allclose(noise_b, 2 * noise_a)  # the same noise, scaled to the same SNR


def test_rawboost_series_and_bad_names():
    x = speechlike(0.25)
    a = augment.rawboost(x, np.random.default_rng(0), "123", FS)
    b = augment.rawboost(x, np.random.default_rng(0), "123", FS)
    assert a.dtype == np.float32 and a.shape == x.shape and np.array_equal(a, b)
    with pytest.raises(ValueError, match="digits 1-3"):
        augment.rawboost(x, np.random.default_rng(0), "14", FS)
