"""Hostile-but-honest use of the command line: every mistake ends in one `lcnn ...: error:`
line on stderr and a non-zero exit, and nothing outside the run folder changes.

Most cases call `lcnn.cli.main` in this process (argument and folder checks need no
TensorFlow); a few run `python -m lcnn` in a subprocess where a crash could take the test
process down (a damaged .tflite) or where the process itself matters (a kill, a lock).
TensorFlow's own start-up log lines are not lcnn's and are ignored here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.cli import main

SR = 16000


def _write_clip(path: Path, seed: int, fake: bool, seconds: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * 150 * t) if fake else rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * x / np.max(np.abs(x))).astype(np.float32), SR)


def make_dataset(root: Path, per_class: int = 2) -> Path:
    """A tiny dataset in the FoR layout: per_class clips of 0.5 s per class and split."""
    for split in ("training", "validation", "testing"):
        for label in ("real", "fake"):
            for i in range(per_class):
                _write_clip(root / split / label / f"{label}{i}.wav", i, label == "fake")
    return root


def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every path under root with its type, size, mtime and content hash (for files)."""
    out = {}
    excluded = [p.resolve() for p in exclude]
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in excluded]
        for name in dirnames + filenames:
            path = here / name
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                hash(data))
    return out


def error_lines(stderr: str) -> list[str]:
    """lcnn's own lines on stderr (TensorFlow's log lines start otherwise)."""
    return [line for line in stderr.splitlines() if line.startswith(("lcnn ", "lcnn:"))]


def assert_one_error(code: int, stderr: str, *words: str) -> str:
    """Non-zero exit, exactly one lcnn error line naming `words`, no traceback."""
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, **kw)


@pytest.fixture
def data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


# ------------------------------------------------------------------ --overwrite never loses data


def test_overwrite_refuses_a_folder_with_foreign_files(tmp_path, data, capsys):
    run = tmp_path / "X"
    (run / "notes").mkdir(parents=True)
    (run / "thesis.txt").write_text("x\n")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run,
                            "--overwrite", "--epochs", 1)
    assert_one_error(code, err, str(run), "not an lcnn run folder")
    assert snapshot(tmp_path) == before
    assert (run / "thesis.txt").read_text() == "x\n"


def test_overwrite_refuses_the_data_folder(tmp_path, data, capsys):
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", data,
                            "--overwrite", "--epochs", 1)
    assert_one_error(code, err, str(data))
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_a_run_folder_holding_a_foreign_file(tmp_path, data, capsys):
    from lcnn import runs

    run = tmp_path / "run"
    run.mkdir()
    for name in (runs.MARKER, runs.CONFIG, runs.STATE, runs.BEST):
        (run / name).write_text("{}")
    (run / "my-notes.md").write_text("keep me")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run,
                            "--overwrite", "--epochs", 1)
    assert_one_error(code, err, "my-notes.md")
    assert snapshot(tmp_path) == before


def test_is_run_folder_accepts_old_and_new_run_folders(tmp_path):
    from lcnn import runs

    old = tmp_path / "old"  # written before the marker existed
    old.mkdir()
    for name in (runs.CONFIG, runs.STATE, runs.HISTORY, runs.BEST, "scores-validation.tsv",
                 "metrics-testing.json", "model-int8.tflite", ".best.keras.k2j3h4.keras"):
        (old / name).write_text("x")
    assert runs.is_run_folder(old)
    new = tmp_path / "new"
    new.mkdir()
    (new / runs.MARKER).write_text("x")
    assert runs.is_run_folder(new)
    (new / "sub").mkdir()
    assert not runs.is_run_folder(new) and runs.foreign_entries(new) == ["sub"]
    lonely = tmp_path / "lonely"  # only known names, but neither marker nor config + state
    lonely.mkdir()
    (lonely / runs.HISTORY).write_text("x")
    assert not runs.is_run_folder(lonely)
    with pytest.raises(runs.RunError, match="no .lcnn-run marker"):
        runs.check_deletable(lonely)


def test_new_run_refuses_a_folder_with_foreign_files(tmp_path, data, capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "thesis.txt").write_text("x")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run)
    assert_one_error(code, err, "thesis.txt", "did not write")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ flags: one line, no run folder

BAD_TRAIN_FLAGS = [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--epochs", "-1"], "--epochs must be a positive integer"),
    (["--epochs", "many"], "--epochs"),
    (["--batch_size", "0"], "--batch_size must be a positive integer"),
    (["--batch_size", "-8"], "--batch_size must be a positive integer"),
    (["--threads", "-1"], "--threads must be an integer >= 0"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2**31)"),
    (["--seed", str(2**40)], "--seed"),
    (["--learning_rate", "nan"], "--learning_rate must be a number in (0, 1]"),
    (["--learning_rate", "inf"], "--learning_rate"),
    (["--learning_rate", "1e30"], "--learning_rate"),
    (["--learning_rate", "-1"], "--learning_rate"),
    (["--learning_rate", "0"], "--learning_rate"),
    (["--patience", "-1"], "--patience must be an integer >= 0"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--resume", "--overwrite"], "contradict"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_TRAIN_FLAGS,
                         ids=[" ".join(f) for f, _ in BAD_TRAIN_FLAGS])
def test_bad_train_flags(flags, message, tmp_path, data, capsys):
    run = tmp_path / "run"
    before = snapshot(tmp_path)
    try:
        code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run, *flags)
    except SystemExit as e:  # argparse's own errors
        code, err = e.code, capsys.readouterr().err
    assert_one_error(code, err, message)
    assert not run.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "1"],  # no --data_path
    ["evaluate", "--run_dir", "R", "--threshold", "nan"],
    ["predict", "--run_dir", "R", "x.wav", "--threshold", "inf"],
    ["frobnicate"],
])
def test_bad_command_lines(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code, _, err = run_main(capsys, *args)
    except SystemExit as e:
        code, err = e.code, capsys.readouterr().err
    assert_one_error(code, err)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad --run_dir and --data_path


def test_run_dir_that_is_a_file(tmp_path, data, capsys):
    run = tmp_path / "run"
    run.write_text("x")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run)
    assert_one_error(code, err, str(run), "is a file")
    assert snapshot(tmp_path) == before


def test_run_dir_under_a_file(tmp_path, data, capsys):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir",
                            tmp_path / "file" / "run")
    assert_one_error(code, err, "which is a file")
    assert snapshot(tmp_path) == before


def test_unwritable_run_dir(tmp_path, data, capsys, monkeypatch):
    from lcnn import runs

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(runs.os, "access", lambda p, mode: Path(p) != locked
                        and real_access(p, mode))  # as for an unprivileged user after chmod 555
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", locked / "run")
    assert_one_error(code, err, "permission denied")
    assert snapshot(tmp_path) == before


def test_typo_in_data_path_leaves_no_run_folder(tmp_path, data, capsys):
    run = tmp_path / "run"
    code, _, err = run_main(capsys, "train", "--data_path", tmp_path / "dta", "--run_dir", run,
                            "--epochs", 1)
    assert_one_error(code, err, "dta")
    assert not run.exists()  # so the corrected command is not refused as "other settings"


def test_one_class_left_after_skip_bad_fails_before_training(tmp_path, data, capsys):
    for path in (data / "validation" / "real").iterdir():
        path.write_bytes(b"RIFF broken")
    run = tmp_path / "run"
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run,
                            "--skip_bad", "--epochs", 1, "--quiet")
    assert_one_error(code, err, "validation", "only fake clips are left")
    assert not run.exists()
