"""Train, evaluate, predict and resume through the command line on a tiny generated dataset."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.detector import runs

SR = 16000


def _clip(rng: np.random.Generator, fake: bool) -> np.ndarray:
    """Real: noise bursts (broadband). Fake: a stack of harmonics plus a little noise.

    Different enough that a few epochs learn them, like a toy vocoder artefact.
    """
    t = np.arange(int(1.5 * SR)) / SR
    if fake:
        f0 = rng.uniform(100, 200)
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 12))
        x = x + 0.05 * rng.standard_normal(t.size)
    else:
        x = rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in [("training", 24), ("validation", 16), ("testing", 16)]:
        for label in ("real", "fake"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                sf.write(folder / f"{label}{i}.wav", _clip(rng, label == "fake"), SR)
    return root


# TensorFlow's own start-up lines (tests/test_runtime.py checks that there are none); what is
# left on stderr is what the command itself wrote
TENSORFLOW_NOISE = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN", "XNNPACK",
                    "TensorFlow binary")


def own_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if not any(noise in line for noise in TENSORFLOW_NOISE)]


def lcnn(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600, **kw)


def test_train_evaluate_predict(tiny_data, tmp_path):
    run = tmp_path / "run"
    r = lcnn("train", "--data_path", tiny_data, "--run_dir", run, "--epochs", 3,
             "--batch_size", 16, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "validation EER" in r.stdout
    for name in ("config.json", "history.csv", "state.json", "best.keras",
                 "scores-validation.tsv", "calibration.json"):
        assert (run / name).exists(), name
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3

    asvspoof = tmp_path / "scores-asvspoof.tsv"
    r = lcnn("evaluate", "--run_dir", run, "--data_path", tiny_data, "--json",
             "--score_file", asvspoof)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout.strip().splitlines()[-1])
    assert metrics["n_real"] == 16 and metrics["n_fake"] == 16
    # the metrics are those of the scores it wrote, counted here by hand
    test_rows = [line.split("\t")
                 for line in (run / "scores-testing.tsv").read_text().splitlines()[1:]]
    labels = np.array([r[2] == "fake" for r in test_rows])
    scores = np.array([float(r[1]) for r in test_rows])
    called = scores >= metrics["threshold"]
    tp, fp = np.sum(called & labels), np.sum(called & ~labels)
    fn = np.sum(~called & labels)
    assert metrics["accuracy"] == pytest.approx(np.mean(called == labels))
    assert metrics["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert metrics["recall"] == pytest.approx(tp / (tp + fn))
    assert metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    # ROC-AUC: the share of (fake, real) pairs in which the fake clip scores higher
    pairs = scores[labels][:, None] - scores[~labels][None, :]
    assert metrics["roc_auc"] == pytest.approx(np.mean((pairs > 0) + 0.5 * (pairs == 0)))
    # the minimum over thresholds or calibrations is never above the actual value
    assert metrics["min_dcf"] <= metrics["act_dcf"] and metrics["min_cllr"] <= metrics["cllr"]
    low, high = metrics["eer_ci95"]
    assert low <= metrics["eer"] <= high
    assert "validation" in metrics["threshold_source"] and metrics["calibration"]["a"] < 0
    # the ASVspoof file: higher = bona fide, the calibrated LLR, one line per clip
    lines = [line.split("\t") for line in asvspoof.read_text().splitlines()]
    assert lines[0] == ["filename", "attack", "cm-label", "cm-score"] and len(lines) == 1 + 32
    from lcnn.metrics import cllr

    assert cllr([key == "spoof" for _, _, key, _ in lines[1:]],
                [float(s) for *_, s in lines[1:]]) == pytest.approx(metrics["cllr"], abs=1e-5)
    r = lcnn("evaluate", "--run_dir", run, "--data_path", tiny_data, "--by", "speaker")
    assert r.returncode == 2 and "speaker" in r.stderr and "Traceback" not in r.stderr
    # it learned: the toy classes separate within 3 epochs
    assert metrics["eer"] <= 0.25 and metrics["roc_auc"] >= 0.85
    # and the reported EER is the one its own score file gives
    from lcnn.metrics import compute_eer

    assert compute_eer(labels.astype(int), scores)[0] == metrics["eer"]

    long_file = tmp_path / "long.wav"  # 5 s: scored in windows
    sf.write(long_file, np.concatenate([_clip(np.random.default_rng(1), True)] * 4), SR)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    r = lcnn("predict", "--run_dir", run, tiny_data / "testing" / "fake", long_file, broken,
             "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 16 + 2
    by_path = {Path(row["path"]).name: row for row in rows}
    assert by_path["long.wav"]["windows"] > 1
    assert by_path["broken.wav"]["score"] is None and by_path["broken.wav"]["error"]
    scored = [row for row in rows if row["score"] is not None]
    # a clip scores as evaluate scored it, and P(fake) at prior 0.5 is 1 / (1 + e^LLR)
    evaluated = {Path(r[0]).name: float(r[1]) for r in test_rows if r[2] == "fake"}
    assert {name: row["score"] for name, row in by_path.items() if name in evaluated} == (
        pytest.approx(evaluated, abs=1e-4))  # evaluate reads int16-rounded clips from its cache
    assert all(row["prior_fake"] == 0.5 and row["verdict"] in ("real", "fake") for row in scored)
    assert [row["p_fake"] for row in scored] == pytest.approx(
        [1 / (1 + np.exp(row["llr"])) for row in scored])
    # the stored validation threshold decides, and the output says so
    assert all(row["threshold"] == metrics["threshold"] for row in scored)
    assert all((row["verdict"] == "fake") == (row["score"] >= row["threshold"]) for row in scored)
    assert "validation" in scored[0]["threshold_source"]
    # higher raw score, lower LLR (bona fide vs spoof), higher probability of fake
    by_score = sorted(scored, key=lambda row: row["score"])
    assert [row["llr"] for row in by_score] == sorted((row["llr"] for row in by_score),
                                                      reverse=True)


def test_resume_after_kill(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data_path", tiny_data, "--run_dir", run, "--epochs", 6,
            "--batch_size", 8, "--patience", 99, "--quiet"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, "-m", "lcnn", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest interruption
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 6, "training was not interrupted mid-way"
    assert (run / "last.keras").exists()

    r = lcnn(*args)
    assert r.returncode == 0, r.stderr
    history = (run / "history.csv").read_text().splitlines()[1:]
    epochs = [int(float(line.split(",")[0])) for line in history]
    assert epochs == [1, 2, 3, 4, 5, 6]  # continued, no epoch repeated or lost
    assert json.loads(state.read_text())["finished"]

    # and it trained as a run never interrupted does (the default trains on RawBoost copies
    # too): the same losses and validation scores, epoch by epoch
    whole = tmp_path / "whole"
    r = lcnn(*[whole if a == run else a for a in args])
    assert r.returncode == 0, r.stderr
    resumed, uninterrupted = (runs.read_history(folder / runs.HISTORY) for folder in (run, whole))
    for a, b in zip(resumed, uninterrupted, strict=True):
        for name in ("loss", "accuracy", "val_eer", "val_cllr"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-6), (a["epoch"], name)

    r = lcnn(*[a for a in args if a != "--quiet"])  # a finished run is not retrained
    assert r.returncode == 0 and "already finished" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data_path", "/nonexistent/folder", "--epochs", 1], "/nonexistent/folder"),
        (["evaluate", "--run_dir", "/nonexistent/run"], "/nonexistent/run"),
        (["predict", "--run_dir", "/nonexistent/run", "x.wav"], "/nonexistent/run"),
        (["train", "--epochs", 1], "--data_path"),
        (["train", "--data_path", ".", "--epochs", "many"], "--epochs"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path):
    r = lcnn(*args, cwd=tmp_path)
    assert r.returncode == 2
    (line,) = own_lines(r.stderr)
    assert line.startswith(f"lcnn {args[0]}: error: ") and message in line


def test_run_folder_without_model(tmp_path):
    from lcnn.config import Config

    run = tmp_path / "run"
    run.mkdir()
    Config().to_json(run / "config.json")
    r = lcnn("predict", "--run_dir", run, "x.wav")
    assert r.returncode == 2
    (line,) = own_lines(r.stderr)
    assert line.startswith("lcnn predict: error: ") and "no trained model" in line
