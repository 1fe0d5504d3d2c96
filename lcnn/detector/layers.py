"""Custom Keras layers: SincNet's learnable band-pass front end and the Max-Feature-Map activation.

All layers are registered under the package name "lcnn", so a saved `.keras` model loads with
plain `keras.models.load_model(path)` once `lcnn.detector.layers` has been imported.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from lcnn.errors import ConfigError

HZ_PER_KHZ = 1000.0  # SincConv1D stores its cut-offs in kHz (see SincConv1D.build)


def hz_to_mel(hz):
    """Hertz to mel (the HTK formula SincNet uses)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Mel to hertz, the inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def sinc_init_hz(filters: int, sample_rate: int, min_low_hz: float, min_band_hz: float):
    """SincNet's initial parameters: `filters + 1` points evenly spaced in mel.

    Returns `(low_param, band_param)` in Hz. As in SincNet's `SincConv_fast`, the points run from
    30 Hz to fs/2 - (min_low_hz + min_band_hz) (= fs/2 - 100 Hz with the defaults), so that after
    the forward pass adds the minimums back the top filter ends exactly at the Nyquist frequency.
    """
    top = sample_rate / 2 - (min_low_hz + min_band_hz)
    hz = mel_to_hz(np.linspace(hz_to_mel(30.0), hz_to_mel(top), filters + 1))
    return hz[:-1], np.diff(hz)


@keras.saving.register_keras_serializable(package="lcnn")
class SincConv1D(keras.layers.Layer):
    """SincNet's learnable band-pass filter bank (Ravanelli & Bengio, SLT 2018).

    Each filter is g[n] = 2 f2 sinc(2 pi f2 n) - 2 f1 sinc(2 pi f1 n) times a Hamming window,
    with two learnable numbers per filter: the low cut-off and the band width, stored in kHz
    (`low_khz`, `band_khz`; why kHz, see `build`). Forward pass, in Hz:
    low = min_low_hz + 1000 |low_khz|, high = clip(low + min_band_hz + 1000 |band_khz|,
    min_low_hz, fs / 2).
    Like SincNet's `SincConv_fast`, each filter is divided by 2 * (high - low), which makes its
    centre tap 1 and its pass-band gain about fs / (2 * band). No bias.

    Input `[batch, time, 1]`, output `[batch, time', filters]` where time' = ceil(time / stride)
    for "same" padding and floor((time - kernel_size) / stride) + 1 for "valid".
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        sample_rate: int = 16000,
        stride: int = 1,
        padding: str = "same",
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1 or int(kernel_size) < 1 or int(stride) < 1 or int(sample_rate) < 1:
            raise ConfigError(
                f"SincConv1D: filters, kernel_size, stride and sample_rate must be positive, got "
                f"{filters}, {kernel_size}, {stride}, {sample_rate}"
            )
        if padding not in ("same", "valid"):
            raise ConfigError(
                f'SincConv1D: padding must be "same" or "valid", got {padding!r}'
            )
        self.filters = int(filters)
        # An odd length makes each filter symmetric about its centre tap (linear phase).
        self.kernel_size = int(kernel_size) + (1 - int(kernel_size) % 2)
        self.sample_rate = int(sample_rate)
        self.stride = int(stride)
        self.padding = padding
        self.min_low_hz = float(min_low_hz)
        self.min_band_hz = float(min_band_hz)

        half = (self.kernel_size - 1) // 2
        # Time of the taps left of the centre, in seconds; the right half is the mirror image.
        self._t_left = (np.arange(-half, 0, dtype=np.float64) / self.sample_rate).astype(np.float32)
        self._window_left = np.hamming(self.kernel_size)[:half].astype(np.float32)

    def build(self, input_shape):
        if input_shape[-1] != 1 or len(input_shape) != 3:
            raise ConfigError(
                f"SincConv1D expects input [batch, time, 1] (mono waveform), got {input_shape}"
            )
        # The cut-offs are stored in kHz, not Hz. Adam moves a weight by about the learning rate
        # per step whatever its unit, so in Hz (as in SincNet's SincConv_fast) a run of a few
        # hundred steps at lr 1e-3 moves a filter by under 1 Hz: the bank never leaves its
        # initial mel spacing. In kHz a step moves it by up to a few Hz. (SincNet's first
        # version stored them as fractions of the sample rate for the same reason.)
        low, band = sinc_init_hz(self.filters, self.sample_rate, self.min_low_hz, self.min_band_hz)
        self.low_khz = self.add_weight(
            name="low_khz", shape=(self.filters,), initializer="zeros", dtype="float32"
        )
        self.band_khz = self.add_weight(
            name="band_khz", shape=(self.filters,), initializer="zeros", dtype="float32"
        )
        self.set_params_hz(low, band)

    def set_params_hz(self, low_param_hz, band_param_hz) -> None:
        """Set the learnable numbers from values in Hz (before the minimums are added back)."""
        self.low_khz.assign(np.asarray(low_param_hz, dtype=np.float32) / HZ_PER_KHZ)
        self.band_khz.assign(np.asarray(band_param_hz, dtype=np.float32) / HZ_PER_KHZ)

    def _cutoffs(self):
        low = self.min_low_hz + HZ_PER_KHZ * ops.abs(self.low_khz)
        high = ops.clip(
            low + self.min_band_hz + HZ_PER_KHZ * ops.abs(self.band_khz),
            self.min_low_hz,
            self.sample_rate / 2,
        )
        return low, high

    def _kernel(self):
        """The filters as a [kernel_size, 1, filters] conv kernel."""
        low, high = self._cutoffs()
        band = high - low
        t = ops.convert_to_tensor(self._t_left)[:, None]  # [half, 1]
        # 2 f sinc(2 pi f t) = sin(2 pi f t) / (pi t); t is never 0 on the left half.
        left = (ops.sin(2 * math.pi * high * t) - ops.sin(2 * math.pi * low * t)) / (math.pi * t)
        left = left * ops.convert_to_tensor(self._window_left)[:, None]
        centre = 2.0 * band[None, :]  # the limit at t = 0; the Hamming window is 1 there
        taps = ops.concatenate([left, centre, ops.flip(left, axis=0)], axis=0)
        taps = taps / (2.0 * band[None, :])
        return taps[:, None, :]

    def call(self, inputs):
        kernel = ops.cast(self._kernel(), inputs.dtype)
        if self.stride == 1 or inputs.shape[1] is None:
            return tf.nn.conv1d(inputs, kernel, stride=self.stride, padding=self.padding.upper())
        return self._polyphase_conv(inputs, kernel)

    def _polyphase_conv(self, inputs, kernel):
        """The strided convolution, computed as a stride-1 convolution over `stride` phases.

        oneDNN is slow at strided convolutions of a single input channel, and their gradient.
        Reshaping the waveform to [batch, time / stride, stride] and the kernel to
        [ceil(kernel_size / stride), stride, filters] gives the same output with a dense,
        stride-1 convolution (measured about 2x faster in training; bench/model_speed.py).
        """
        stride, size, length = self.stride, self.kernel_size, inputs.shape[1]
        taps = -(-size // stride)  # kernel length in frames
        out_len = self._output_length(length)
        pad_left = 0
        if self.padding == "same":  # TensorFlow's SAME: the extra padding goes on the right
            pad_left = max((out_len - 1) * stride + size - length, 0) // 2
        frames = out_len - 1 + taps
        needed = frames * stride
        x = ops.pad(inputs[:, :, 0], [[0, 0], [pad_left, max(needed - length - pad_left, 0)]])
        x = ops.reshape(x[:, :needed], (-1, frames, stride))
        k = ops.pad(kernel[:, 0, :], [[0, taps * stride - size], [0, 0]])
        k = ops.reshape(k, (taps, stride, self.filters))
        return tf.nn.conv1d(x, k, stride=1, padding="VALID")

    def _output_length(self, length: int) -> int:
        if self.padding == "same":
            return -(-length // self.stride)
        return (length - self.kernel_size) // self.stride + 1

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if length is not None:
            length = self._output_length(length)
        return (input_shape[0], length, self.filters)

    def filter_bank(self) -> np.ndarray:
        """The current filters as numpy, shape [kernel_size, filters] (for plots)."""
        return np.asarray(ops.convert_to_numpy(self._kernel()))[:, 0, :]

    def cutoffs_hz(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (low, high) cut-off frequencies in Hz, one pair per filter."""
        low, high = self._cutoffs()
        return np.asarray(ops.convert_to_numpy(low)), np.asarray(ops.convert_to_numpy(high))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            sample_rate=self.sample_rate,
            stride=self.stride,
            padding=self.padding,
            min_low_hz=self.min_low_hz,
            min_band_hz=self.min_band_hz,
        )
        return config

    def load_own_variables(self, store):
        super().load_own_variables(store)
        # Files saved before the cut-offs moved to kHz hold Hz. In kHz no low cut-off can exceed
        # the Nyquist frequency (8 for 16-kHz audio); in Hz the top filters start in the
        # thousands. So the size tells the unit, and an old file is converted on loading.
        if np.max(np.abs(np.asarray(self.low_khz))) > self.sample_rate / 2 / HZ_PER_KHZ:
            self.set_params_hz(np.asarray(self.low_khz), np.asarray(self.band_khz))


@keras.saving.register_keras_serializable(package="lcnn")
class MaxFeatureMap(keras.layers.Layer):
    """Max-Feature-Map (Wu et al., Light CNN): split the channels in two halves, keep the maximum.

    Halves the channel count, [..., 2c] -> [..., c]: the activation that makes a CNN "light".
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def build(self, input_shape):
        channels = input_shape[self.axis]
        if channels is None or channels % 2:
            raise ConfigError(
                f"MaxFeatureMap needs an even number of channels on axis {self.axis} to split in "
                f"two halves, got {channels} (input shape {tuple(input_shape)})"
            )

    def call(self, inputs):
        first, second = ops.split(inputs, 2, axis=self.axis)
        return ops.maximum(first, second)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = shape[self.axis] // 2
        return tuple(shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(axis=self.axis)
        return config


@keras.saving.register_keras_serializable(package="lcnn")
class BandMask(keras.layers.Layer):
    """SpecAugment's frequency masking (Park et al., 2019): in training, each clip of a
    `[batch, frames, bands]` input gets a run of `width` adjacent bands set to 0 over all its
    frames, `width` drawn uniformly from 0..max_width and the first band uniformly from the
    positions where the run fits. Placed after a BatchNorm, 0 is the band's mean. At inference
    (and so in exported models) it passes its input through unchanged.
    """

    def __init__(self, max_width: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(max_width) < 0:
            raise ConfigError(f"BandMask: max_width must be >= 0, got {max_width}")
        self.max_width = int(max_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.max_width == 0:
            return inputs
        batch, bands = ops.shape(inputs)[0], inputs.shape[-1]
        draws = keras.random.uniform((batch, 2), seed=self.seed_generator)
        width = ops.floor(draws[:, :1] * (min(self.max_width, bands) + 1))
        first = ops.floor(draws[:, 1:] * (bands - width + 1))
        band = ops.arange(bands, dtype="float32")[None, :]
        keep = ops.logical_or(band < first, band >= first + width)
        return inputs * ops.cast(keep, inputs.dtype)[:, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(max_width=self.max_width, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="lcnn")
class EnergyPooling1D(keras.layers.Layer):
    """Band envelopes: the RMS of each group of `pool_size` frames, sqrt(mean(x^2) + eps).

    Used right after SincConv1D, it turns band-pass outputs into band energies per frame, as a
    spectrogram does, and lowers the frame rate. With `log=True` it gives log(mean(x^2) + eps)
    instead, a log spectrogram's compression. `eps` keeps digital silence finite (and its
    gradient). `[batch, time, channels]` -> `[batch, ceil(time / pool_size), channels]`; when
    time is not a multiple of pool_size, TensorFlow's "same" pooling spreads the shortfall
    over both ends and averages the shorter end groups over the frames they have.
    """

    def __init__(self, pool_size: int = 4, log: bool = False, eps: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if int(pool_size) < 1 or float(eps) <= 0:
            raise ConfigError(
                f"EnergyPooling1D: pool_size must be >= 1 and eps > 0, got {pool_size}, {eps}"
            )
        self.pool_size = int(pool_size)
        self.log = bool(log)
        self.eps = float(eps)

    def call(self, inputs):
        power = ops.square(inputs)
        length, pool = inputs.shape[1], self.pool_size
        if pool > 1 and length is not None and length % pool == 0:
            # A mean over a reshaped axis gives the same numbers as average pooling, and its
            # gradient is a broadcast: AvgPoolGrad alone took ~15% of a training step (op time).
            power = ops.mean(ops.reshape(power, (-1, length // pool, pool, inputs.shape[2])), 2)
        elif pool > 1:
            power = ops.average_pool(power, pool, pool, padding="same")
        return ops.log(power + self.eps) if self.log else ops.sqrt(power + self.eps)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if length is not None:
            length = -(-length // self.pool_size)
        return (input_shape[0], length, input_shape[2])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_size=self.pool_size, log=self.log, eps=self.eps)
        return config


def triangular_bank(edges: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Triangular band weights `[len(bins), len(edges) - 2]`, the filter bank of MFCC and LFCC.

    Band k rises from edges[k] to 1 at edges[k + 1] and falls to 0 at edges[k + 2]. `edges` and
    the FFT bins' frequencies `bins` are in the same unit: mel for a mel bank (triangles in
    mel, as HTK and tf.signal draw them), Hz for a linear one.
    """
    bins = np.asarray(bins, dtype=np.float64)[:, None]
    low, centre, high = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@keras.saving.register_keras_serializable(package="lcnn")
class LogFilterbank(keras.layers.Layer):
    """A fixed front end: log energies of triangular bands on a short-time power spectrum.

    `scale="mel"` gives log-mel filter-bank energies (MFCC before its DCT); `scale="linear"`
    gives linearly spaced bands, LFCC before its DCT, the front end of the ASVspoof 2019/2021
    LFCC-LCNN baseline, which resolves the high frequencies where vocoders leave artefacts as
    finely as the low ones. Nothing is learnt: it is the control for SincConv1D.
    `[batch, samples]` -> `[batch, frames, bands]`, frames = ceil(samples / hop) (the signal is
    padded by half a window at both ends, as librosa's `center=True` does).

    `eps` is the floor under the log: log(energy + eps). For a waveform of unit variance (the
    model normalises each clip first) 1e-3 lies about 35 dB below the median band energy of
    speech and at the 0.1st percentile of the demo corpus's. A floor near float rounding
    (1e-8) turned empty bands (telephone audio, synthetic tones) into log-magnified rounding
    noise: scores then moved by 1e-3 between int16 and float input, TensorFlow and TFLite.
    """

    def __init__(self, bands: int, sample_rate: int, hop: int, scale: str = "mel",
                 frame_length: int = 400, fft_length: int = 512, eps: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if scale not in ("mel", "linear"):
            raise ConfigError(f"LogFilterbank: scale must be 'mel' or 'linear', got {scale!r}")
        if fft_length < frame_length or min(bands, hop, frame_length) < 1:
            raise ConfigError("LogFilterbank: need bands, hop, frame_length >= 1 and "
                              f"fft_length >= frame_length, got {bands}, {hop}, "
                              f"{frame_length}, {fft_length}")
        self.bands, self.sample_rate, self.hop = int(bands), int(sample_rate), int(hop)
        self.scale, self.eps = scale, float(eps)
        self.frame_length, self.fft_length = int(frame_length), int(fft_length)
        bins_hz = np.linspace(0.0, sample_rate / 2, fft_length // 2 + 1)
        warp = hz_to_mel if scale == "mel" else np.asarray
        edges = np.linspace(0.0, warp(sample_rate / 2), bands + 2)
        self.weights_ = triangular_bank(edges, warp(bins_hz))

    def call(self, inputs):
        half = self.frame_length // 2
        padded = tf.pad(inputs, [[0, 0], [half, half]], mode="REFLECT")
        spectrum = tf.signal.stft(padded, self.frame_length, self.hop, self.fft_length,
                                  window_fn=tf.signal.hann_window, pad_end=False)
        power = tf.square(tf.abs(spectrum))
        frames = -(-inputs.shape[1] // self.hop) if inputs.shape[1] is not None else None
        energies = tf.matmul(power[:, :frames], tf.constant(self.weights_))
        return tf.math.log(energies + self.eps)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        return (input_shape[0], None if length is None else -(-length // self.hop), self.bands)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(bands=self.bands, sample_rate=self.sample_rate, hop=self.hop,
                      scale=self.scale, frame_length=self.frame_length,
                      fft_length=self.fft_length, eps=self.eps)
        return config
