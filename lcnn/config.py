"""One configuration object for audio, model and training, saved as JSON in each run folder."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lcnn.errors import ConfigError

MODELS = ("lcnn", "baseline")
# The baseline (the original project's ReLU CNN) was called "seed" before the name was taken
# back for random seeds. Run folders saved then still say model "seed" in config.json: the
# alias keeps them loading and resuming, and `--model seed` working.
MODEL_ALIASES = {"seed": "baseline"}
# The original project's design as it was: the baseline without the level normalisation
# (`input_norm`) that it now takes like the LCNN. Comparisons with "the baseline" use this.
ORIGINAL_BASELINE = {"model": "baseline", "input_norm": False}
FRONT_ENDS = ("sinc", "mel", "linear", "wave")  # lcnn.detector.model.front_end
# Runtime options: how a run is computed, not what it computes. They may change between a run
# and its resumption, so they are not compared when a run folder is reused.
RUNTIME_FIELDS = ("threads",)
EXTRA_KEYS = {"data", "data_path"}  # what a run's config.json holds besides the Config
# What runs saved before a field existed did instead (their config.json lacks the field). A
# saved run is read with these, not with today's defaults, so that it keeps meaning what it
# was: resumed, reused by the ablation, or compared, it is not taken for another model.
BEFORE_FIELD = {
    "sinc_log": True,  # log band energies, before RMS became the sinc default
    "sinc_trainable": True,
    "front_end": "sinc",  # the only front end then
    "input_norm": False,
    "augment_codec": False, "augment_reverb": False, "augment_telephone": False,
    "augment_rawboost": "", "augment_variants": 4,
    "augment_band_mask": 0,
    "min_epochs": 0,
    "cllr_resets_patience": False,
}
# Overrides that switch off every kind of cached channel copy (lcnn.augment.channel_kinds)
NO_CHANNEL_COPIES = {"augment_codec": False, "augment_reverb": False,
                     "augment_telephone": False, "augment_rawboost": ""}
MAX_LEARNING_RATE = 1.0  # Adam diverges long before this; larger values are typos
MAX_SEED = 2**31  # NumPy takes seeds below 2**32; a run adds the epoch number to its seed


@dataclass
class Config:
    """Everything needed to rebuild a run. Defaults are the course's defaults."""

    # audio
    sample_rate: int = 16000
    duration: float = 2.0  # seconds per clip, as in FoR for-2sec
    # model
    model: str = "lcnn"  # one of MODELS: "lcnn" (default) or "baseline" (the original ReLU CNN)
    # front end of "lcnn" (lcnn/detector/model.py): "wave" is the baseline's full-rate sinc
    # filters and convolutions (no band energies); "mel" and "linear" are fixed log filter
    # banks, "sinc" learns its band-pass filters (SincNet) and pools their energies. The band
    # count (sinc_filters) and the hop (sinc_stride * sinc_pool; "wave" always 64) apply to
    # all, so the LCNN body sees one shape. "wave" is the default: of all front ends it has the
    # lowest testing EER on the demo corpus, also on Griffin-Lim copies, which band energies
    # cannot tell from real speech (bench/ablation.md: three seeds of each front end).
    front_end: str = "wave"
    # Each clip scaled to zero mean and unit variance before the front end (as SincNet does
    # with layer normalisation on its input), so that the score does not depend on the level.
    input_norm: bool = True
    sinc_filters: int = 64
    sinc_kernel_size: int = 129  # taps (odd; even values are bumped by one)
    sinc_stride: int = 16  # the sinc layer only computes every 16th output sample
    sinc_pool: int = 4  # sinc outputs per frame; 16 kHz / (16 * 4) = 250 frames/s
    sinc_log: bool = False  # True: log energies instead of RMS (worse on the demo corpus)
    sinc_trainable: bool = True  # False keeps the sinc layer's initial bank fixed (an ablation)
    dropout: float = 0.5  # before the output layer
    # training. Without the male speaker in training, runs with RawBoost copies first sit on a
    # plateau for 20-30 epochs (see cllr_resets_patience); at 3e-3 some never left it, at 1e-3
    # (Adam's own default) all did within 80 epochs. AASIST trains 100 epochs at 1e-4
    # (clovaai/aasist, config/AASIST.conf).
    epochs: int = 80
    batch_size: int = 64
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    focal_alpha: float | None = None  # weight of the fake class; None: class weights balance
    focal_gamma: float = 2.0  # 0 gives plain binary cross-entropy
    class_weights: bool = True
    # early stopping on validation EER (noisy on small validation sets): stop after this many
    # epochs without a better one; 0 stops after the first epoch that does not improve
    patience: int = 10
    # and never before this many epochs (Keras' EarlyStopping calls it start_from_epoch), for
    # runs whose validation EER stalls for a while before it falls. 0 = from the start.
    min_epochs: int = 0
    # True: an epoch with a lower validation Cllr than any before also restarts the count. The
    # EER moves in steps of one clip and can stand still for 20 epochs while the model is still
    # learning (a training ROC-AUC near 0.7, HiFi-GAN copies at chance) and the Cllr, a
    # class-balanced cross-entropy like the val_loss Keras' EarlyStopping watches by default,
    # still falls. The best epoch is still chosen by the EER.
    cllr_resets_patience: bool = True
    threads: int = 0  # CPU threads for TensorFlow; 0 = all cores
    # white noise at 10-40 dB SNR can mask the quiet-band artefacts the detector needs
    augment_noise: bool = False
    augment_shift: bool = True
    augment_gain: bool = True
    # Channel augmentation, for real and fake clips alike (lcnn.channels, lcnn.augment): each
    # training clip gets `augment_variants` copies, built once and cached beside the decoded
    # split, each through one of the kinds switched on (in turn); every epoch then reads the
    # clip or one of its copies, drawn at random. RawBoost 1+2+3 and room copies are on: with
    # the schedule above, room copies on top of RawBoost 1+2 lowered the EER through a room;
    # RawBoost's noise (3) after 1+2 then lowered the mean EER over the channels of `evaluate
    # --condition all` on seven seeds of eight, kept white noise at 10 dB from depending on the
    # seed, and cost no transfer to held-out neural vocoders that eight seeds show (only
    # held-out LPC copies, the easiest family, a little). Codec copies stay off: they fix
    # AMR-NB but, as a third of the copies, cost clean clips, the unseen vocoder and the room
    # about as much, so the mean over the channels does not fall; telephone copies cost more
    # than they fixed.
    # Figures and seeds in bench/ablation.md, "Which default".
    augment_codec: bool = False  # MP3, Opus, AMR-NB, G.711, G.722 at several bit rates
    augment_reverb: bool = True  # synthetic rooms, RT60 0.2-1.0 s
    augment_telephone: bool = False  # 8 kHz, 300-3,400 Hz
    augment_rawboost: str = "123"  # RawBoost algorithms in series, e.g. "12"; "12,3": copies
    # alternate between series; "" = off
    augment_variants: int = 4
    # SpecAugment's frequency masking (Park et al., 2019) on the features the LCNN body reads:
    # each training clip loses a random run of 0..N adjacent ones (lcnn.detector.layers.BandMask);
    # bands of an energy front end, channels of "wave" (not frequency bands there). 0 = off.
    # It acts inside the model, on the fly, so it needs no cached copies.
    augment_band_mask: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        self.model = canonical_model(self.model)
        for field, problem in _problems(self):
            raise ConfigError(problem, field=field)
        if self.n_samples < 1:
            raise ConfigError(f"a clip of {self.duration} s at {self.sample_rate} Hz has no "
                              "samples")

    def identity(self) -> dict:
        """The settings that define a run (everything but the runtime options)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_FIELDS}

    @property
    def n_samples(self) -> int:
        """Samples per clip at the model's rate."""
        return int(round(self.sample_rate * self.duration))

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        """Read a Config saved by to_json (a run's config.json may hold extra keys such as
        data_path; a field it lacks is read as BEFORE_FIELD gives it). Raises ConfigError
        naming the file and the key that is wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) else f"not valid JSON: {e}"
            raise ConfigError(f"{path}: cannot read the settings ({reason})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of settings, got "
                              f"{type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - EXTRA_KEYS)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        try:
            return cls(**{**BEFORE_FIELD, **{k: v for k, v in data.items() if k in known}})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def parse_setting(item: str) -> tuple[str, object]:
    """One "KEY=VALUE" Config setting (the CLI's and bench's --set) as (key, value). VALUE is
    read as JSON (4, 1e-3, true, null, "12") or else taken as text, and a text field takes it
    as text (augment_rawboost=12 is "12"); Config checks the value when it is built. Raises
    ConfigError naming the item when KEY is not a Config field."""
    key, sep, text = item.partition("=")
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    if not sep or key not in types:
        raise ConfigError(f"{item!r}: expected KEY=VALUE with KEY one of "
                          f"{', '.join(sorted(types))}")
    try:
        value = json.loads(text)
    except ValueError:
        return key, text
    return key, (text if types[key] in (str, "str") and not isinstance(value, str) else value)


def canonical_model(name):
    """The model name MODELS lists for `name` (an alias such as "seed" -> "baseline"); any
    other value is returned as it is, for validation to judge."""
    return MODEL_ALIASES.get(name, name) if isinstance(name, str) else name


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _problems(cfg: Config) -> Iterator[tuple[str, str]]:
    """(field, what is wrong) for each field of cfg that cannot work, one message each."""
    ints = {"sample_rate": 1, "sinc_filters": 1, "sinc_kernel_size": 1, "sinc_stride": 1,
            "sinc_pool": 1, "epochs": 1, "batch_size": 1, "patience": 0, "min_epochs": 0,
            "threads": 0, "augment_band_mask": 0}
    for name, low in ints.items():
        value = getattr(cfg, name)
        if not _is_int(value) or value < low:
            what = "a positive integer" if low else "an integer >= 0"
            yield name, f"{name} must be {what}, got {value!r}"
    if not _is_int(cfg.seed) or not 0 <= cfg.seed < MAX_SEED:
        yield "seed", f"seed must be an integer in [0, 2**31), got {cfg.seed!r}"
    for name in ("input_norm", "sinc_log", "sinc_trainable", "cllr_resets_patience",
                 "class_weights", "augment_noise",
                 "augment_shift", "augment_gain", "augment_codec", "augment_reverb",
                 "augment_telephone"):
        if not isinstance(getattr(cfg, name), bool):
            yield name, f"{name} must be true or false, got {getattr(cfg, name)!r}"
    if not _is_int(cfg.augment_variants) or cfg.augment_variants < 1:
        yield "augment_variants", ("augment_variants must be a positive integer, got "
                                   f"{cfg.augment_variants!r}")
    if not isinstance(cfg.augment_rawboost, str) or not re.fullmatch(
            r"([123]+(,[123]+)*)?", cfg.augment_rawboost):
        yield "augment_rawboost", ("augment_rawboost must be RawBoost algorithm digits 1-3 "
                                   f"in series (e.g. \"12\"), series for the copies in turn "
                                   f"(\"12,3\") or \"\" (off), got {cfg.augment_rawboost!r}")
    if cfg.front_end not in FRONT_ENDS:
        yield "front_end", (f"front_end: unknown front end {cfg.front_end!r}; valid: "
                            f"{', '.join(FRONT_ENDS)}")
    if cfg.model not in MODELS:
        yield "model", f"model: unknown model {cfg.model!r}; valid models: {', '.join(MODELS)}"
    reals = {  # name: (test, what it must be)
        "duration": (lambda v: v > 0, "a positive number of seconds"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "learning_rate": (lambda v: 0 < v <= MAX_LEARNING_RATE,
                          f"a number in (0, {MAX_LEARNING_RATE:g}]"),
        "clipnorm": (lambda v: v > 0, "a positive number"),
        "focal_gamma": (lambda v: v >= 0, "a number >= 0"),
    }
    for name, (ok, what) in reals.items():
        value = getattr(cfg, name)
        if not _is_real(value) or not ok(value):
            yield name, f"{name} must be {what}, got {value!r}"
    if cfg.focal_alpha is not None and not (_is_real(cfg.focal_alpha)
                                            and 0 < cfg.focal_alpha < 1):
        yield "focal_alpha", ("focal_alpha must be null or a number in (0, 1), got "
                              f"{cfg.focal_alpha!r}")
