"""One configuration object for audio, model and training, saved as JSON in each run folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Config:
    """Everything needed to rebuild a run. Defaults are the course's defaults."""

    # audio
    sample_rate: int = 16000
    duration: float = 2.0  # seconds per clip, as in FoR for-2sec
    # model
    model: str = "lcnn"  # "lcnn" (default) or "seed" (the seed's ReLU design)
    # front end of "lcnn" (lcnn/detector/model.py): learnable sinc filters, then band energies
    sinc_filters: int = 64
    sinc_kernel_size: int = 129  # taps (odd; even values are bumped by one)
    sinc_stride: int = 16  # the sinc layer only computes every 16th output sample
    sinc_pool: int = 4  # sinc outputs per frame; 16 kHz / (16 * 4) = 250 frames/s
    sinc_log: bool = False  # True: log energies instead of RMS (worse on the demo corpus)
    sinc_trainable: bool = True  # False keeps the initial mel-spaced bank fixed (an ablation)
    dropout: float = 0.5  # before the output layer
    # training
    # Measured on the demo corpus (one run each; bench/ablation.md has the front-end table):
    # 15 epochs at 1e-3 left the LCNN underfitting (training AUC 0.7, testing EER 35%);
    # 40 epochs at 3e-3 without noise reach training AUC 0.97 and testing EER 17% (measured
    # while the sinc cut-offs barely moved; 18-20% with the learnable bank, two seeds).
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    clipnorm: float = 1.0
    focal_alpha: float | None = None  # weight of the fake class; None: class weights balance
    focal_gamma: float = 2.0  # 0 gives plain binary cross-entropy
    class_weights: bool = True
    patience: int = 10  # early stopping on validation EER (noisy on small validation sets)
    threads: int = 0  # CPU threads for TensorFlow; 0 = all cores
    # White noise at 10-40 dB SNR masks the quiet-band artefacts the detector needs: on the
    # demo corpus, testing EER 35% with it and 27% without (15 epochs, 1e-3). Off by default.
    augment_noise: bool = False
    augment_shift: bool = True
    augment_gain: bool = True
    # Channel augmentation, for real and fake clips alike (lcnn.channels, lcnn.augment): each
    # training clip gets `augment_variants` copies, built once and cached beside the decoded
    # split, each through one of the kinds switched on (in turn); every epoch then reads the
    # clip or one of its copies, drawn at random. Off until measured on the wideband corpus.
    augment_codec: bool = False  # MP3, Opus, AMR-NB, G.711, G.722 at several bit rates
    augment_reverb: bool = False  # synthetic rooms, RT60 0.2-1.0 s
    augment_telephone: bool = False  # 8 kHz, 300-3,400 Hz
    augment_rawboost: str = ""  # RawBoost algorithms in series, e.g. "12"; "" = off
    augment_variants: int = 4
    seed: int = 42

    @property
    def n_samples(self) -> int:
        """Samples per clip at the model's rate."""
        return int(round(self.sample_rate * self.duration))

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
