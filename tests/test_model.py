"""build_model builds what it says, learns a trivial problem, and counts its costs correctly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lcnn.config import Config
from lcnn.detector.layers import MaxFeatureMap, SincConv1D
from lcnn.detector.model import MODELS, OUTPUT_LAYER, build_model, layer_costs, model_flops
from lcnn.errors import ConfigError, LcnnError

# 4,000 samples: enough for every pooling stage, quick to run; most tests here are about the
# sinc front end, which is not the default
SHORT = Config(duration=0.25, front_end="sinc")
SINC = Config(front_end="sinc")


@pytest.fixture(scope="module")
def default_model():
    return build_model(SINC)


@pytest.mark.parametrize("name", MODELS)
def test_both_models_output_one_score_per_clip(name):
    model = build_model(SHORT, model=name)
    assert model.input_shape == (None, SHORT.n_samples)
    x = np.random.default_rng(0).normal(scale=0.1, size=(3, SHORT.n_samples)).astype("float32")
    out = np.asarray(model.predict(x, verbose=0))
    assert out.shape == (3, 1)
    # the logistic function of a linear read-out of the features, computed here in numpy
    head = model.get_layer(OUTPUT_LAYER)
    features = np.asarray(keras.Model(model.input, head.input)(x, training=False))
    kernel, bias = head.get_weights()
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(features @ kernel + bias))), rtol=1e-5)


def test_default_is_a_small_light_cnn_on_the_waveform_front_end():
    model = build_model(Config())
    assert model.name == "lcnn"
    assert model.count_params() < 1_000_000
    mfm = [layer for layer in model.layers if isinstance(layer, MaxFeatureMap)]
    assert len(mfm) >= 9
    sinc = model.get_layer("sinc")
    assert (sinc.filters, sinc.kernel_size, sinc.stride) == (24, 15, 1)


def test_sinc_front_end_takes_its_settings(default_model):
    sinc = default_model.get_layer("sinc")
    cfg = SINC
    assert isinstance(sinc, SincConv1D)
    assert (sinc.filters, sinc.stride, sinc.sample_rate) == (cfg.sinc_filters, cfg.sinc_stride,
                                                             16000)


def test_the_baseline_is_not_called_a_light_cnn():
    model = build_model(SHORT, model="baseline")
    assert model.name == "baseline"
    assert not any(isinstance(layer, MaxFeatureMap) for layer in model.layers)
    assert model.get_layer("sinc").filters == 24
    assert model.get_layer("sinc").kernel_size == 15


def test_overrides_change_the_front_end():
    model = build_model(SHORT, sinc_filters=32, sinc_stride=8, sinc_pool=2, sinc_kernel_size=64)
    sinc = model.get_layer("sinc")
    assert (sinc.filters, sinc.stride, sinc.kernel_size) == (32, 8, 65)
    assert model.get_layer("sinc").output.shape[1] == SHORT.n_samples // 8
    assert model.get_layer("energy").output.shape[1:] == (SHORT.n_samples // 16, 32)


@pytest.mark.parametrize("front_end", ["mel", "linear"])
def test_fixed_front_ends_feed_the_same_body_shape(front_end):
    sinc = build_model(SHORT)
    fixed = build_model(SHORT, front_end=front_end)
    assert fixed.get_layer("filterbank").scale == front_end
    assert fixed.get_layer("filterbank").output.shape == sinc.get_layer("energy").output.shape
    body = [layer.name for layer in sinc.layers if layer.name.startswith(("conv", "mfm"))]
    assert body == [layer.name for layer in fixed.layers if layer.name.startswith(("conv",
                                                                                    "mfm"))]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("input_norm", [True, False])
def test_input_norm_makes_the_score_independent_of_the_level(input_norm, name):
    keras.utils.set_random_seed(0)
    model = build_model(SHORT, input_norm=input_norm, model=name)
    x = np.random.default_rng(0).normal(scale=0.1, size=(2, SHORT.n_samples)).astype("float32")
    loud, quiet = (model.predict(g * x, verbose=0) for g in (1.0, 0.01))  # 0 and -40 dB
    assert np.allclose(loud, quiet, atol=1e-4) == input_norm


def test_sample_rate_and_duration_come_from_the_config():
    cfg = Config(sample_rate=8000, duration=0.5, front_end="sinc")
    model = build_model(cfg)
    assert model.input_shape == (None, 4000)
    assert model.get_layer("sinc").sample_rate == 8000
    assert model.get_layer("sinc").cutoffs_hz()[1].max() == pytest.approx(4000)


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(LcnnError, match="unknown model 'resnet'.*lcnn, baseline$"):
        build_model(Config(model="resnet"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"sinc_strid": 4}, "unknown model setting.*sinc_strid"),
     ({"sinc_stride": 0}, "sinc_stride must be a positive integer"),
     ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
     ({"front_end": "lfcc"}, "unknown front end 'lfcc'.*sinc, mel, linear")],
)
def test_bad_settings_are_clear_errors(overrides, message):
    with pytest.raises(LcnnError, match=message):
        build_model(SHORT, **overrides)


def test_a_few_steps_learn_a_separable_problem_including_the_sinc_cutoffs():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, t = 32, SHORT.n_samples
    noise = rng.normal(scale=0.05, size=(n, t))
    tone = 0.1 * np.sin(2 * np.pi * 5000 * np.arange(t) / SHORT.sample_rate)
    y = np.repeat([0.0, 1.0], n // 2)[:, None].astype("float32")
    x = (noise + y * tone).astype("float32")  # "fake" clips carry a 5 kHz tone
    model = build_model(SHORT, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    low_before = model.get_layer("sinc").cutoffs_hz()[0]
    losses = [float(model.train_on_batch(x, y)) for _ in range(12)]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert not np.allclose(model.get_layer("sinc").cutoffs_hz()[0], low_before)


def test_default_model_round_trips_through_a_keras_file(default_model, tmp_path):
    path = tmp_path / "model.keras"
    default_model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(1).normal(scale=0.1, size=(2, Config().n_samples)).astype("float32")
    np.testing.assert_array_equal(default_model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_conv_and_sinc_costs_match_a_hand_count(default_model):
    cfg = Config()
    rows = {row["name"]: row for row in layer_costs(default_model, cfg)}
    # 2 s at 16 kHz, sinc stride 16 -> 2,000 outputs; energy pooling by 4 -> 500 frames;
    # pool1 halves -> 250 frames reach conv2 and conv3.
    assert rows["sinc"]["macs_per_s"] == 2000 * 64 * 129 / 2
    assert rows["conv1"]["macs_per_s"] == 500 * 64 * 64 * 5 / 2  # 64 sinc bands in, kernel 5
    assert rows["conv3"]["output_shape"] == (250, 96)
    assert rows["conv3"]["macs_per_s"] == 250 * 96 * 32 * 3 / 2  # 32 channels in after MFM
    assert rows["conv3"]["params"] == 96 * 32 * 3 + 96
    assert rows["fc"]["macs_per_s"] == 64 * 160 / 2  # average + max pooled features in
    assert rows["bn3"]["macs_per_s"] == 0
    assert rows["bn3"]["values_per_s"] == 125 * 48 / 2
    assert sum(row["params"] for row in rows.values()) == default_model.count_params()


def test_model_flops_counts_no_input_gradient_for_the_sinc_layer(default_model):
    cfg = SINC
    rows = layer_costs(default_model, cfg)
    sinc = sum(r["macs_per_s"] for r in rows if r["type"] == "SincConv1D") * cfg.duration
    rest = sum(r["macs_per_s"] for r in rows if r["type"] != "SincConv1D") * cfg.duration
    assert sinc == 2000 * 64 * 129
    # 2 FLOPs per MAC; forward + weight gradient for the sinc, + input gradient for the rest
    assert model_flops(default_model, cfg) == pytest.approx(4 * sinc + 6 * rest)
    frozen = build_model(Config(front_end="sinc", sinc_trainable=False))
    assert model_flops(frozen, cfg) == pytest.approx(2 * sinc + 6 * rest)  # forward only
    baseline = build_model(Config(model="baseline"))
    # The baseline's full-rate convolutions cost more per clip than the whole default model.
    assert model_flops(baseline, cfg) > model_flops(default_model, cfg)


@pytest.mark.parametrize("front_end, next_layer", [("sinc", "conv1"), ("wave", "wave_conv1")])
def test_sinc_trainable_false_freezes_only_the_filter_bank(front_end, next_layer):
    model = build_model(Config(front_end=front_end, sinc_trainable=False))
    assert not model.get_layer("sinc").trainable
    frozen = {w.path for w in model.non_trainable_weights}
    assert {"sinc/low_khz", "sinc/band_khz"} <= frozen
    assert any(w.path.startswith(f"{next_layer}/") for w in model.trainable_weights)
    assert any(w.path.startswith("sinc/") for w in build_model(
        Config(front_end=front_end)).trainable_weights)
    with pytest.raises(ConfigError, match="sinc_trainable"):
        build_model(Config(sinc_trainable="no"))


def test_band_masking_changes_training_passes_only():
    plain = build_model(SHORT)
    masked = build_model(SHORT, augment_band_mask=8)
    assert "band_mask" in [layer.name for layer in masked.layers]
    masked.set_weights(plain.get_weights())  # the mask has no weights of its own
    x = np.random.default_rng(1).normal(scale=0.1, size=(4, SHORT.n_samples)).astype("float32")
    np.testing.assert_allclose(masked(x, training=False), plain(x, training=False), rtol=1e-6)
    features = {m: keras.Model(m.input, m.get_layer("conv1").input) for m in (plain, masked)}
    zeroed = np.asarray(features[masked](x, training=True)) == 0
    assert zeroed.any() and not (np.asarray(features[plain](x, training=True)) == 0).any()
    with pytest.raises(ConfigError, match="augment_band_mask"):
        Config(augment_band_mask=-1)


def test_waveform_front_end_gives_the_lcnn_body_its_usual_shape():
    cfg = Config(duration=0.25, front_end="wave")
    model = build_model(cfg)
    features = model.get_layer("sinc_bn").input  # what the front end hands the LCNN body
    assert tuple(features.shape[1:]) == (-(-cfg.n_samples // 64), cfg.sinc_filters)  # ceil
    assert isinstance(model.get_layer("sinc"), SincConv1D)
    assert model.get_layer("sinc").kernel_size == 15 and model.get_layer("sinc").stride == 1
    x = np.random.default_rng(0).normal(scale=0.1, size=(2, cfg.n_samples)).astype("float32")
    assert np.asarray(model.predict(x, verbose=0)).shape == (2, 1)


def test_waveform_front_end_pools_before_batchnorm_as_if_after_it():
    """At inference, max-pool -> BatchNorm -> ReLU equals the baseline's order, BatchNorm ->
    ReLU -> max-pool, computed here in numpy, while BatchNorm's scale is positive."""
    cfg = Config(duration=0.25, front_end="wave")
    model = build_model(cfg)
    rng = np.random.default_rng(1)
    bn = model.get_layer("wave_bn")
    gamma, beta = rng.uniform(0.5, 2, 24), rng.normal(size=24)
    mean, var = rng.normal(scale=0.1, size=24), rng.uniform(0.5, 2, 24)
    bn.set_weights([w.astype("float32") for w in (gamma, beta, mean, var)])
    x = rng.normal(scale=0.1, size=(2, cfg.n_samples)).astype("float32")
    sinc_out, relu_out = (np.asarray(keras.Model(model.input, model.get_layer(name).output)(
        x, training=False)) for name in ("sinc", "wave_relu"))
    normed = np.maximum((sinc_out - mean) / np.sqrt(var + bn.epsilon) * gamma + beta, 0)
    frames = normed.reshape(2, cfg.n_samples // 4, 4, 24).max(axis=2)
    np.testing.assert_allclose(relu_out, frames, rtol=1e-4, atol=1e-5)
