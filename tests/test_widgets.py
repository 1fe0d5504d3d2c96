"""The notebook widgets show what their controls select (driven without a browser)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.audio import load_audio
from lcnn.config import Config
from lcnn.course.widgets import (
    ChannelPlayer,
    ClipPlayer,
    ScoreExplorer,
    SincExplorer,
    ThresholdExplorer,
    band_edges,
    matching_clip,
)
from lcnn.detector.data import INT16_SCALE

SR = 16000


def played(audio) -> np.ndarray:
    """The samples an IPython Audio player holds (it stores a WAV file)."""
    x, rate = sf.read(io.BytesIO(audio.data), dtype="float32")
    assert rate == SR
    return x


def tone_clip(rng: np.random.Generator, fake: bool, seconds: float = 1.0) -> np.ndarray:
    """Real: amplitude-modulated noise. Fake: a harmonic stack. Different enough to learn."""
    t = np.arange(int(seconds * SR)) / SR
    if fake:
        f0 = rng.uniform(100, 200)
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 10))
    else:
        x = rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small FoR-layout corpus with a metadata.csv: attacks 'a' and 'b', text ids shared
    between a real clip and its fakes."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for split, n in [("training", 8), ("validation", 4), ("testing", 4)]:
        for i in range(n):
            text_id = f"{split}-text{i}"
            for label, attack in [("real", "bonafide"), ("fake", "a" if i % 2 else "b")]:
                rel = f"{split}/{label}/{attack}_{i}.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, tone_clip(rng, label == "fake"), SR, subtype="PCM_16")
                rows.append({"file": rel, "split": split, "label": label, "attack": attack,
                             "lang": "en", "text_id": text_id, "recording": f"rec{i}"})
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


# ------------------------------------------------------------------ ClipPlayer


def test_clip_player_plays_the_chosen_file(corpus):
    player = ClipPlayer(corpus)
    for path in (player.files[3], player.files[-1]):
        player.file.value = path
        assert player.current_file == path and player.shown_files == [path]
        expected, _ = sf.read(path, dtype="float32")
        np.testing.assert_allclose(played(player.players[0]), expected, atol=1e-4)  # int16 rounding
    assert player.figure is not None


def test_clip_player_filters_follow_the_controls(corpus):
    player = ClipPlayer(corpus)
    assert len(player.files) == 16  # training: 8 real + 8 fake
    player.split.value = "testing"
    assert len(player.files) == 8 and all("testing" in p.parts for p in player.files)
    player.label.value = "fake"
    assert len(player.files) == 4 and all(p.parent.name == "fake" for p in player.files)
    player.attack.value = "a"
    assert [p.name for p in player.files] == ["a_1.wav", "a_3.wav"]
    assert player.current_file == player.files[0]
    player.label.value = "real"  # no real clip is attack "a"
    assert player.files == [] and player.current_file is None and player.players == []
    assert "No clip" in player.message


def test_clip_player_compare_shows_real_and_fake_of_the_same_words(corpus):
    player = ClipPlayer(corpus)
    player.label.value = "fake"
    player.file.value = corpus / "training/fake/b_2.wav"
    player.compare.value = True
    assert player.shown_files == [corpus / "training/real/bonafide_2.wav",
                                  corpus / "training/fake/b_2.wav"]
    assert len(player.players) == 2
    expected, _ = sf.read(corpus / "training/real/bonafide_2.wav", dtype="float32")
    np.testing.assert_allclose(played(player.players[0]), expected, atol=1e-4)  # int16 rounding


def test_matching_clip_prefers_the_source_recording():
    meta = {
        "real/x.wav": {"file": "real/x.wav", "label": "real", "text_id": "t", "recording": "r2",
                       "lang": "fr"},
        "real/y.wav": {"file": "real/y.wav", "label": "real", "text_id": "t", "recording": "r1",
                       "lang": "es"},
        "fake/z.wav": {"file": "fake/z.wav", "label": "fake", "text_id": "t", "recording": "r1",
                       "lang": "es"},
        "fake/w.wav": {"file": "fake/w.wav", "label": "fake", "text_id": "u", "recording": "r3",
                       "lang": "en"},
    }
    assert matching_clip(meta, "fake/z.wav") == "real/y.wav"
    assert matching_clip(meta, "fake/w.wav") is None
    assert matching_clip(meta, "missing.wav") is None


def test_clip_player_without_metadata_has_no_attack_filter(tmp_path, corpus):
    for path in corpus.glob("*/*/*.wav"):
        target = tmp_path / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    player = ClipPlayer(tmp_path)
    assert player.attack.disabled and player.compare.disabled
    assert list(player.attack.options) == ["(all)"]
    assert len(player.files) == 16


# ------------------------------------------------------------------ SincExplorer


def test_band_edges_of_an_ideal_response():
    freqs = np.arange(0, 8001, 10.0)
    response = np.where((freqs >= 1000) & (freqs <= 2000), 0.0, -60.0)
    lo, hi = band_edges(freqs, response)
    assert 990 < lo <= 1000 and 2000 <= hi < 2010


def test_sinc_explorer_band_edges_follow_the_sliders():
    explorer = SincExplorer(sample_rate=SR, kernel_size=129, low_hz=1000, band_hz=1000)
    assert explorer.cutoffs == pytest.approx((1000, 2000))
    lo, hi = explorer.edges
    # a windowed sinc's -3 dB points sit just inside its cut-offs
    assert 1000 < lo < 1150 and 1850 < hi < 2000

    explorer.low.value = 3000  # the whole band moves up by 2 kHz
    assert explorer.cutoffs == pytest.approx((3000, 4000))
    assert explorer.edges == pytest.approx((lo + 2000, hi + 2000), abs=15)

    explorer.band.value = 2000  # only the upper edge moves
    assert explorer.edges[0] == pytest.approx(lo + 2000, abs=15)
    assert explorer.edges[1] == pytest.approx(hi + 3000, abs=15)

    taps_before = explorer.taps.size
    explorer.kernel_size.value = 257
    assert explorer.taps.size == 257 > taps_before
    # longer filters have sharper skirts: the -3 dB edges move closer to the cut-offs
    assert 3000 < explorer.edges[0] < lo + 2000


# ------------------------------------------------------------------ ScoreExplorer


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder holding the default model, untrained (training would only slow the test
    down: the explorer must show whatever the model scores)."""
    from lcnn.detector import runs
    from lcnn.detector.model import build_model

    run_dir = tmp_path_factory.mktemp("run")
    cfg = Config(duration=1.0)
    cfg.to_json(run_dir / runs.CONFIG)
    runs.atomic_save_model(build_model(cfg), run_dir / runs.BEST)
    return run_dir


@pytest.fixture(scope="module")
def explorer(run, corpus) -> ScoreExplorer:
    return ScoreExplorer(run, corpus, split="testing")


def test_score_explorer_shows_the_models_score(explorer, run):
    from lcnn.detector import runs

    model = runs.load_model(run)
    for index in (explorer.rows[0].index, explorer.rows[-1].index):
        explorer.clip.value = index
        path = explorer.current_file
        # the same clip as the cache holds it: decoded, normalised, rounded to int16
        x = np.round(load_audio(path) * INT16_SCALE) / INT16_SCALE
        expected = float(model.predict(x[None, :].astype(np.float32), verbose=0)[0, 0])
        assert explorer.current_score == pytest.approx(expected, abs=1e-5)
        assert explorer.current_verdict == ("fake" if expected >= 0.5 else "real")
        np.testing.assert_allclose(played(explorer.player), x, atol=1e-4)  # int16 rounding


def test_score_explorer_sorts_by_worst_mistake(explorer):
    explorer.show_class.value = "(all)"
    explorer.sort.value = "most fake-sounding first"
    scores = [r.score for r in explorer.rows]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True)
    assert explorer.current == explorer.rows[0]
    explorer.sort.value = "worst mistakes first"
    errors = [r.error for r in explorer.rows]
    assert errors == sorted(errors, reverse=True)
    assert explorer.current == explorer.rows[0]  # the worst mistake is shown first
    assert explorer.current.error == max(abs(r.label - r.score) for r in explorer.all_rows)
    explorer.show_class.value = "real"
    assert len(explorer.rows) == 4 and all(r.label == 0 for r in explorer.rows)
    assert {r.attack for r in explorer.rows} == {"bonafide"}


def test_channel_player_scores_the_clip_it_plays_through_the_channel(run, corpus):
    from lcnn.channels import CONDITIONS
    from lcnn.detector import runs

    files = sorted((corpus / "testing" / "real").iterdir())[:2]  # white noise: wideband
    player = ChannelPlayer(run, files, threshold=0.5)
    player.file.value = files[1]
    player.condition.value = "telephone"
    model = runs.load_model(run)
    clean = load_audio(files[1])  # 1-s clips: exactly the model's input length
    through = CONDITIONS["telephone"](clean, SR, np.random.default_rng(0))
    expected = model.predict(np.stack([clean, through]).astype(np.float32), verbose=0)[:, 0]
    np.testing.assert_allclose(player.scores, expected, atol=1e-5)
    np.testing.assert_allclose(played(player.players[0]), clean, atol=1e-4)
    np.testing.assert_allclose(played(player.players[1]), np.clip(through, -1, 1), atol=1e-4)
    def high_band_share(x):  # of the magnitude spectrum, above 4 kHz
        spectrum = np.abs(np.fft.rfft(x))
        return spectrum[len(spectrum) // 2:].sum() / spectrum.sum()

    assert high_band_share(player.clean) > 0.3 and high_band_share(player.through) < 0.05


# ------------------------------------------------------------------ ThresholdExplorer


def test_threshold_explorer_follows_the_slider_and_presets():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    explorer = ThresholdExplorer(labels, scores, presets={"validation EER": 0.42, "none": None})
    assert [b.description for b in explorer.buttons] == ["validation EER"]
    for threshold in (0.3, 0.61):
        explorer.slider.value = threshold
        called_fake = scores >= threshold
        assert explorer.confusion == {
            "tn": int(np.sum(~called_fake[:30])), "fp": int(np.sum(called_fake[:30])),
            "fn": int(np.sum(~called_fake[30:])), "tp": int(np.sum(called_fake[30:]))}
        assert explorer.false_alarm == explorer.confusion["fp"] / 30
        assert explorer.miss == explorer.confusion["fn"] / 30
        # ASVspoof 5's cost written out: 0.95 x real rejected + 10 x 0.05 x fakes accepted
        assert explorer.dcf == pytest.approx(
            (0.95 * explorer.false_alarm + 0.5 * explorer.miss) / 0.5)
        texts = [t.get_text() for t in explorer.figure.axes[1].texts]
        assert texts[1].startswith(f"{explorer.confusion['fp']}\n")
    explorer.buttons[0].click()
    assert explorer.threshold == 0.42
