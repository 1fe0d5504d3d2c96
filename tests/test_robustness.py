"""Cached augmented copies (lcnn.detector.data.build_variants), training reads of them, and
the robustness evaluation (evaluate --condition, --windows) on tiny generated data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn import augment, channels
from lcnn.app import cli
from lcnn.audio import load_audio, normalize
from lcnn.augment import channel_kinds
from lcnn.config import NO_CHANNEL_COPIES, Config
from lcnn.dataset import list_files
from lcnn.detector import data, runs
from lcnn.detector.evaluate import window_scores, with_channel
from lcnn.detector.predict import clip_windows, keras_scorer, score_file
from lcnn.detector.train import NEW_STATE
from lcnn.errors import ConfigError

RATE = 16000
CFG = Config(duration=0.25, batch_size=4, augment_noise=False, augment_shift=False,
             augment_gain=False, **NO_CHANNEL_COPIES)


def write_corpus(root: Path, seconds: float = 0.25, per_class: int = 3,
                 splits=("training",)) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * seconds)) / RATE
    for split in splits:
        for label in ("real", "fake"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                x = np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
                x = x + 0.3 * rng.standard_normal(len(t)) * (label == "real")
                sf.write(folder / f"{i}.wav", (0.3 * x / np.abs(x).max()).astype(np.float32),
                         RATE)
    return root


class Counter:
    """A channel that flips the sign and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, rng, j):
        self.calls += 1
        return -x * (j + 1)


def test_variants_are_cached_beside_the_split(tmp_path):
    clips = data.load_split(write_corpus(tmp_path), "training", CFG, progress=False)
    fn = Counter()
    first = data.build_variants(clips, fn, 2, "flip", progress=False)
    assert first.shape == (len(clips), 2, clips.audio.shape[1]) and fn.calls == 2 * len(clips)
    again = data.build_variants(clips, fn, 2, "flip", progress=False)
    assert fn.calls == 2 * len(clips) and np.array_equal(first, again)  # read, not rebuilt
    assert len(list(clips.cache.parent.glob(f"{clips.cache.stem}-v*.npy"))) == 1
    # each copy is normalised like a decoded clip: -x * (j + 1) becomes -x
    assert np.array_equal(first[:, 0], -np.asarray(clips.audio))
    assert np.array_equal(first[:, 1], first[:, 0])
    data.build_variants(clips, fn, 2, "other settings", progress=False)
    assert fn.calls == 4 * len(clips)  # another tag is another cache file


def test_variants_in_memory_and_seeded_per_clip(tmp_path):
    clips = data.load_split(write_corpus(tmp_path), "training", CFG, progress=False)
    loose = dataclasses.replace(clips, cache=None)

    def noisy(x, rng, j):
        return x + 0.01 * rng.standard_normal(len(x))

    a = data.build_variants(loose, noisy, 2, "noise", progress=False)
    b = data.build_variants(loose, noisy, 2, "noise", progress=False)
    assert isinstance(a, np.ndarray) and np.array_equal(a, b)
    assert not np.array_equal(a[:, 0], a[:, 1])  # copies differ from each other


def test_training_variants_follow_the_config(tmp_path):
    clips = data.load_split(write_corpus(tmp_path), "training", CFG, progress=False)
    assert data.training_variants(clips, CFG) is None
    cfg = dataclasses.replace(CFG, augment_telephone=True, augment_rawboost="2",
                              augment_variants=3)
    copies = data.training_variants(clips, cfg, progress=False)
    assert copies.shape[:2] == (len(clips), 3)
    # kinds in turn: telephone, RawBoost, telephone
    assert np.array_equal(copies[:, 0], copies[:, 2])
    phone = copies[0, 0].astype(np.float64)
    power = np.abs(np.fft.rfft(phone)) ** 2
    freqs = np.fft.rfftfreq(len(phone), 1 / RATE)
    assert power[freqs > 4000].sum() < 1e-3 * power.sum()
    boosted = np.abs(np.fft.rfft(copies[0, 1].astype(np.float64))) ** 2
    assert boosted[freqs > 4000].sum() > 1e-2 * boosted.sum()  # RawBoost 2 keeps the band
    assert not np.array_equal(copies[0, 1], clips.audio[0])


def test_rawboost_series_for_the_copies_in_turn(tmp_path):
    """augment_rawboost="12,3": the RawBoost copies alternate between series 1+2 and 3, each
    the same as rawboost() gives it; one series keeps the kind (and the cache) of before."""
    assert channel_kinds(dataclasses.replace(CFG, augment_rawboost="12")) == ["rawboost"]
    cfg = dataclasses.replace(CFG, augment_rawboost="12,3", augment_variants=3)
    assert channel_kinds(cfg) == ["rawboost:12", "rawboost:3"]
    clips = data.load_split(write_corpus(tmp_path), "training", CFG, progress=False)
    copies = data.training_variants(clips, cfg, progress=False)
    x = np.random.default_rng(1).standard_normal(RATE // 4)
    series = {j: augment.variant(x, kind, RATE, np.random.default_rng(0))
              for j, kind in enumerate(["rawboost:12", "rawboost:3"])}
    reference = {j: augment.rawboost(x, np.random.default_rng(0), algos, RATE)
                 for j, algos in enumerate(["12", "3"])}
    assert all(np.array_equal(series[j], reference[j]) for j in series)
    assert copies.shape[:2] == (len(clips), 3) and not np.array_equal(copies[:, 0], copies[:, 1])
    for bad in ("12,", ",3", "12,4", "1 2"):
        with pytest.raises(ConfigError, match="augment_rawboost"):
            Config(augment_rawboost=bad)


def test_training_batches_are_clips_or_their_copies(tmp_path):
    clips = data.load_split(write_corpus(tmp_path), "training", CFG, progress=False)
    clips.variants = data.build_variants(clips, lambda x, rng, j: -x * (j + 1), 2, "flip",
                                         progress=False)
    originals = np.asarray(clips.audio, np.float32) / data.INT16_SCALE
    seen = set()
    for _ in range(4):  # epochs
        for x, _y in data.make_dataset(clips, CFG, training=True):
            for row in x.numpy():
                match = [i for i in range(len(clips)) if np.allclose(np.abs(row), np.abs(
                    originals[i]), atol=1e-4)]
                assert len(match) == 1
                seen.add(bool(np.allclose(row, originals[match[0]], atol=1e-4)))
    assert seen == {True, False}  # both the clips and their copies were read


def test_with_channel_applies_the_condition(tmp_path):
    clips = data.load_split(write_corpus(tmp_path, splits=("testing",)), "testing", CFG,
                            progress=False)
    noisy = with_channel(clips, CFG, "noise-10db", channels.condition("noise-10db"), seed=3)
    assert noisy.audio.shape == clips.audio.shape and noisy.variants is None
    n = int(clips.lengths[0])
    x = np.asarray(clips.audio[0, :n], np.float64)
    y = np.asarray(noisy.audio[0, :n], np.float64)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
    assert snr == pytest.approx(10, abs=1.0)  # renormalised after the noise, hence not exact


class MeanAbs:
    """A stand-in model: the score of a window is its mean absolute sample."""

    def predict_on_batch(self, x):
        return np.mean(np.abs(x), axis=1, keepdims=True)


def test_window_scores_match_predict(tmp_path):
    root = write_corpus(tmp_path, seconds=0.8, splits=("testing",))  # 3.2 clips long
    files, _ = list_files(root, "testing")
    cfg = dataclasses.replace(CFG, batch_size=3)
    got = window_scores(MeanAbs(), files, cfg, chunk=4)
    want = [score_file(keras_scorer(MeanAbs()), f, cfg).score for f in files]
    assert np.allclose(got, want)
    channel = channels.condition("noise-20db")
    noisy = window_scores(MeanAbs(), files, cfg, channel, seed=1)
    x = load_audio(files[2], RATE)
    y = normalize(channel(x, RATE, np.random.default_rng([1, 2])))
    assert noisy[2] == pytest.approx(np.mean([np.abs(w).mean() for w in clip_windows(y, cfg)]))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """An untrained model saved as a run: enough to exercise the evaluate command."""
    from lcnn.detector.model import build_model

    root = write_corpus(tmp_path_factory.mktemp("data"), seconds=0.6, per_class=4,
                        splits=("testing",))
    run = tmp_path_factory.mktemp("run")
    runs.write_json(run / runs.CONFIG, {**dataclasses.asdict(CFG), "data_path": str(root)})
    runs.atomic_save_model(build_model(CFG), run / runs.BEST)
    return run


def test_evaluate_condition_all_prints_the_table(run_dir, capsys):
    assert cli.main(["evaluate", "--run_dir", str(run_dir), "--condition", "all"]) == 0
    out = capsys.readouterr().out
    for name in channels.CONDITIONS:
        assert f"  {name} " in out
    table = runs.read_json(run_dir / "robustness-testing.json")
    assert list(table) == list(channels.CONDITIONS)
    assert (run_dir / "metrics-testing-mp3-32k.json").exists()


def test_evaluate_one_condition_in_windows(run_dir, capsys):
    assert cli.main(["evaluate", "--run_dir", str(run_dir), "--condition", "g711",
                     "--windows", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["condition"] == "g711" and result["windows"] is True
    assert (run_dir / "scores-testing-g711-windows.tsv").exists()


def test_bad_condition_and_augmentation_flags_are_one_line(run_dir, capsys, tmp_path):
    assert cli.main(["evaluate", "--run_dir", str(run_dir), "--condition", "mp4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lcnn evaluate: error: unknown condition 'mp4'")
    assert cli.main(["train", "--data_path", str(tmp_path), "--rawboost", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lcnn train: error: --rawboost")


def test_evaluating_validation_keeps_the_scores_calibration_is_fitted_on(run_dir, tmp_path):
    from lcnn.detector.evaluate import evaluate

    root = write_corpus(tmp_path / "data", seconds=0.6, per_class=4, splits=("validation",))
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    runs.write_json(run / runs.CONFIG, {**dataclasses.asdict(CFG), "data_path": str(root)})
    training = "file\tscore\tlabel\n" + "".join(  # a stand-in for training's best epoch's
        f"v{i}.wav\t{0.1 + 0.1 * i:.1f}\t{'fake' if i % 2 else 'real'}\n" for i in range(8))
    (run / runs.VALIDATION_SCORES).write_text(training)
    runs.write_json(run / runs.STATE, {**NEW_STATE, "epoch": 5, "best_epoch": 5})
    result = evaluate(run, split="validation")
    assert result["best_epoch"] == 5  # which best.keras the metrics describe
    assert result["saved"][0] == str(run / "scores-validation-evaluated.tsv")
    assert (run / runs.VALIDATION_SCORES).read_text() == training


def test_another_dataset_is_evaluated_beside_the_runs_own_files(run_dir, tmp_path):
    from lcnn.detector.evaluate import data_tag, evaluate

    own = runs.data_spec(run_dir)["path"]
    assert data_tag(run_dir, None) == data_tag(run_dir, own) == ""
    evaluate(run_dir, split="testing")
    before = (run_dir / "scores-testing.tsv").read_text()
    other = write_corpus(tmp_path / "other set", seconds=0.6, per_class=4, splits=("testing",))

    result = evaluate(run_dir, other, "testing", condition="g711")

    tag = data_tag(run_dir, other)
    assert tag.startswith("-other-set-") and tag != data_tag(run_dir, tmp_path)
    assert result["saved"] == [str(run_dir / f"scores-testing{tag}-g711.tsv"),
                               str(run_dir / f"metrics-testing{tag}-g711.json")]
    assert str(other) in (run_dir / f"scores-testing{tag}-g711.tsv").read_text()
    assert (run_dir / "scores-testing.tsv").read_text() == before


def test_score_file_names_links_and_never_replaces_a_training_file(run_dir, tmp_path, capsys):
    from lcnn.detector.evaluate import evaluate

    links = tmp_path / "links"
    for audio in sorted((Path(runs.data_spec(run_dir)["path"]) / "testing").rglob("*.wav")):
        link = links / "testing" / audio.parent.name / audio.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(audio)
    evaluate(run_dir, links, "testing", score_file=tmp_path / "scores.tsv")
    names = [line.split("\t")[0] for line in (tmp_path / "scores.tsv").read_text().splitlines()]
    assert sorted(names[1:]) == [f"testing/{c}/{i}.wav" for c in ("fake", "real")
                                 for i in range(4)]

    config = (run_dir / runs.CONFIG).read_text()
    capsys.readouterr()
    assert cli.main(["evaluate", "--run_dir", str(run_dir), "--score_file",
                     str(run_dir / runs.CONFIG)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--score_file" in err and "would replace" in err
    assert (run_dir / runs.CONFIG).read_text() == config

    # its own earlier output is replaced; the dataset's list or audio (a typo) is not
    evaluate(run_dir, links, "testing", score_file=tmp_path / "scores.tsv")
    for victim in (tmp_path / "metadata.csv", next(links.rglob("*.wav")).resolve()):
        if not victim.exists():
            victim.write_text("file,label\n")
        kept = victim.read_bytes()
        assert cli.main(["evaluate", "--run_dir", str(run_dir), "--score_file",
                         str(victim)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not an earlier output of --score_file" in err
        assert victim.read_bytes() == kept


def test_train_flags_switch_each_kind_on():
    args = cli.build_parser().parse_args(["train", "--data_path", "x", "--codec", "--reverb",
                                          "--rawboost", "123", "--variants", "2"])
    cfg = cli._config_from_args(args)
    assert (cfg.augment_codec, cfg.augment_reverb, cfg.augment_telephone) == (True, True, False)
    assert cfg.augment_rawboost == "123" and cfg.augment_variants == 2
    default = cli._config_from_args(cli.build_parser().parse_args(["train", "--data_path", "x"]))
    assert channel_kinds(default) == channel_kinds(Config())  # no flag: Config's defaults
    args = cli.build_parser().parse_args(["train", "--data_path", "x", "--codec", "--no-reverb",
                                          "--no-telephone", "--rawboost", "off"])
    assert channel_kinds(cli._config_from_args(args)) == ["codec"]
    args = cli.build_parser().parse_args(["train", "--data_path", "x", "--no_augment"])
    assert channel_kinds(cli._config_from_args(args)) == []
    args = cli.build_parser().parse_args(["train", "--data_path", "x", "--no_augment", "--codec"])
    assert channel_kinds(cli._config_from_args(args)) == ["codec"]  # a kind named stays on
