"""The models: a Light CNN on a waveform (default), log-mel or learnable SincConv front end,
and the baseline, the original project's ReLU CNN.

Both take a float32 waveform of `cfg.n_samples` samples at `cfg.sample_rate` and output one
number per clip, a sigmoid output, higher = more FAKE (a score, not a probability: see
lcnn.detector.calibration).

The LCNN first scales each clip to zero mean and unit variance (`input_norm`), then turns it
into features per frame (`front_end`), 250 frames per second with the defaults (a 4 ms
hop; the LFCC-LCNN baseline uses 10 ms):
- "wave" (default): no band energies; the baseline's full-rate sinc layer and convolutions
  with max-pooling (waveform_front_end);
- "mel" or "linear": LogFilterbank, log energies of triangular bands of a 25-ms short-time
  power spectrum; nothing is learnt;
- "sinc": SincNet's learnable band-pass filters, computed only every `sinc_stride`-th output
  sample so that 2-s clips at 16 kHz train fast on a CPU, then EnergyPooling1D (the RMS, or
  with `sinc_log` the log energy, of each group of `sinc_pool` outputs).
Which is better on the demo corpus, and by how much, is in bench/ablation.md (three seeds per
setting): "wave", then of the energy front ends log-mel, then sinc with log energies, then
sinc with RMS.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import keras
from keras import layers

from lcnn.config import MODELS, Config  # noqa: F401  (MODELS: the names build_model takes)
from lcnn.detector.layers import BandMask, EnergyPooling1D, LogFilterbank, MaxFeatureMap, SincConv1D
from lcnn.errors import ConfigError


class Block(NamedTuple):
    """One Conv1D + MFM layer of the LCNN body."""

    filters: int  # before MFM, which halves them
    kernel: int
    pool: bool  # then max-pool by 2
    norm: bool  # then BatchNorm


# The LCNN body, after the ASVspoof 2021 LFCC-LCNN baseline (nii-yamagishilab) with 1-D
# convolutions over time.
LCNN_BLOCKS = (
    Block(filters=64, kernel=5, pool=True, norm=False),
    Block(filters=64, kernel=1, pool=False, norm=True),
    Block(filters=96, kernel=3, pool=True, norm=True),
    Block(filters=96, kernel=1, pool=False, norm=True),
    Block(filters=128, kernel=3, pool=True, norm=False),
    Block(filters=128, kernel=1, pool=False, norm=True),
    Block(filters=64, kernel=3, pool=False, norm=True),
    Block(filters=64, kernel=1, pool=False, norm=True),
    Block(filters=64, kernel=3, pool=True, norm=False),
)
LCNN_DENSE = 160  # before MFM; the embedding has half as many features
# Keras' default BatchNorm momentum (0.99) needs several hundred steps before the statistics
# used at inference time catch up with the data; a small corpus gives far fewer (the demo
# corpus: 5 steps per epoch). 0.9 catches up within about 50 steps.
BN_MOMENTUM = 0.9
BASELINE_SINC = (24, 15)  # the baseline's sinc filters x taps, at full rate
# The output layer's name: its sigmoid output ranks clips but is not a probability (models
# saved before it was named so call it "fake_probability"; loading and resuming never look it
# up by name).
OUTPUT_LAYER = "fake_score"


def build_model(cfg: Config, **overrides) -> keras.Model:
    """Build `cfg.model` ("lcnn" or "baseline"). Keyword overrides replace Config fields.

    Example: `build_model(Config(), sinc_stride=1, sinc_pool=32)` for an ablation.
    """
    cfg = _apply_overrides(cfg, overrides)  # a new Config: its fields are checked again
    return build_lcnn(cfg) if cfg.model == "lcnn" else build_baseline(cfg)


def _apply_overrides(cfg: Config, overrides: dict) -> Config:
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown model setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    return dataclasses.replace(cfg, **overrides)


def _waveform_input(cfg: Config):
    return keras.Input(shape=(cfg.n_samples,), dtype="float32", name="waveform")


def _as_channels(cfg: Config, waveform):
    """`[batch, samples]` -> `[batch, samples, 1]`, the shape Conv1D layers take."""
    return layers.Reshape((cfg.n_samples, 1), name="to_channels")(waveform)


def _level(cfg: Config, waveform):
    """Each clip scaled to zero mean and unit variance if `cfg.input_norm`, else unchanged."""
    if not cfg.input_norm:
        return waveform
    # epsilon: level-independent within 0.01% down to -60 dBFS (RMS)
    return layers.LayerNormalization(epsilon=1e-10, center=False, scale=False,
                                     name="level")(waveform)


def build_lcnn(cfg: Config) -> keras.Model:
    """A Light CNN (Max-Feature-Map activations) on the front end `cfg.front_end` names.

    level normalisation -> features per frame (`front_end`) -> BatchNorm -> (in training,
    with `augment_band_mask`, SpecAugment-style masking of those features) -> nine Conv1D +
    MFM layers with BatchNorm and max-pooling where the LFCC-LCNN baseline has them -> global
    average and max pooling -> Dense + MFM -> dropout -> sigmoid.
    """
    inputs = _waveform_input(cfg)
    x = front_end(cfg, _level(cfg, inputs))
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="sinc_bn")(x)
    if cfg.augment_band_mask:
        x = BandMask(cfg.augment_band_mask, seed=cfg.seed, name="band_mask")(x)
    for i, block in enumerate(LCNN_BLOCKS, start=1):
        x = layers.Conv1D(block.filters, block.kernel, padding="same", name=f"conv{i}")(x)
        x = MaxFeatureMap(name=f"mfm{i}")(x)
        if block.pool:
            x = layers.MaxPooling1D(2, padding="same", name=f"pool{i}")(x)
        if block.norm:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
    # Average pooling summarises the whole clip; max pooling keeps short, local artefacts.
    x = layers.Concatenate(name="pooled")(
        [layers.GlobalAveragePooling1D(name="avg")(x), layers.GlobalMaxPooling1D(name="max")(x)]
    )
    x = layers.Dense(LCNN_DENSE, name="fc")(x)
    x = MaxFeatureMap(name="fc_mfm")(x)
    x = layers.Dropout(cfg.dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="lcnn")


def front_end(cfg: Config, waveform):
    """Features per frame, `[batch, frames, sinc_filters]`, of a `[batch, samples]` waveform,
    from the front end chosen by `cfg.front_end`: band energies of learnable sinc filters or of
    a fixed log filter bank, or ("wave") the waveform front end."""
    hop = cfg.sinc_stride * cfg.sinc_pool
    if cfg.front_end == "wave":
        return waveform_front_end(cfg, waveform)
    if cfg.front_end != "sinc":
        return LogFilterbank(cfg.sinc_filters, cfg.sample_rate, hop, scale=cfg.front_end,
                             name="filterbank")(waveform)
    x = SincConv1D(cfg.sinc_filters, cfg.sinc_kernel_size, sample_rate=cfg.sample_rate,
                   stride=cfg.sinc_stride, trainable=cfg.sinc_trainable,
                   name="sinc")(_as_channels(cfg, waveform))
    return EnergyPooling1D(cfg.sinc_pool, log=cfg.sinc_log, name="energy")(x)


def _full_rate_sinc(cfg: Config, waveform):
    """The BASELINE_SINC filters at every sample, the first layer of the baseline and of the
    waveform front end: `[batch, samples]` -> `[batch, samples, 24]`."""
    return SincConv1D(*BASELINE_SINC, sample_rate=cfg.sample_rate,
                      trainable=cfg.sinc_trainable, name="sinc")(_as_channels(cfg, waveform))


WAVE_POOLS = (4, 4, 4)  # the waveform front end's max-pools: a 64-sample hop, as the others


def waveform_front_end(cfg: Config, waveform):
    """The baseline's first layers, ending where the LCNN body starts: 24 sinc filters x 15 taps
    at the full rate -> max-pool 4 -> BatchNorm -> ReLU -> Conv1D 32 (ReLU) -> max-pool 4 ->
    Conv1D `sinc_filters` (ReLU) -> max-pool 4. Nothing is reduced to band energies: the
    convolutions combine the signed outputs of all 24 filters at 4 kHz and 1 kHz, so detail
    within a frame (how the filtered signals line up in time, which a vocoder's phase changes)
    can reach the body; band energies cannot carry it, and Griffin-Lim copies differ from real
    speech mostly there.
    `[batch, samples]` -> `[batch, samples / 64, sinc_filters]`; sinc_stride and sinc_pool do
    not apply.

    Unlike the baseline, it pools before the BatchNorm: max-pooling commutes with the ReLU and
    with BatchNorm's per-filter scaling while that scale is positive, so the layers compute
    nearly the same thing (BatchNorm's statistics are those of the pooled values), but
    BatchNorm, the slowest layer at the full rate (`python -m bench.profile_step --set
    front_end=wave`), sees a quarter of the values.
    """
    x = _full_rate_sinc(cfg, waveform)
    x = layers.MaxPooling1D(WAVE_POOLS[0], padding="same", name="wave_pool0")(x)
    x = layers.BatchNormalization(name="wave_bn")(x)
    x = layers.ReLU(name="wave_relu")(x)
    for i, (filters, pool) in enumerate(zip((32, cfg.sinc_filters), WAVE_POOLS[1:],
                                            strict=True), start=1):
        x = layers.Conv1D(filters, 3, padding="same", activation="relu", name=f"wave_conv{i}")(x)
        x = layers.MaxPooling1D(pool, padding="same", name=f"wave_pool{i}")(x)
    return x


def build_baseline(cfg: Config) -> keras.Model:
    """The original project's design, kept as a baseline. A ReLU CNN, *not* a Light CNN.

    24 sinc filters x 15 taps at full rate -> BatchNorm -> ReLU -> Conv1D 16, 32, 64
    (kernel 3, ReLU), each with max-pool 4 and dropout 0.2 -> global average pooling ->
    Dense 64 (ReLU) -> dropout -> sigmoid. The front-end fields of `cfg` are ignored;
    `input_norm` applies as in the LCNN (the original design had none: ORIGINAL_BASELINE).
    """
    inputs = _waveform_input(cfg)
    x = _full_rate_sinc(cfg, _level(cfg, inputs))
    x = layers.BatchNormalization(name="sinc_bn")(x)  # Keras' default momentum, as it had
    x = layers.ReLU(name="sinc_relu")(x)
    for i, filters in enumerate((16, 32, 64), start=1):
        x = layers.Conv1D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling1D(4, padding="same", name=f"pool{i}")(x)
        x = layers.Dropout(0.2, name=f"dropout{i}")(x)
    x = layers.GlobalAveragePooling1D(name="avg")(x)
    x = layers.Dense(64, activation="relu", name="fc")(x)
    x = layers.Dropout(cfg.dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="baseline")


def _macs_per_clip(layer, out_shape) -> int:
    """Multiply-adds of one forward pass for one clip; 0 for layers without weights."""
    if isinstance(layer, SincConv1D):
        return out_shape[0] * layer.filters * layer.kernel_size
    if isinstance(layer, LogFilterbank):  # an FFT per frame (radix-2 estimate), then the bands
        n = layer.fft_length
        return out_shape[0] * (2 * n * int(math.log2(n)) + (n // 2 + 1) * layer.bands)
    if isinstance(layer, layers.Conv1D):
        in_channels = layer.input.shape[-1] // layer.groups
        kernel = layer.kernel_size[0]
        return out_shape[0] * layer.filters * in_channels * kernel
    if isinstance(layer, layers.Dense):
        positions = 1
        for size in out_shape[:-1]:
            positions *= size
        return positions * layer.input.shape[-1] * layer.units
    return 0


def layer_costs(model: keras.Model, cfg: Config) -> list[dict]:
    """One row per layer: name, type, output shape, parameters and cost per second of audio.

    `macs_per_s` counts the multiply-adds of the layers with weights (SincConv1D, Conv1D,
    Dense): output positions x output channels x inputs per output, and of a LogFilterbank.
    Other layers (BatchNorm, MFM, pooling, activations) count 0: their few operations per value
    are cheap to compute but not to move, so `values_per_s` (output values per second of audio)
    shows where memory traffic goes; on CPU that, more than MACs, is what made full-rate
    BatchNorm slow.
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out_shape = tuple(layer.output.shape[1:])
        values = 1
        for size in out_shape:
            values *= size
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": out_shape,
                "params": layer.count_params(),
                "macs_per_s": _macs_per_clip(layer, out_shape) / cfg.duration,
                "values_per_s": values / cfg.duration,
            }
        )
    return rows


def model_flops(model: keras.Model, cfg: Config) -> float:
    """Training FLOPs per clip: each layer's forward MACs x 2 (a MAC is 2 FLOPs) x its passes.

    A layer costs one pass forward, one more for the gradient of its weights if it trains,
    and one more for the gradient of its input if anything before it trains: 3 for most
    layers (the usual rule of thumb that backward costs twice forward), 2 for the sinc layer,
    which reads the waveform, and 1 for a frozen sinc layer (`sinc_trainable=False`).
    """
    macs = {row["name"]: row["macs_per_s"] * cfg.duration for row in layer_costs(model, cfg)}
    flops, gradient_reaches_input = 0.0, False
    for layer in model.layers:  # in graph order
        trains = bool(layer.trainable_weights)
        flops += 2 * macs.get(layer.name, 0) * (1 + trains + gradient_reaches_input)
        gradient_reaches_input = gradient_reaches_input or trains
    return flops
