"""The committed demo corpus data/demo/: layout, format, metadata, splits, and no shortcuts."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
SPLITS = ("training", "validation", "testing")
sys.path.insert(0, str(ROOT / "tools"))
import demo_corpus  # noqa: E402
from demo_corpus import cues  # noqa: E402  (the builder's cue functions: numpy/scipy only)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(DEMO / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def measured(rows) -> list[dict[str, float]]:
    return [cues.measure_file(DEMO / r["file"]) for r in rows]


def test_layout_and_format():
    clips = sorted(DEMO.glob("*/*/*.*"))
    assert clips, "no clips under data/demo"
    assert {p.parent.parent.name for p in clips} == set(SPLITS)
    assert {p.parent.name for p in clips} == {"real", "fake"}
    for path in clips:
        info = sf.info(str(path))
        where = path.relative_to(DEMO)
        assert (info.format, info.subtype) == ("FLAC", "PCM_16"), where
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000), where
    # what git holds: the decoded-clip cache that training writes next to the data is not
    total = sum(p.stat().st_size for p in DEMO.rglob("*")
                if p.is_file() and ".lcnn-cache" not in p.parts)
    assert total <= 60 * 1024 * 1024


def test_counts_are_balanced_and_large_enough(rows):
    n = defaultdict(int)
    for r in rows:
        n[(r["split"], r["label"])] += 1
    for split in SPLITS:
        real, fake = n[(split, "real")], n[(split, "fake")]
        assert real >= 30 and fake >= 30, (split, real, fake)
        assert abs(real - fake) <= 0.1 * (real + fake), (split, real, fake)
    assert n[("testing", "real")] + n[("testing", "fake")] >= 300
    for label in ("real", "fake"):  # training gets the most
        assert n[("training", label)] > max(n[("validation", label)], n[("testing", label)])


def test_metadata_matches_files_on_disk(rows):
    on_disk = {p.relative_to(DEMO).as_posix() for p in DEMO.glob("*/*/*.*")}
    listed = [r["file"] for r in rows]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == on_disk
    for r in rows:
        split, label, _ = r["file"].split("/")
        assert (r["split"], r["label"]) == (split, label), r["file"]
        assert (r["attack"] == "bonafide") == (label == "real"), r["file"]
        for column in ("source", "speaker", "gender", "lang", "text_id", "recording",
                       "licence"):
            assert r[column], (r["file"], column)


def test_attack_families_and_unseen_attack(rows):
    splits_of = defaultdict(set)
    for r in rows:
        if r["label"] == "fake":
            splits_of[r["attack"]].add(r["split"])
    assert len(splits_of) >= 4, sorted(splits_of)
    unseen = [a for a, s in splits_of.items() if s == {"testing"}]
    assert unseen, "no attack family appears only in testing"
    card = (DEMO / "README.md").read_text(encoding="utf-8")
    assert all(a in card for a in unseen)
    assert "CC-BY-SA-3.0" in card


@pytest.mark.parametrize("column", ["text_id", "recording", "text"])
def test_nothing_is_shared_between_splits(rows, column):
    splits_of = defaultdict(set)
    for r in rows:
        if r[column]:
            key = " ".join(re.findall(r"[a-z0-9']+", r[column].lower()))
            splits_of[key].add(r["split"])
    shared = {k: s for k, s in splits_of.items() if len(s) > 1}
    assert not shared, f"{column} in several splits: {sorted(shared)[:5]}"


@pytest.mark.parametrize("column", ["speaker", "gender", "lang"])
def test_each_speaker_gender_and_language_has_both_classes_alike(rows, column):
    """Real and fake clips are balanced per speaker, gender and language, in every split."""
    n = defaultdict(lambda: defaultdict(int))
    for r in rows:
        n[(r["split"], r[column])][r["label"]] += 1
    for key, count in n.items():
        share = count["fake"] / (count["fake"] + count["real"])
        assert 0.45 <= share <= 0.55, (key, dict(count))


def test_fakes_copy_real_recordings_of_their_own_split(rows):
    """Every fake is a vocoded copy of a real recording that is in the same split."""
    real = {(r["recording"], r["speaker"], r["split"]) for r in rows if r["label"] == "real"}
    for r in rows:
        if r["label"] == "fake":
            assert (r["recording"], r["speaker"], r["split"]) in real, r["file"]


def _cue_auc(rows, measured, with_metadata: bool) -> float:
    train = [i for i, r in enumerate(rows) if r["split"] == "training"]
    test = [i for i, r in enumerate(rows) if r["split"] == "testing"]
    label = [int(r["label"] == "fake") for r in rows]
    meta = ([rows[i] for i in train], [rows[i] for i in test]) if with_metadata else ()
    return cues.cue_auc([measured[i] for i in train], [label[i] for i in train],
                        [measured[i] for i in test], [label[i] for i in test], *meta)


@pytest.mark.parametrize("with_metadata", [False, True], ids=["cues", "cues+speaker"])
def test_simple_cues_do_not_separate_the_classes(rows, measured, with_metadata):
    """A logistic regression on level, silence, DC, band-energy, flatness and quantisation
    cues (and on speaker, gender and language) must stay near chance on testing."""
    auc = _cue_auc(rows, measured, with_metadata)
    assert auc <= 0.60, f"cue classifier ROC-AUC {auc:.3f} on testing: the corpus has a shortcut"


def test_cue_classifier_finds_a_planted_shortcut(rows, measured):
    """The audit can fail: the same classifier catches a cue that does give the class away."""
    planted = [m | {"rms_dbfs": m["rms_dbfs"] + (0.3 if r["label"] == "fake" else 0.0)}
               for m, r in zip(measured, rows, strict=True)]
    assert _cue_auc(rows, planted, with_metadata=True) > 0.9


@pytest.mark.parametrize("cue", [c for c in cues.CUES if c != "duration_s"])
def test_no_single_cue_separates_the_classes(rows, measured, cue):
    """Each cue alone, used as a score over all clips, stays near chance in either direction."""
    label = [int(r["label"] == "fake") for r in rows]
    auc = roc_auc_score(label, [m[cue] for m in measured])
    assert 0.30 <= auc <= 0.70, f"{cue} alone gives ROC-AUC {auc:.3f}"


def test_every_clip_has_the_same_length_and_level(measured):
    assert {m["duration_s"] for m in measured} == {2.0}
    rms = np.array([m["rms_dbfs"] for m in measured])
    assert np.all(np.abs(rms - np.median(rms)) < 0.5)
    assert np.all(np.abs([m["dc_offset"] for m in measured]) < 1e-3)


def test_importing_the_helpers_leaves_thread_variables_alone():
    """Only the builder caps the numerical libraries' threads (when it starts): a test that
    imports a helper must not change the environment of the whole test session."""
    env = {k: v for k, v in os.environ.items() if k not in demo_corpus.THREAD_VARIABLES}
    code = ("import os, sys; sys.path.insert(0, 'tools'); import demo_corpus.cues; "
            "print([os.environ.get(v) for v in demo_corpus.THREAD_VARIABLES])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([None] * len(demo_corpus.THREAD_VARIABLES))


def test_cap_threads_sets_what_is_unset_and_keeps_what_is_set(monkeypatch):
    first, *rest = demo_corpus.THREAD_VARIABLES
    monkeypatch.setenv(first, "7")
    for name in rest:
        monkeypatch.delenv(name, raising=False)
    demo_corpus.cap_threads(3)
    assert [os.environ[v] for v in demo_corpus.THREAD_VARIABLES] == ["7"] + ["3"] * len(rest)
