"""The custom layers behave as documented and survive a .keras round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from lcnn.detector.layers import (
    HZ_PER_KHZ,
    BandMask,
    EnergyPooling1D,
    LogFilterbank,
    MaxFeatureMap,
    SincConv1D,
    hz_to_mel,
)
from lcnn.errors import LcnnError

FS = 16000


def built_sinc(filters=8, kernel_size=251, **kwargs) -> SincConv1D:
    layer = SincConv1D(filters, kernel_size, **kwargs)
    layer.build((None, 1000, 1))
    return layer


def response_db(taps: np.ndarray, fs: int, n_fft: int = 16384):
    """Magnitude response of one filter in dB relative to its own maximum."""
    gain = np.abs(np.fft.rfft(taps, n_fft))
    return np.fft.rfftfreq(n_fft, 1 / fs), 20 * np.log10(gain / gain.max() + 1e-12), gain


def numpy_sinc_filter(low: float, high: float, kernel_size: int, fs: int) -> np.ndarray:
    """SincNet's band-pass (Ravanelli & Bengio 2018) written out plainly, with its 1 / (2 band)
    normalisation."""
    n = np.arange(kernel_size) - (kernel_size - 1) / 2
    t = n / fs
    # np.sinc(x) is sin(pi x) / (pi x), so 2 f sinc(2 pi f t) is 2 f np.sinc(2 f t).
    g = 2 * high * np.sinc(2 * high * t) - 2 * low * np.sinc(2 * low * t)
    return g * np.hamming(kernel_size) / (2 * (high - low))


def test_filter_matches_plain_numpy_formula():
    layer = built_sinc(filters=6, kernel_size=129)
    bank = layer.filter_bank()
    low, high = layer.cutoffs_hz()
    assert bank.shape == (129, 6)
    for i in range(6):
        expected = numpy_sinc_filter(float(low[i]), float(high[i]), 129, FS)
        np.testing.assert_allclose(bank[:, i], expected, atol=1e-4, rtol=1e-4)


def test_filters_pass_their_band_and_reject_outside():
    layer = built_sinc(filters=10, kernel_size=251)
    bank = layer.filter_bank()
    low, high = layer.cutoffs_hz()
    for i in [2, 5, 8]:  # bands wide enough for 251 taps to resolve
        freqs, db, gain = response_db(bank[:, i], FS)
        centre = (low[i] + high[i]) / 2
        at_centre = np.argmin(np.abs(freqs - centre))
        assert db[at_centre] > -1.0, f"filter {i} loses {db[at_centre]:.1f} dB mid-band"
        # SincNet's normalisation: pass-band gain fs / (2 band) (centre tap = 1).
        assert gain[at_centre] == pytest.approx(FS / (2 * (high[i] - low[i])), rel=0.03)
        width = high[i] - low[i]
        far = (freqs < low[i] - 0.5 * width - 200) | (freqs > high[i] + 0.5 * width + 200)
        assert far.any()
        assert db[far].max() < -20.0, f"filter {i} leaks {db[far].max():.1f} dB outside its band"


def test_filtering_a_tone_keeps_in_band_and_removes_out_of_band():
    layer = built_sinc(filters=10, kernel_size=251)
    low, high = layer.cutoffs_hz()
    i = 6
    t = np.arange(4000) / FS
    in_band = np.sin(2 * np.pi * (low[i] + high[i]) / 2 * t)
    out_band = np.sin(2 * np.pi * low[i] / 4 * t)
    out = np.asarray(layer(np.stack([in_band, out_band])[..., None].astype("float32")))
    middle = slice(500, 3500)  # away from the zero padding at the edges
    rms_in, rms_out = (np.sqrt(np.mean(out[k, middle, i] ** 2)) for k in (0, 1))
    assert rms_out < 0.01 * rms_in


def test_even_kernel_size_is_bumped_to_odd():
    assert SincConv1D(4, 250).kernel_size == 251
    assert SincConv1D(4, 251).kernel_size == 251
    bank = built_sinc(filters=4, kernel_size=64).filter_bank()
    assert bank.shape == (65, 4)
    np.testing.assert_allclose(bank, bank[::-1], atol=1e-6)  # symmetric: linear phase


def test_init_is_evenly_spaced_on_the_mel_scale():
    layer = built_sinc(filters=12)
    low_param = 1000 * np.asarray(layer.low_khz)
    band_param = 1000 * np.asarray(layer.band_khz)
    points = np.append(low_param, low_param[-1] + band_param[-1])
    assert points[0] == pytest.approx(30.0, abs=1e-3)
    assert points[-1] == pytest.approx(FS / 2 - 100, rel=1e-5)
    steps = np.diff(hz_to_mel(points))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-4)
    low, high = layer.cutoffs_hz()
    np.testing.assert_allclose(low, 50 + low_param, rtol=1e-6)
    assert high[-1] == pytest.approx(FS / 2)


def test_minimum_cutoff_and_band_hold_for_negative_parameters():
    layer = built_sinc(filters=5, min_low_hz=40, min_band_hz=70)
    layer.set_params_hz([-1000, -20, 0, -5, 300], [-3, 0, -500, -1e5, 10])
    low, high = layer.cutoffs_hz()
    np.testing.assert_allclose(low, [1040, 60, 40, 45, 340])
    assert np.all(low >= 40)
    assert np.all(high - low >= 70 - 1e-3)
    assert np.all(high <= FS / 2)
    assert np.isfinite(layer.filter_bank()).all()


def test_cutoffs_move_by_hertz_in_a_few_training_steps():
    # Adam moves each weight by about the learning rate per step. Stored in Hz, 20 steps at
    # 3e-3 would move a cut-off by under 0.1 Hz; stored in kHz, by tens of Hz.
    inputs = keras.Input((1600,))
    x = keras.layers.Reshape((1600, 1))(inputs)
    x = SincConv1D(4, 65, sample_rate=FS, stride=4, name="sinc")(x)
    x = EnergyPooling1D(4)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    t = np.arange(1600) / FS
    rng = np.random.default_rng(0)
    freqs = rng.choice([300.0, 3000.0], size=64)
    x = np.sin(2 * np.pi * freqs[:, None] * t).astype("float32")
    y = (freqs > 1000).astype("float32")
    sinc = model.get_layer("sinc")
    before = np.concatenate(sinc.cutoffs_hz())
    for _ in range(20):
        model.train_on_batch(x, y)
    moved = np.abs(np.concatenate(sinc.cutoffs_hz()) - before)
    assert moved.max() > 10.0, moved


def test_sample_rate_changes_the_filters_and_is_saved():
    a = built_sinc(filters=4, sample_rate=16000)
    b = built_sinc(filters=4, sample_rate=8000)
    assert b.cutoffs_hz()[1][-1] == pytest.approx(4000)
    assert not np.allclose(a.filter_bank(), b.filter_bank())
    config = b.get_config()
    assert config["sample_rate"] == 8000
    assert SincConv1D.from_config(config).sample_rate == 8000


@pytest.mark.parametrize(
    ("stride", "padding", "expected"), [(1, "same", 1000), (8, "same", 125), (3, "same", 334),
                                        (1, "valid", 1000 - 50), (8, "valid", (1000 - 51) // 8 + 1)]
)
def test_stride_and_padding_set_output_length(stride, padding, expected):
    layer = SincConv1D(6, 51, stride=stride, padding=padding)
    out = layer(np.zeros((2, 1000, 1), dtype="float32"))
    assert tuple(out.shape) == (2, expected, 6)
    assert layer.compute_output_shape((2, 1000, 1)) == (2, expected, 6)


def test_stride_samples_the_full_rate_output():
    x = np.random.default_rng(0).normal(size=(1, 800, 1)).astype("float32")
    full = SincConv1D(4, 31, stride=1, padding="valid")
    strided = SincConv1D(4, 31, stride=5, padding="valid")
    y_full = np.asarray(full(x))
    y_strided = np.asarray(strided(x))
    np.testing.assert_allclose(y_strided, y_full[:, ::5], atol=1e-4)


def test_rejects_stereo_input_and_bad_settings():
    with pytest.raises(LcnnError, match=r"\[batch, time, 1\]"):
        SincConv1D(4, 31).build((None, 100, 2))
    with pytest.raises(LcnnError, match="padding"):
        SincConv1D(4, 31, padding="causal")
    with pytest.raises(LcnnError, match="positive"):
        SincConv1D(4, 31, stride=0)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    inputs = keras.Input((800,))
    x = keras.layers.Reshape((800, 1))(inputs)
    x = SincConv1D(8, 63, sample_rate=8000, stride=4, name="sinc")(x)
    x = EnergyPooling1D(3, log=True)(x)
    x = MaxFeatureMap()(x)
    model = keras.Model(inputs, x)
    # Move the cut-offs away from their initial values so loading must restore them.
    sinc = model.get_layer("sinc")
    sinc.low_khz.assign(np.asarray(sinc.low_khz) * 1.1 + 0.007)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: the layers are registered
    x = np.random.default_rng(1).normal(size=(3, 800)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    restored = loaded.get_layer("sinc")
    assert (restored.sample_rate, restored.stride, restored.kernel_size) == (8000, 4, 63)
    np.testing.assert_array_equal(restored.cutoffs_hz()[0], sinc.cutoffs_hz()[0])


def test_max_feature_map_halves_channels_and_takes_the_maximum():
    x = np.random.default_rng(2).normal(size=(2, 5, 6)).astype("float32")
    out = np.asarray(MaxFeatureMap()(x))
    assert out.shape == (2, 5, 3)
    np.testing.assert_array_equal(out, np.maximum(x[..., :3], x[..., 3:]))


def test_max_feature_map_on_another_axis():
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
    out = np.asarray(MaxFeatureMap(axis=1)(x))
    np.testing.assert_array_equal(out, np.maximum(x[:, :2], x[:, 2:]))


def test_max_feature_map_rejects_odd_channels():
    with pytest.raises(LcnnError, match="even number of channels.*got 5"):
        MaxFeatureMap().build((None, 10, 5))


@pytest.mark.parametrize("log", [False, True])
def test_energy_pooling_matches_numpy(log):
    x = np.random.default_rng(5).normal(size=(2, 10, 3)).astype("float32")

    def expected_from(power):
        return np.log(power + 1e-6) if log else np.sqrt(power + 1e-6)

    whole = np.asarray(EnergyPooling1D(5, log=log, eps=1e-6)(x))
    power = np.stack([np.mean(x[:, i : i + 5] ** 2, axis=1) for i in (0, 5)], axis=1)
    np.testing.assert_allclose(whole, expected_from(power), rtol=1e-5, atol=1e-6)
    out = np.asarray(EnergyPooling1D(4, log=log, eps=1e-6)(x))
    assert out.shape == (2, 3, 3)  # ceil(10 / 4) frames
    # TensorFlow's "same" pooling: 2 frames short, so one is padded on each side, and padding
    # does not count in a mean.
    groups = [x[:, 0:3], x[:, 3:7], x[:, 7:10]]
    power = np.stack([np.mean(g**2, axis=1) for g in groups], axis=1)
    np.testing.assert_allclose(out, expected_from(power), rtol=1e-5, atol=1e-6)


def test_energy_of_silence_is_finite_with_finite_gradient():
    silence = tf.zeros((1, 4, 2))
    for layer in (EnergyPooling1D(2), EnergyPooling1D(2, log=True)):
        with tf.GradientTape() as tape:
            tape.watch(silence)
            out = layer(silence)
        assert np.isfinite(out.numpy()).all()
        assert np.isfinite(tape.gradient(out, silence).numpy()).all()



@pytest.mark.parametrize(
    ("length", "kernel_size", "stride", "padding"),
    [(1000, 129, 8, "same"), (1001, 129, 8, "same"), (997, 51, 16, "same"), (1000, 9, 16, "same"),
     (1000, 129, 8, "valid"), (1003, 64, 3, "valid"), (200, 5, 7, "same")],
)
def test_strided_output_matches_tensorflow_conv1d(length, kernel_size, stride, padding):
    layer = SincConv1D(5, kernel_size, stride=stride, padding=padding)
    x = np.random.default_rng(4).normal(size=(2, length, 1)).astype("float32")
    out = np.asarray(layer(x))
    kernel = layer.filter_bank()[:, None, :]
    expected = tf.nn.conv1d(x, kernel, stride=stride, padding=padding.upper()).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)


def test_files_saved_with_cutoffs_in_hz_still_load_right():
    """Before the cut-offs moved to kHz, saved files held them in Hz."""
    new = built_sinc(filters=6)
    new.low_khz.assign(np.asarray(new.low_khz) * 1.1 + 0.007)
    hz = [HZ_PER_KHZ * np.asarray(new.low_khz), HZ_PER_KHZ * np.asarray(new.band_khz)]
    khz = [np.asarray(new.low_khz), np.asarray(new.band_khz)]
    for saved in (hz, khz):
        loaded = built_sinc(filters=6)
        loaded.load_own_variables({"0": saved[0], "1": saved[1]})  # what Keras passes
        for got, want in zip(loaded.cutoffs_hz(), new.cutoffs_hz(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_mel_bank_matches_tensorflow_mel_weights():
    # tf.signal's HTK mel matrix is an independent implementation of the same triangles
    layer = LogFilterbank(40, 16000, hop=160, scale="mel")
    reference = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 0.0, 8000.0).numpy()
    # tf zeroes the DC bin; elsewhere the two agree
    np.testing.assert_allclose(layer.weights_[1:], reference[1:], atol=1e-4)


def test_linear_bands_are_evenly_spaced_and_cover_the_spectrum():
    weights = LogFilterbank(16, 16000, hop=160, scale="linear").weights_
    bins_hz = np.arange(257) * 16000 / 512
    peaks_hz = bins_hz[np.argmax(weights, axis=0)]
    np.testing.assert_allclose(np.diff(peaks_hz), 8000 / 17, atol=16000 / 512)
    # neighbouring triangles overlap so that, between the first and last centre (8000 / 17 Hz
    # and 16 x that), the weights of every FFT bin add up to one
    inner = (bins_hz >= 8000 / 17) & (bins_hz <= 16 * 8000 / 17)
    np.testing.assert_allclose(weights[inner].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("scale", ["mel", "linear"])
def test_log_filterbank_matches_numpy_stft(scale):
    from scipy.signal import get_window

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (2, 1600)).astype(np.float32)
    layer = LogFilterbank(24, 16000, hop=64, scale=scale)
    got = layer(x).numpy()
    padded = np.pad(x, ((0, 0), (200, 200)), mode="reflect")
    frames = np.stack([padded[:, i:i + 400] for i in range(0, 1600, 64)], axis=1)
    power = np.abs(np.fft.rfft(frames * get_window("hann", 400), 512)) ** 2
    expected = np.log(power @ layer.weights_ + layer.eps)
    assert got.shape == (2, 25, 24) == layer.compute_output_shape((2, 1600))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_log_filterbank_rejects_bad_settings_and_round_trips(tmp_path):
    with pytest.raises(LcnnError, match="scale"):
        LogFilterbank(24, 16000, hop=64, scale="bark")
    with pytest.raises(LcnnError, match="fft_length"):
        LogFilterbank(24, 16000, hop=64, frame_length=600)
    inputs = keras.Input((1600,))
    model = keras.Model(inputs, LogFilterbank(24, 16000, hop=64, scale="linear")(inputs))
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(1).normal(0, 0.1, (1, 1600)).astype(np.float32)
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras")(x), model(x))


def _masked_runs(x: np.ndarray, out: np.ndarray) -> list[tuple[int, int]]:
    """(first band, width) of the zeroed run in each clip of a BandMask output, checked
    against the input: the same bands in every frame, one contiguous run, the rest as given."""
    runs = []
    for clip_in, clip_out in zip(x, out, strict=True):
        zeroed = clip_out == 0
        assert (zeroed == zeroed[:1]).all()  # the same bands in every frame
        bands = np.flatnonzero(zeroed[0])
        np.testing.assert_array_equal(clip_out[:, ~zeroed[0]], clip_in[:, ~zeroed[0]])
        if bands.size:
            assert (np.diff(bands) == 1).all()  # one run of adjacent bands
        runs.append((int(bands[0]) if bands.size else -1, int(bands.size)))
    return runs


def test_band_mask_zeroes_one_run_of_up_to_max_width_bands_in_training():
    x = np.random.default_rng(0).uniform(1, 2, (2000, 5, 16)).astype("float32")  # no zeros
    mask = BandMask(6, seed=3)
    runs = _masked_runs(x, keras.ops.convert_to_numpy(mask(x, training=True)))
    widths = np.array([w for _, w in runs])
    assert set(widths) == set(range(7))  # every width 0..6 occurs
    assert np.abs(np.bincount(widths) / len(widths) - 1 / 7).max() < 0.03  # uniformly
    starts = [s for s, w in runs if w]
    assert min(starts) == 0 and max(s + w for s, w in runs if w) == 16  # both edges reachable
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask(x, training=False)), x)


def test_band_mask_round_trips_and_rejects_a_negative_width(tmp_path):
    model = keras.Sequential([keras.Input((4, 8)), BandMask(3, seed=1)])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layers[0].max_width == 3
    with pytest.raises(LcnnError, match="max_width"):
        BandMask(-1)
