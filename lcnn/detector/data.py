"""Datasets for Keras: decode a split's files once, feed them to training as tf.data.

Which files and labels a split has comes from lcnn.dataset (FoR folders, ASVspoof protocols,
CSV lists). `load_split` decodes every file of a split once (with `lcnn.audio.load_audio`)
into an int16 array cached on disk, and `make_dataset` turns it into a `tf.data.Dataset` of
`(x float32 [B, n_samples], y float32 [B])` with label REAL=0 / FAKE=1. Training batches
get a random crop and, if the Config asks for them, noise / shift / gain augmentation, and
read channel-augmented copies of the clips (codecs, rooms, RawBoost) that `build_variants`
made once and cached beside the split, so epochs never decode or re-encode audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight
from tqdm.auto import tqdm

from lcnn import FAKE, REAL
from lcnn.audio import TARGET_RMS, fix_length, load_audio, normalize
from lcnn.config import Config
from lcnn.dataset import DataSource, canonical_split, open_source
from lcnn.errors import AudioError, BadFilesError, LcnnError
from lcnn.io import atomic_path, clean_temporaries, temp_prefix

log = logging.getLogger(__name__)

INT16_SCALE = 32767.0
CACHE_VERSION = 1  # bump when the decoding or the cache format changes
VARIANTS_VERSION = 1  # bump when a channel or augmentation changes what it computes


@dataclass
class Clips:
    """A decoded split: `audio` int16 [N, L] (memory-mapped from the cache), valid samples
    per row in `lengths` (the rest is zero padding), labels REAL=0 / FAKE=1, source files,
    and the bad files that were skipped (path, reason). `cache` is the .npy file the audio
    comes from; `variants` int16 [N, K, L] are augmented copies (see build_variants)."""

    audio: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. attack, speaker per clip
    cache: Path | None = None
    variants: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


# ------------------------------------------------------------------ decoding and cache


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lcnn"


def _cache_folder(root: Path, cache_dir: str | Path | None) -> Path:
    """`cache_dir` if given, else <root>/.lcnn-cache if writable, else the user cache dir."""
    candidates = [Path(cache_dir)] if cache_dir else [root / ".lcnn-cache", _user_cache_dir()]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    tried = ", ".join(map(str, candidates))
    raise LcnnError(f"cannot write a decoding cache folder (tried {tried}); pass --cache_dir")


def _cache_key(root: Path, files: list[Path], sample_rate: int, max_len: int) -> str:
    """Hash of everything the cached audio depends on: files (path, size, mtime) and settings."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    # the dataset's own path too: two copies with the same names, sizes and mtimes sharing a
    # cache folder must not share their audio
    settings = [CACHE_VERSION, str(root.resolve()), sample_rate, max_len, TARGET_RMS,
                INT16_SCALE]
    blob = json.dumps([settings, entries]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _decode(path: Path, sample_rate: int, max_len: int) -> tuple[np.ndarray | None, list]:
    """One file as int16 (centre-cropped to max_len), or None and [reason, kind] where kind
    is "os" when the file could not be read at all (see _retry_unreadable), else "audio"."""
    try:
        x = load_audio(path, sample_rate)
    except AudioError as error:
        return None, [error.reason, "os" if error.os_error else "audio"]
    if len(x) > max_len:
        x = fix_length(x, max_len, "center")
    return np.round(x * INT16_SCALE).astype(np.int16), []


def _write_rows(npy: Path, scratch: np.ndarray, rows: np.ndarray, width: int) -> None:
    """Atomically write scratch[rows, :width] as a .npy file, a chunk at a time."""
    with atomic_path(npy) as tmp:
        audio = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(rows.size, width))
        for start in range(0, rows.size, 1024):  # chunks keep memory flat
            chunk = rows[start : start + 1024]
            audio[start : start + len(chunk)] = scratch[chunk, :width]
        audio.flush()
        del audio


def _build_cache(
    root: Path, files: list[Path], labels: np.ndarray, sample_rate: int, min_len: int,
    max_len: int, npy: Path, meta: Path, progress: bool,
) -> None:  # fmt: skip
    """Decode every file once and write <key>.npy (audio) then <key>.json (the rest)."""
    lengths = np.zeros(len(files), dtype=np.int64)
    bad: list[list[str]] = []
    # Decode into a scratch array of the longest allowed size, then keep only the good rows
    # and only as many columns as the longest clip needs.
    fd, scratch_name = tempfile.mkstemp(dir=npy.parent, prefix=temp_prefix(npy.stem),
                                        suffix=".tmp")
    os.close(fd)
    try:
        scratch = np.lib.format.open_memmap(
            scratch_name, mode="w+", dtype=np.int16, shape=(len(files), max_len)
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = pool.map(lambda p: _decode(p, sample_rate, max_len), files)
            name = npy.stem.rsplit("-", 1)[0]  # the split, without the cache key
            bar = tqdm(results, total=len(files), desc=f"decoding {name}", unit="file",
                       disable=not progress)  # fmt: skip
            for i, (clip, why) in enumerate(bar):
                if clip is None:
                    bad.append([files[i].relative_to(root).as_posix(), *why])
                else:
                    scratch[i, : len(clip)] = clip
                    lengths[i] = len(clip)
        good = np.flatnonzero(lengths > 0)
        width = max(int(lengths.max()), min_len)
        if good.size:  # numpy cannot memory-map an empty array; all-bad splits have no .npy
            _write_rows(npy, scratch, good, width)
        del scratch
    finally:
        Path(scratch_name).unlink(missing_ok=True)
    info = {
        "files": [files[i].relative_to(root).as_posix() for i in good],
        "labels": labels[good].tolist(),
        "lengths": lengths[good].tolist(),
        "bad": bad,
    }
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(info))


def _read_cache(npy: Path, meta: Path) -> dict | None:
    """The cached split (meta plus memory-mapped audio), or None if missing or damaged."""
    try:
        info = json.loads(meta.read_text())
        info["audio"] = np.load(npy, mmap_mode="r") if info["files"] else None
        if info["files"] and info["audio"].shape[0] != len(info["files"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return False
    return True


def _retry_unreadable(root: Path, bad: list[list[str]]) -> bool:
    """Whether a file the cache could not read at all (permissions, I/O) is readable now.

    Such a failure says nothing about the audio, and fixing it (chmod) changes neither the
    size nor the mtime the cache key is made of, so it is checked on every load. Caches of
    older versions recorded it as "System error.".
    """
    return any((entry[2:] == ["os"] or "(System error.)" in entry[1]) and _readable(root / entry[0])
               for entry in bad)


def load_split(
    data: str | Path | DataSource,
    split: str,
    cfg: Config,
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> Clips:
    """Decode a split of a dataset (a folder, a .csv list or a DataSource: see lcnn.dataset)
    once (cached) and return it as Clips, with the dataset's metadata columns per clip.

    Each file goes through `load_audio` (mono, cfg.sample_rate, normalised). Files longer
    than 1.5 clips are centre-cropped to 1.5 * cfg.n_samples: that leaves room for random
    training crops without storing whole long recordings. The array is as wide as the
    longest stored clip but at least n_samples; shorter clips are zero-padded at the end.

    The cache is <cache_dir>/<split>-<key>.npy (+ .json), default <root>/.lcnn-cache/ or,
    if root is read-only, ~/.cache/lcnn. The key hashes the file list (path, size, mtime)
    and the audio settings, so changing any file decodes the split again. Bad files are
    remembered too: BadFilesError lists them; with skip_bad they are left out (one warning).
    """
    listing = (data if isinstance(data, DataSource) else open_source(data)).listing(split)
    root, files, labels = listing.root, listing.files, listing.labels
    name = canonical_split(split)
    max_len = cfg.n_samples + cfg.n_samples // 2
    key = _cache_key(root, files, cfg.sample_rate, max_len)
    folder = _cache_folder(root, cache_dir)
    clean_temporaries(folder)  # scratch files of killed runs (up to a whole split each)
    npy, meta = folder / f"{name}-{key}.npy", folder / f"{name}-{key}.json"
    info = _read_cache(npy, meta)
    if info is None or _retry_unreadable(root, info["bad"]):
        _build_cache(
            root, files, labels, cfg.sample_rate, cfg.n_samples, max_len, npy, meta, progress
        )
        info = _read_cache(npy, meta)
    bad = [(root / rel, reason) for rel, reason, *_ in info["bad"]]
    where = f"{root} ({name})"
    if not info["files"]:
        raise BadFilesError(bad, where, hint="No usable audio file is left in this split.")
    if bad and not skip_bad:
        raise BadFilesError(bad, where)
    if bad:
        log.warning("skipped %d bad audio file(s) in %s", len(bad), where)
    kept = [root / rel for rel in info["files"]]
    row = {f: i for i, f in enumerate(files)}
    index = np.asarray([row[f] for f in kept], dtype=np.int64)
    return Clips(
        audio=info["audio"],
        lengths=np.asarray(info["lengths"], dtype=np.int64),
        # from the listing, not the cache: the key covers the audio files, not the labels a
        # CSV list or protocol gives them, which may have been corrected since
        labels=np.asarray(labels[index], dtype=np.int32),
        files=kept,
        skipped=bad,
        meta={column: values[index] for column, values in listing.meta.items()},
        cache=npy,
    )


# ------------------------------------------------------------------ augmented copies (cached)

Variant = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def _variant_rows(clips: Clips, i: int, fn: Variant, k: int, seed: int) -> np.ndarray:
    """The k copies of clip i as int16 [k, L], each normalised like a decoded clip."""
    n = int(clips.lengths[i])
    x = np.asarray(clips.audio[i, :n], dtype=np.float32) / INT16_SCALE
    rows = np.zeros((k, clips.audio.shape[1]), dtype=np.int16)
    for j in range(k):
        # seeded by (seed, clip, copy): a copy does not depend on which thread made it
        y = normalize(fn(x, np.random.default_rng([seed, i, j]), j))
        rows[j, :n] = np.round(y[:n] * INT16_SCALE).astype(np.int16)
    return rows


def build_variants(clips: Clips, fn: Variant, k: int, tag: str,
                   progress: bool = True) -> np.ndarray:
    """k augmented copies of every clip: int16 [N, k, L], row i lines up with clips.audio[i].

    fn(x, rng, j) gets the valid part of a clip (float32) and returns the j-th copy, same
    length; it is then normalised (as load_audio does with any file). The result is cached
    beside the split as <split>-<key>-v<hash of tag and k>.npy, so `tag` must name everything
    the copies depend on (channel settings, seed). Without a cache file (clips made by
    hand) the copies stay in memory.
    """
    digest = hashlib.sha256(json.dumps([VARIANTS_VERSION, tag, k]).encode()).hexdigest()
    seed = int(digest[:8], 16)
    shape = (len(clips), k, clips.audio.shape[1])

    def fill(out: np.ndarray) -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            rows = pool.map(lambda i: _variant_rows(clips, i, fn, k, seed), range(len(clips)))
            for i, row in enumerate(tqdm(rows, total=len(clips), desc=f"augmenting ({tag})",
                                         unit="clip", disable=not progress)):
                out[i] = row

    if clips.cache is None:
        out = np.zeros(shape, dtype=np.int16)
        fill(out)
        return out
    npy = clips.cache.with_name(f"{clips.cache.stem}-v{digest[:16]}.npy")
    try:
        cached = np.load(npy, mmap_mode="r")
        if cached.shape == shape:
            return cached
    except (OSError, ValueError):
        pass  # missing or damaged: build it
    with atomic_path(npy) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=shape)
        fill(out)
        out.flush()
        del out
    return np.load(npy, mmap_mode="r")


def training_variants(clips: Clips, cfg: Config, progress: bool = True) -> np.ndarray | None:
    """The cached channel-augmented copies the Config asks for (None when it asks for none):
    copy j goes through the kind channel_kinds(cfg)[j % number of kinds]."""
    from lcnn.augment import channel_kinds, variant

    kinds = channel_kinds(cfg)
    if not kinds or cfg.augment_variants < 1:
        return None

    def fn(x: np.ndarray, rng: np.random.Generator, j: int) -> np.ndarray:
        return variant(x, kinds[j % len(kinds)], cfg.sample_rate, rng, cfg.augment_rawboost)

    tag = f"{'+'.join(kinds)} rawboost={cfg.augment_rawboost} seed={cfg.seed}"
    return build_variants(clips, fn, cfg.augment_variants, tag, progress)


def check_both_classes(clips: Clips, where: str) -> None:
    """Raise LcnnError unless clips hold real and fake clips (e.g. after skipping bad files)."""
    present = set(np.unique(clips.labels).tolist())
    if present != {REAL, FAKE}:
        left = "real" if REAL in present else "fake"
        raise LcnnError(f"{where}: only {left} clips are left (bad files skipped: "
                        f"{len(clips.skipped)}); training and evaluation need both classes")


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights (n_samples / (n_classes * count)) for Keras' class_weight."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("class_weights: no labels")
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


# ------------------------------------------------------------------ augmentation (in the graph)


def _seed(seed: int | tf.Tensor) -> tf.Tensor:
    """A stateless-op seed (shape [2]) from an int or an existing seed tensor."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], dtype=tf.int64)
    return tf.cast(seed, tf.int64)


def _as_batch(x) -> tuple[tf.Tensor, bool]:
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    return (x[tf.newaxis], True) if x.shape.rank == 1 else (x, False)


def add_noise(x, seed, snr_db: tuple[float, float] = (10.0, 40.0)) -> tf.Tensor:
    """Add white noise at a random SNR (dB, uniform in `snr_db`), drawn per clip."""
    x2, single = _as_batch(x)
    snr_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(_seed(seed), 2))
    snr = tf.random.stateless_uniform([tf.shape(x2)[0], 1], snr_seed, snr_db[0], snr_db[1])
    power = tf.reduce_mean(tf.square(x2), axis=1, keepdims=True)
    scale = tf.sqrt(power / 10.0 ** (snr / 10.0))
    out = x2 + scale * tf.random.stateless_normal(tf.shape(x2), noise_seed)
    return out[0] if single else out


def _slice_rows(x: tf.Tensor, starts: tf.Tensor, n: int | tf.Tensor) -> tf.Tensor:
    """x[i, starts[i] : starts[i] + n] for every row i (much faster than a batched gather)."""
    return tf.map_fn(
        lambda row_start: tf.slice(row_start[0], [row_start[1]], [n]),
        (x, starts),
        fn_output_signature=x.dtype,
    )


def time_shift(x, seed, max_fraction: float = 0.1) -> tf.Tensor:
    """Shift each clip by up to +-max_fraction of its length, filling with zeros (no wrap)."""
    x2, single = _as_batch(x)
    n = tf.shape(x2)[1]
    limit = tf.cast(max_fraction * tf.cast(n, tf.float32), tf.int32)
    shift = tf.random.stateless_uniform(
        [tf.shape(x2)[0]], _seed(seed), -limit, limit + 1, dtype=tf.int32
    )
    # out[i] = x[i - shift]: read from a copy with `limit` zeros on both sides
    padded = tf.pad(x2, [[0, 0], [limit, limit]])
    out = _slice_rows(padded, limit - shift, n)
    return out[0] if single else out


def random_gain(x, seed, gain_db: float = 6.0) -> tf.Tensor:
    """Scale each clip by a random gain in [-gain_db, +gain_db] dB, then clip to [-1, 1]."""
    x2, single = _as_batch(x)
    gain = tf.random.stateless_uniform([tf.shape(x2)[0], 1], _seed(seed), -gain_db, gain_db)
    out = tf.clip_by_value(x2 * 10.0 ** (gain / 20.0), -1.0, 1.0)
    return out[0] if single else out


def augment(x, cfg: Config, seed) -> tf.Tensor:
    """Training augmentation: shift, gain, then noise, each only if its Config flag is on."""
    shift_seed, gain_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(_seed(seed), 3)
    )
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    if cfg.augment_shift:
        x = time_shift(x, shift_seed)
    if cfg.augment_gain:
        x = random_gain(x, gain_seed)
    if cfg.augment_noise:
        x = add_noise(x, noise_seed)
    return tf.clip_by_value(x, -1.0, 1.0)


# ------------------------------------------------------------------ tf.data


# Batches tf.data prepares ahead of the model, and map calls it runs at once. Fixed, because
# tf.data's autotuner (what tf.data.AUTOTUNE asks for) is switched off: its background thread
# made deleting an iterator wait about 2.3 s in every other epoch on a 2-core machine, nearly
# as long as a demo epoch's training (bench/README.md, "The input pipeline's autotuner").
PREFETCH_BATCHES = 2
PARALLEL_CALLS = os.cpu_count() or 1


def _without_autotuner(ds: tf.data.Dataset) -> tf.data.Dataset:
    """ds with tf.data's autotuner off (see PREFETCH_BATCHES)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _crop(audio: tf.Tensor, lengths: tf.Tensor, n: int, seed: tf.Tensor | None) -> tf.Tensor:
    """n samples of each row: centred in the valid part (seed None) or at a random start."""
    room = tf.maximum(lengths - n, 0)
    if seed is None:
        start = room // 2
    else:
        u = tf.random.stateless_uniform(tf.shape(lengths), seed)
        start = tf.minimum(tf.cast(u * tf.cast(room + 1, tf.float32), tf.int32), room)
    return _slice_rows(audio, start, n)


def make_dataset(
    clips: Clips, cfg: Config, training: bool, batch_size: int | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:  # fmt: skip
    """Batches of (x float32 [B, cfg.n_samples], y float32 [B]) from decoded clips.

    Training: shuffled every epoch, random crops, augmentation per the Config flags; with
    channel augmentation on, each row is the clip or one of its cached copies (uniformly).
    Evaluation: file order, centre crops, no augmentation, so scores line up with
    `clips.files`. Rows are read from the (memory-mapped) cache one batch at a time.
    """
    batch_size = batch_size or cfg.batch_size
    seed = cfg.seed if seed is None else seed
    n = cfg.n_samples
    lengths = clips.lengths.astype(np.int32)
    labels = clips.labels.astype(np.float32)

    if training and clips.variants is None:
        clips.variants = training_variants(clips, cfg)
    variants = clips.variants if training else None
    copies = 0 if variants is None else variants.shape[1]

    def read_rows(index: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, ...]:
        audio = np.asarray(clips.audio[index])
        if copies:
            copy = pick > 0  # pick 0 is the clip itself, pick j its copy j - 1
            audio[copy] = variants[index[copy], pick[copy] - 1]
        return audio, lengths[index], labels[index]

    def load(index: tf.Tensor, pick: tf.Tensor | None = None) -> tuple[tf.Tensor, ...]:
        pick = tf.zeros_like(index, tf.int32) if pick is None else pick
        audio, length, label = tf.numpy_function(
            read_rows, [index, pick], [tf.int16, tf.int32, tf.float32], stateful=False
        )
        audio.set_shape([None, clips.audio.shape[1]])
        length.set_shape([None])
        label.set_shape([None])
        return audio, length, label

    def to_float(audio: tf.Tensor) -> tf.Tensor:
        return tf.cast(audio, tf.float32) / INT16_SCALE

    ds = tf.data.Dataset.range(len(clips))
    if not training:
        ds = ds.batch(batch_size).map(load)
        ds = ds.map(lambda a, length, y: (to_float(_crop(a, length, n, None)), y))
        return _without_autotuner(ds.prefetch(PREFETCH_BATCHES))

    ds = ds.shuffle(len(clips), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def train_step(index, batch_seed):
        pick_seed = tf.random.experimental.stateless_fold_in(batch_seed, 1)
        pick = tf.random.stateless_uniform(tf.shape(index), pick_seed, 0, copies + 1, tf.int32)
        audio, length, y = load(index, pick)
        crop_seed, aug_seed = tf.unstack(tf.random.experimental.stateless_split(batch_seed, 2))
        x = to_float(_crop(audio, length, n, crop_seed))
        return augment(x, cfg, aug_seed), y

    ds = tf.data.Dataset.zip((ds, seeds)).map(train_step, num_parallel_calls=PARALLEL_CALLS)
    return _without_autotuner(ds.prefetch(PREFETCH_BATCHES))
