"""lcnn.detector.data (and the FoR layout of lcnn.dataset): the decoding cache, bad files,
tf.data pipelines, augmentation."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn import FAKE, REAL
from lcnn.audio import load_audio
from lcnn.config import NO_CHANNEL_COPIES, Config
from lcnn.dataset import find_splits, list_files
from lcnn.detector import data
from lcnn.errors import BadFilesError, LayoutError, LcnnError

RATE = 16000
# 4000 samples per clip keeps everything fast; channel copies have tests of their own
CFG = Config(duration=0.25, batch_size=4, **NO_CHANNEL_COPIES)
N = CFG.n_samples
NO_AUGMENT = replace(CFG, augment_noise=False, augment_shift=False, augment_gain=False)


def write_noise(path: Path, seconds: float, seed: int, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(int(rate * seconds))
    sf.write(path, noise.astype(np.float32), rate, subtype="PCM_16")
    return path


def make_corpus(root: Path, per_class: int = 3, seconds: float = 0.25, splits=("training",)):
    """<root>/<split>/{real,fake}/clipK.wav with distinct noise in every file."""
    seed = 0
    for split in splits:
        for cls in ("real", "fake"):
            for k in range(per_class):
                seed += 1
                write_noise(root / split / cls / f"clip{k}.wav", seconds, seed)
    return root


class CountingLoader:
    """Stands in for lcnn.detector.data.load_audio and counts the files it decodes."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path, sample_rate=16000):
        self.calls += 1
        return load_audio(path, sample_rate)


@pytest.fixture
def counter(monkeypatch):
    loader = CountingLoader()
    monkeypatch.setattr(data, "load_audio", loader)
    return loader


# ------------------------------------------------------------------ layout


def test_find_splits_accepts_any_case_and_short_names(tmp_path):
    for split in ("Training", "VAL", "test"):
        for cls in ("Real", "FAKE"):
            (tmp_path / split / cls).mkdir(parents=True)
    splits = find_splits(tmp_path)
    assert splits == {
        "training": tmp_path / "Training",
        "validation": tmp_path / "VAL",
        "testing": tmp_path / "test",
    }


def test_find_splits_enters_the_archive_top_folder(tmp_path):
    make_corpus(tmp_path / "for-2seconds", per_class=1, splits=("training", "testing"))
    (tmp_path / ".lcnn-cache").mkdir()  # hidden folders don't count
    splits = find_splits(tmp_path)
    assert splits["testing"] == tmp_path / "for-2seconds" / "testing"
    assert "validation" not in splits


def test_wrong_layout_says_what_was_found_and_expected(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(LayoutError) as info:
        find_splits(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "audio/" in message and "labels/" in message
    assert "training/" in message and "real/" in message and "fake/" in message


def test_split_without_class_folders_is_reported(tmp_path):
    (tmp_path / "training" / "real").mkdir(parents=True)
    (tmp_path / "training" / "spoof").mkdir()
    with pytest.raises(LayoutError, match=r"training: expected real/ and fake/.*real/, spoof/"):
        find_splits(tmp_path)


def test_a_single_split_folder_gets_a_hint(tmp_path):
    make_corpus(tmp_path, per_class=1)
    with pytest.raises(LayoutError, match="folder above"):
        find_splits(tmp_path / "training")


def test_missing_root_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="no such folder"):
        find_splits(tmp_path / "nowhere")


def test_list_files_uses_the_last_suffix_and_labels_real_0_fake_1(tmp_path):
    real, fake = tmp_path / "training" / "real", tmp_path / "training" / "fake"
    keep = [
        write_noise(real / "file1.wav_16k.wav_norm.wav_mono.wav_silence.wav_2sec.wav", 0.1, 1),
        write_noise(real / "B.WAV", 0.1, 2),
        write_noise(fake / "file9.mp3.wav_16k.wav_norm.wav", 0.1, 3),
        write_noise(fake / "speaker" / "deep.wav", 0.1, 4),  # sub-folders are searched
    ]
    (real / "notes.txt").write_text("not audio")
    (real / "clip.wav.txt").write_text("the last suffix decides")
    (fake / "._file9.wav").write_bytes(b"macOS metadata, not audio")
    files, labels = list_files(tmp_path, "train")
    assert files == [keep[1], keep[0], keep[2], keep[3]]  # real then fake, each sorted
    assert labels.tolist() == [REAL, REAL, FAKE, FAKE]


def test_missing_split_names_it_and_lists_the_splits_found(tmp_path):
    make_corpus(tmp_path, per_class=1, splits=("training", "validation"))
    with pytest.raises(LayoutError) as info:
        list_files(tmp_path, "testing")
    message = str(info.value)
    assert "testing" in message and "training/" in message and "validation/" in message


def test_unknown_split_name_is_rejected(tmp_path):
    make_corpus(tmp_path, per_class=1)
    with pytest.raises(LayoutError, match="unknown split 'holdout'"):
        list_files(tmp_path, "holdout")


def test_class_folder_without_audio_is_reported(tmp_path):
    make_corpus(tmp_path, per_class=1)
    for path in (tmp_path / "training" / "fake").iterdir():
        path.unlink()
    with pytest.raises(LayoutError, match="fake: no audio files"):
        list_files(tmp_path, "training")


# ------------------------------------------------------------------ decoding and cache


def test_load_split_decodes_into_an_int16_memmap(tmp_path):
    make_corpus(tmp_path, per_class=2, seconds=0.1)  # shorter than a clip
    write_noise(tmp_path / "training" / "fake" / "long.wav", 1.0, 99)  # 4 clips long
    clips = data.load_split(tmp_path, "training", CFG, progress=False)
    assert isinstance(clips.audio, np.memmap) and clips.audio.dtype == np.int16
    assert len(clips) == 5 and clips.labels.tolist() == [0, 0, 1, 1, 1]
    # the long file is centre-cropped to 1.5 clips, and the array is exactly that wide
    assert clips.audio.shape == (5, N + N // 2)
    assert clips.lengths.tolist() == [1600, 1600, 1600, 1600, N + N // 2]
    first = load_audio(clips.files[0], RATE)
    np.testing.assert_allclose(clips.audio[0, :1600] / 32767, first, atol=1 / 32767)
    assert not clips.audio[0, 1600:].any()  # zero padding after the clip
    long = load_audio(tmp_path / "training" / "fake" / "long.wav", RATE)
    start = (len(long) - (N + N // 2)) // 2
    np.testing.assert_allclose(
        clips.audio[4] / 32767, long[start : start + N + N // 2], atol=1 / 32767
    )


def test_array_is_at_least_one_clip_wide(tmp_path):
    make_corpus(tmp_path, per_class=1, seconds=0.05)
    clips = data.load_split(tmp_path, "training", CFG, progress=False)
    assert clips.audio.shape == (2, N)


def test_other_sample_rates_are_resampled_before_caching(tmp_path):
    write_noise(tmp_path / "training" / "real" / "a.wav", 0.2, 1, rate=8000)
    write_noise(tmp_path / "training" / "fake" / "b.wav", 0.2, 2, rate=44100)
    clips = data.load_split(tmp_path, "training", CFG, progress=False)
    assert clips.lengths.tolist() == [3200, 3200]


def test_second_load_reads_no_audio(tmp_path, counter):
    make_corpus(tmp_path, per_class=3)
    first = data.load_split(tmp_path, "training", CFG, progress=False)
    assert counter.calls == 6
    second = data.load_split(tmp_path, "training", CFG, progress=False)
    assert counter.calls == 6
    np.testing.assert_array_equal(first.audio, second.audio)
    assert first.files == second.files
    cache = sorted(p.name for p in (tmp_path / ".lcnn-cache").iterdir())
    assert len(cache) == 2 and cache[0].endswith(".json") and cache[1].endswith(".npy")


def test_a_changed_file_or_setting_decodes_again(tmp_path, counter):
    make_corpus(tmp_path, per_class=2)
    data.load_split(tmp_path, "training", CFG, progress=False)
    write_noise(tmp_path / "training" / "real" / "clip0.wav", 0.3, 1234)
    data.load_split(tmp_path, "training", CFG, progress=False)
    assert counter.calls == 8
    data.load_split(tmp_path, "training", replace(CFG, duration=0.5), progress=False)
    assert counter.calls == 12


def test_labels_corrected_in_a_list_are_read_from_the_list_not_the_cache(tmp_path, counter):
    make_corpus(tmp_path, per_class=2)
    rows = [f"training/{c}/clip{i}.wav" for c in ("real", "fake") for i in range(2)]
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,split\n" + "".join(
        f"{row},{label},training\n" for row, label in zip(rows, ["real", "real", "fake", "fake"],
                                                           strict=True)))
    first = data.load_split(manifest, "training", CFG, progress=False)
    manifest.write_text("path,label,split\n" + "".join(
        f"{row},{label},training\n" for row, label in zip(rows, ["fake", "real", "fake", "real"],
                                                           strict=True)))

    again = data.load_split(manifest, "training", CFG, progress=False)

    assert counter.calls == 4  # the audio came from the cache
    assert first.labels.tolist() == [REAL, REAL, FAKE, FAKE]
    assert again.labels.tolist() == [FAKE, REAL, FAKE, REAL]


def test_a_damaged_cache_is_rebuilt(tmp_path, counter):
    make_corpus(tmp_path, per_class=1)
    first = data.load_split(tmp_path, "training", CFG, progress=False)
    expected = np.array(first.audio)
    (npy,) = (tmp_path / ".lcnn-cache").glob("*.npy")
    npy.write_bytes(b"not numpy")
    again = data.load_split(tmp_path, "training", CFG, progress=False)
    assert counter.calls == 4
    np.testing.assert_array_equal(again.audio, expected)


def test_cache_dir_can_be_chosen(tmp_path):
    make_corpus(tmp_path / "corpus", per_class=1)
    data.load_split(tmp_path / "corpus", "training", CFG, cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "corpus" / ".lcnn-cache").exists()
    assert sorted(p.suffix for p in (tmp_path / "c").iterdir()) == [".json", ".npy"]


def test_unwritable_root_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    make_corpus(tmp_path / "corpus", per_class=1)
    (tmp_path / "corpus" / ".lcnn-cache").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    data.load_split(tmp_path / "corpus", "training", CFG, progress=False)
    assert len(list((tmp_path / "home-cache" / "lcnn").glob("training-*.npy"))) == 1


def add_bad_files(root: Path, count: int) -> list[Path]:
    folder = root / "training" / "fake"
    bad = []
    for k in range(count):
        path = folder / f"bad{k:02d}.wav"
        path.write_bytes(b"" if k % 2 == 0 else b"this is not a wave file at all")
        bad.append(path)
    return bad


def test_bad_files_error_lists_every_bad_file_and_the_skip_flag(tmp_path, counter):
    make_corpus(tmp_path, per_class=2)
    bad = add_bad_files(tmp_path, 3)
    with pytest.raises(BadFilesError) as info:
        data.load_split(tmp_path, "training", CFG, progress=False)
    error = info.value
    assert isinstance(error, LcnnError)
    message = str(error)
    assert message.startswith("3 bad audio file(s)")
    for path in bad:
        assert path.name in message
    assert "empty file (0 bytes)" in message and "not an audio file" in message
    assert "skip_bad" in message
    assert [p for p, _ in error.bad] == bad
    # the bad list is cached too: asking again decodes nothing
    calls = counter.calls
    with pytest.raises(BadFilesError):
        data.load_split(tmp_path, "training", CFG, progress=False)
    assert counter.calls == calls


def test_long_bad_file_lists_are_cut_after_ten(tmp_path):
    make_corpus(tmp_path, per_class=1)
    add_bad_files(tmp_path, 13)
    with pytest.raises(BadFilesError) as info:
        data.load_split(tmp_path, "training", CFG, progress=False)
    message = str(info.value)
    assert "bad09.wav" in message and "bad10.wav" not in message
    assert "... and 3 more" in message


def test_skip_bad_warns_once_and_carries_on(tmp_path, caplog):
    make_corpus(tmp_path, per_class=2)
    bad = add_bad_files(tmp_path, 3)
    with caplog.at_level(logging.WARNING, logger="lcnn.detector.data"):
        clips = data.load_split(tmp_path, "training", CFG, skip_bad=True, progress=False)
    assert len(caplog.records) == 1 and "skipped 3 bad audio file(s)" in caplog.text
    assert len(clips) == 4 and clips.audio.shape[0] == 4
    assert not set(bad) & set(clips.files)
    assert [p for p, _ in clips.skipped] == bad


def test_a_split_with_no_usable_file_fails_even_with_skip_bad(tmp_path):
    for cls in ("real", "fake"):
        (tmp_path / "training" / cls).mkdir(parents=True)
        (tmp_path / "training" / cls / "x.wav").write_bytes(b"")
    with pytest.raises(BadFilesError, match="No usable audio file"):
        data.load_split(tmp_path, "training", CFG, skip_bad=True, progress=False)


def test_class_weights_are_balanced():
    weights = data.class_weights(np.array([0, 0, 0, 1]))
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})
    assert data.class_weights(np.array([1, 0, 1, 0])) == pytest.approx({0: 1.0, 1: 1.0})


# ------------------------------------------------------------------ tf.data


@pytest.fixture
def clips(tmp_path):
    make_corpus(tmp_path, per_class=5, seconds=0.25)  # exactly one clip each
    return data.load_split(tmp_path, "training", CFG, progress=False)


def epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def row_of(x: np.ndarray, clips: data.Clips) -> int:
    """Which cached clip a (non-augmented, full-length) example came from."""
    matches = np.flatnonzero(np.all(np.abs(clips.audio[:, :N] / 32767 - x) < 1e-6, axis=1))
    assert len(matches) == 1
    return int(matches[0])


def test_evaluation_dataset_is_in_file_order_and_deterministic(clips):
    ds = data.make_dataset(clips, CFG, training=False, batch_size=4)
    x, y = epoch(ds)
    assert x.dtype == np.float32 and x.shape == (10, N)
    assert y.dtype == np.float32 and y.tolist() == clips.labels.tolist()
    np.testing.assert_allclose(x, clips.audio[:, :N] / 32767, atol=1e-7)
    x2, _ = epoch(ds)
    np.testing.assert_array_equal(x, x2)
    assert [b[0].shape[0] for b in ds] == [4, 4, 2]


@pytest.mark.parametrize("training", [True, False])
def test_datasets_run_without_the_autotuner(clips, training):
    # its thread made deleting an epoch's iterator wait seconds (bench/README.md)
    ds = data.make_dataset(clips, CFG, training=training)
    assert ds.options().autotune.enabled is False


def test_evaluation_takes_the_centre_of_longer_clips(tmp_path):
    make_corpus(tmp_path, per_class=1, seconds=1.0)
    clips = data.load_split(tmp_path, "training", CFG, progress=False)
    x, _ = epoch(data.make_dataset(clips, CFG, training=False))
    start = (clips.lengths[0] - N) // 2
    np.testing.assert_allclose(x[0], clips.audio[0, start : start + N] / 32767, atol=1e-7)


def test_training_dataset_shuffles_every_epoch_and_keeps_labels(clips):
    ds = data.make_dataset(clips, NO_AUGMENT, training=True, batch_size=3, seed=1)
    orders = []
    for _ in range(3):
        x, y = epoch(ds)
        assert x.shape == (10, N) and x.dtype == np.float32
        rows = [row_of(example, clips) for example in x]
        assert sorted(rows) == list(range(10))  # every clip once per epoch
        assert y.tolist() == clips.labels[rows].tolist()  # labels travel with their clips
        orders.append(rows)
    assert orders[0] != orders[1] or orders[1] != orders[2]
    assert orders[0] != list(range(10))


def test_training_takes_random_crops_of_longer_clips(tmp_path):
    make_corpus(tmp_path, per_class=1, seconds=1.0)
    clips = data.load_split(tmp_path, "training", CFG, progress=False)
    ds = data.make_dataset(clips, NO_AUGMENT, training=True, seed=3)
    starts = set()
    stored = clips.audio[0, : clips.lengths[0]] / 32767
    for _ in range(5):
        x, y = epoch(ds)
        example = x[list(y).index(0)]
        # find where this crop sits in the stored clip
        hits = [s for s in range(len(stored) - N + 1) if abs(stored[s] - example[0]) < 1e-7]
        hits = [s for s in hits if np.allclose(stored[s : s + N], example, atol=1e-7)]
        assert len(hits) == 1
        starts.add(hits[0])
    assert len(starts) > 1


def test_training_augmentation_changes_clips_only_when_enabled(clips):
    plain, _ = epoch(data.make_dataset(clips, NO_AUGMENT, training=True, seed=5))
    augmented, _ = epoch(data.make_dataset(clips, CFG, training=True, seed=5))
    for example in plain:
        row_of(example, clips)  # every example is an untouched cached clip
    for example in augmented:
        assert not np.any(np.all(np.abs(clips.audio[:, :N] / 32767 - example) < 1e-6, axis=1))
    assert np.abs(augmented).max() <= 1.0


# ------------------------------------------------------------------ augmentation functions


def sines(batch: int = 16, n: int = N) -> np.ndarray:
    t = np.arange(n) / RATE
    freqs = np.linspace(200, 2000, batch)[:, None]
    return (0.2 * np.sin(2 * np.pi * freqs * t)).astype(np.float32)


def test_noise_is_added_at_an_snr_between_10_and_40_db():
    x = sines()
    out = data.add_noise(x, seed=1).numpy()
    noise = out - x
    snr = 10 * np.log10(np.mean(x**2, axis=1) / np.mean(noise**2, axis=1))
    assert np.all(snr > 10 - 0.5) and np.all(snr < 40 + 0.5)
    assert snr.max() - snr.min() > 5  # drawn per clip, not one level for all
    assert abs(noise.mean()) < 0.01  # white, zero-mean


def test_gain_stays_within_6_db_and_varies():
    x = sines()
    out = data.random_gain(x, seed=2).numpy()
    ratio = out / np.where(np.abs(x) > 1e-3, x, np.nan)
    gain_db = 20 * np.log10(np.nanmean(ratio, axis=1))
    assert np.allclose(np.nanstd(ratio, axis=1), 0, atol=1e-5)  # one gain per clip
    assert np.all(np.abs(gain_db) <= 6 + 1e-4)
    assert gain_db.max() - gain_db.min() > 2


def test_gain_keeps_samples_within_unit_range():
    x = np.full((8, 100), 0.9, dtype=np.float32)
    assert np.abs(data.random_gain(x, seed=3, gain_db=12.0).numpy()).max() <= 1.0


def test_shift_moves_the_signal_by_up_to_a_tenth_with_zero_fill():
    n = 1000
    x = np.tile((np.arange(n) + 1) / n, (16, 1)).astype(np.float32)
    out = data.time_shift(x, seed=4).numpy()
    shifts = []
    for row in out:
        nonzero = np.flatnonzero(row)
        # out[i] = x[i - s]: recover s from any sample and check all others agree
        s = int(round(nonzero[0] - (row[nonzero[0]] * n - 1)))
        expected = np.zeros(n, dtype=np.float32)
        if s >= 0:
            expected[s:] = x[0, : n - s]
        else:
            expected[:s] = x[0, -s:]
        np.testing.assert_allclose(row, expected, atol=1e-6)
        shifts.append(s)
    assert all(abs(s) <= n // 10 for s in shifts)
    assert len(set(shifts)) > 3


def test_augmentations_work_on_a_single_clip_and_are_seeded():
    x = sines(1)[0]
    for fn in (data.add_noise, data.time_shift, data.random_gain):
        a, b = fn(x, seed=7).numpy(), fn(x, seed=7).numpy()
        assert a.shape == x.shape
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(fn(x, seed=8).numpy(), a)


@pytest.mark.parametrize("flag", ["augment_noise", "augment_shift", "augment_gain"])
def test_augment_applies_exactly_the_enabled_flags(flag):
    x = sines()
    off = data.augment(x, NO_AUGMENT, seed=9).numpy()
    np.testing.assert_array_equal(off, x)
    out = data.augment(x, replace(NO_AUGMENT, **{flag: True}), seed=9).numpy()
    assert not np.allclose(out, x)
    if flag == "augment_gain":  # a pure rescaling of each clip
        scale = (out * x).sum(axis=1) / (x * x).sum(axis=1)
        np.testing.assert_allclose(out, scale[:, None] * x, atol=1e-6)
    elif flag == "augment_shift":  # same samples, moved: energy can only drop (zero fill)
        assert np.all((out**2).sum(axis=1) <= (x**2).sum(axis=1) + 1e-4)
        assert np.all(np.isclose(out, 0) | np.isin(np.round(out, 6), np.round(x, 6)))
    else:  # noise everywhere
        assert np.all(np.abs(out - x).mean(axis=1) > 0)
