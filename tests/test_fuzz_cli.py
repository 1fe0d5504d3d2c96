"""Hostile-but-honest use of the command line: every mistake ends in one `lcnn ...: error:`
line on stderr and a non-zero exit, and nothing outside the run folder changes.

Most cases call `lcnn.app.cli.main` in this process (argument and folder checks need no
TensorFlow); two run `python -m lcnn` in a subprocess: where a crash could take the test
process down (a truncated int8 .tflite) and where the process itself matters (a closed
pipe). Bad input that is not the user's whole request (one unreadable file among many) is a
per-file error line in predict's output instead. TensorFlow's own start-up log lines are not
lcnn's and are ignored here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.app.cli import main
from lcnn.config import Config

SR = 16000


def _write_clip(path: Path, seed: int, fake: bool, seconds: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * 150 * t) if fake else rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # soundfile cannot open names that are not UTF-8 itself
        sf.write(f, (0.3 * x / np.max(np.abs(x))).astype(np.float32), SR, format="WAV")


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
    from lcnn.detector import runs

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
    from lcnn.detector import runs

    old = tmp_path / "old"  # written before the marker existed
    old.mkdir()
    for name in (runs.STATE, runs.HISTORY, runs.BEST, "scores-validation.tsv",
                 "metrics-testing.json", "model-int8.tflite", ".best.keras.k2j3h4.keras"):
        (old / name).write_text("x")
    (old / runs.CONFIG).write_text(json.dumps(FIRST_CONFIG))
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


# config.json as lcnn's first version wrote it (commit 4c105fc), before run folders had a marker
FIRST_CONFIG = {"sample_rate": 16000, "duration": 2.0, "model": "lcnn", "epochs": 15,
                "batch_size": 64, "learning_rate": 1e-3, "clipnorm": 1.0, "focal_alpha": 0.25,
                "focal_gamma": 2.0, "class_weights": True, "patience": 5, "seed": 42}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_another_programs_run_folder_is_not_taken_for_an_old_lcnn_run(tmp_path, data, capsys,
                                                                      overwrite):
    """A Keras project's folder with config.json, state.json and best.keras, no marker: lcnn
    neither resumes nor deletes it (it used to read it as a run saved before the marker, call
    its state damaged, and advise --overwrite, which deleted it)."""
    from lcnn.detector import runs

    other = tmp_path / "other"
    other.mkdir()
    (other / runs.CONFIG).write_text(json.dumps({"model": "resnet50", "epochs": 10,
                                                 "batch_size": 32, "learning_rate": 0.01}))
    (other / runs.STATE).write_text(json.dumps({"step": 1200}))
    (other / runs.BEST).write_text("weights")
    assert not runs.is_run_folder(other)
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", other,
                            *overwrite, "--epochs", 1)
    assert_one_error(code, err, str(other))
    assert "--overwrite starts" not in err
    assert snapshot(tmp_path) == before


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
    from lcnn.detector import runs

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


# ------------------------------------------------------------------ damaged run folders

SMALL = {"duration": 0.5, "sinc_filters": 16}  # a small model: quick to build and to run
SMALL_FLAGS = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def model_run(tmp_path_factory) -> Path:
    """A run folder with an untrained small model, as training leaves it."""
    import dataclasses

    from lcnn.config import Config
    from lcnn.detector import runs
    from lcnn.detector.model import build_model

    root = tmp_path_factory.mktemp("model_run")
    data = make_dataset(root / "data")
    run = root / "run"
    run.mkdir()
    cfg = Config(**SMALL)
    runs.mark_run_folder(run)
    runs.write_json(run / runs.CONFIG, {**dataclasses.asdict(cfg), "data_path": str(data)})
    runs.write_json(run / runs.STATE, {"epoch": 1, "best_eer": 0.5, "best_epoch": 1, "wait": 0,
                                       "stopped_early": False, "finished": True})
    runs.atomic_save_model(build_model(cfg), run / runs.BEST)
    return run


@pytest.fixture
def run_copy(model_run, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(model_run, tmp_path / "run"))


DAMAGE = {
    "config not JSON": ("config.json", "{not json", "config.json"),
    "config a list": ("config.json", "[1, 2]", "config.json"),
    "config string epochs": ("config.json", None, "epochs must be a positive integer"),
    "config unknown key": ("config.json", None, "unknown setting(s) colour"),
    "state not JSON": ("state.json", "", "state.json"),
    "state string epoch": ("state.json", '{"epoch": "x"}', "state.json"),
    "model not a zip": ("best.keras", "garbage", "damaged model file"),
}


def _damage(run: Path, name: str, text: str | None, case: str) -> None:
    import json

    if text is None:  # edit the real config
        cfg = json.loads((run / name).read_text())
        if "epochs" in case:
            cfg["epochs"] = "40"
        else:
            cfg["colour"] = "blue"
        text = json.dumps(cfg)
    (run / name).write_text(text)


COMMANDS = {"predict": ["predict", "--run_dir", "{run}", "{clip}"],
            "evaluate": ["evaluate", "--run_dir", "{run}"],
            "export": ["export", "--run_dir", "{run}"],
            "train --resume": ["train", "--resume", "--run_dir", "{run}"]}
# which commands read each file: export reads no state.json (it converts best.keras), and
# training does not load the model of a finished run
READERS = {"config.json": set(COMMANDS), "state.json": set(COMMANDS) - {"export"},
           "best.keras": set(COMMANDS) - {"train --resume"}}
DAMAGE_CASES = [(case, command) for case in DAMAGE for command in COMMANDS
                if command in READERS[DAMAGE[case][0]]]


@pytest.mark.parametrize(("case", "command"), DAMAGE_CASES)
def test_damaged_run_folder(case, command, run_copy, tmp_path, capsys):
    name, text, message = DAMAGE[case]
    _damage(run_copy, name, text, case)
    clip = tmp_path / "clip.wav"
    _write_clip(clip, 0, fake=False)
    args = [a.format(run=run_copy, clip=clip) for a in COMMANDS[command]]
    before = snapshot(tmp_path, exclude=(run_copy,))
    code, _, err = run_main(capsys, *args)
    assert_one_error(code, err, message)
    assert snapshot(tmp_path, exclude=(run_copy,)) == before


def test_resume_refuses_changed_settings_but_takes_threads(run_copy, capsys):
    code, _, err = run_main(capsys, "train", "--resume", "--run_dir", run_copy, "--epochs", 12)
    assert_one_error(code, err, f"does not apply --epochs 12 (saved: {Config.epochs})")
    code, out, err = run_main(capsys, "train", "--resume", "--run_dir", run_copy,
                              "--threads", 1)
    assert code == 0, err
    assert "already finished" in out


def test_same_data_given_relative_and_absolute_is_the_same_run(run_copy, capsys, monkeypatch):
    from lcnn.detector import runs

    data = Path(runs.data_spec(run_copy)["path"])
    monkeypatch.chdir(data.parent)
    code, out, err = run_main(capsys, "train", "--data_path", data.name, "--run_dir", run_copy,
                              "--threads", 1, *SMALL_FLAGS)
    assert code == 0, err
    assert "already finished" in out


# ------------------------------------------------------------------ lock and temporaries


def test_a_second_trainer_is_refused(run_copy, data, capsys):
    import json

    from lcnn.detector import runs

    (run_copy / runs.LOCK).write_text(json.dumps(
        {"pid": os.getppid(), "host": runs.HOST, "started": "2026-01-01 10:00:00 UTC"}))
    state = (run_copy / runs.STATE).read_text()
    before = snapshot(run_copy)
    code, _, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run_copy,
                            "--overwrite", "--epochs", 1)
    assert_one_error(code, err, f"pid {os.getppid()}", "2026-01-01 10:00:00")
    assert snapshot(run_copy) == before and (run_copy / runs.STATE).read_text() == state


def test_stale_lock_and_temporaries_of_a_killed_run_are_cleared(tmp_path, data, capsys, dead_pid):
    import json

    from lcnn.detector import runs

    run = tmp_path / "run"
    run.mkdir()
    dead = dead_pid
    (run / runs.LOCK).write_text(json.dumps({"pid": dead, "host": runs.HOST, "started": "x"}))
    leftover = run / f".best.keras{runs.TMP_TAG}-{runs.HOST}-{dead}-k3j4h5.keras"
    leftover.write_text("half a model")
    alive = run / f".last.keras{runs.TMP_TAG}-{runs.HOST}-{os.getppid()}-a1b2c3.keras"
    alive.write_text("being written by a live process")
    code, out, err = run_main(capsys, "train", "--data_path", data, "--run_dir", run,
                              "--epochs", 1, "--quiet", "--threads", 2, *SMALL_FLAGS)
    assert code == 0, err
    assert not leftover.exists() and alive.exists()
    assert not (run / runs.LOCK).exists()  # released at the end
    assert (run / runs.MARKER).exists() and (run / runs.BEST).exists()


# ------------------------------------------------------------------ predict


def _json_rows(out: str) -> list[dict]:
    import json

    return [json.loads(line) for line in out.splitlines()]


def test_predict_reports_a_bad_path_and_scores_the_rest(model_run, tmp_path, capsys,
                                                        monkeypatch):
    good = tmp_path / "good.wav"
    _write_clip(good, 1, fake=True)
    folder = tmp_path / "locked"
    folder.mkdir()
    real_is_dir = Path.is_dir

    def is_dir(self):  # what an unprivileged user meets in a folder they may not enter
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    code, out, err = run_main(capsys, "predict", "--run_dir", model_run, folder, good,
                              tmp_path / "missing.wav", "--json")
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in _json_rows(out)}
    assert rows["locked"]["error"] == "cannot read (Permission denied)"
    assert rows["missing.wav"]["error"] == "file not found"
    assert 0 <= rows["good.wav"]["score"] <= 1 and rows["good.wav"]["error"] is None


def test_predict_streams_each_file_before_scoring_the_next(model_run, tmp_path, capsys,
                                                           monkeypatch):
    from lcnn.detector import predict

    for i in range(3):
        _write_clip(tmp_path / "in" / f"c{i}.wav", i, fake=False)
    printed_before = []
    real_score_file = predict.score_file

    def score_file(scorer, path, cfg):
        printed_before.append(capsys.readouterr().out.count("\n"))
        return real_score_file(scorer, path, cfg)

    monkeypatch.setattr(predict, "score_file", score_file)
    code, _, err = run_main(capsys, "predict", "--run_dir", model_run, tmp_path / "in")
    assert code == 0, err
    # the two "#" header lines, then one line per file as soon as it is scored
    assert printed_before == [2, 1, 1]


def test_predict_scores_long_files_in_bounded_batches(model_run, tmp_path, capsys, monkeypatch):
    from lcnn.config import Config
    from lcnn.detector import predict
    from lcnn.detector.runs import load_model

    cfg = Config(**SMALL)
    long_file = tmp_path / "long.wav"
    _write_clip(long_file, 3, fake=True, seconds=30)  # 119 windows of 0.5 s
    batches = []
    keras_scorer = predict.keras_scorer(load_model(model_run))

    def scorer(x):
        batches.append(len(x))
        return keras_scorer(x)

    p = predict.score_file(scorer, long_file, cfg)
    assert max(batches) == predict.BATCH_WINDOWS and sum(batches) == p.windows == 119
    windows = predict.clip_windows(predict.load_audio(long_file, cfg.sample_rate), cfg)
    assert p.score == pytest.approx(float(np.mean(keras_scorer(windows))), abs=1e-6)


def test_predict_writes_odd_file_names_safely(model_run, tmp_path, capsys):
    folder = tmp_path / "odd"
    names = ["tab\there.wav", "new\nline.wav", os.fsdecode(b"caf\xe9.wav")]
    for i, name in enumerate(names):
        _write_clip(folder / name, i, fake=False)
    code, out, err = run_main(capsys, "predict", "--run_dir", model_run, folder)
    assert code == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert len(lines) == 3 and all(len(line.split("\t")) == 5 for line in lines)
    shown = sorted(Path(line.split("\t")[0]).name for line in lines)
    assert shown == ["caf\\xe9.wav", "new\\nline.wav", "tab\\there.wav"]
    code, out, err = run_main(capsys, "predict", "--run_dir", model_run, folder, "--json")
    assert sorted(Path(r["path"]).name for r in _json_rows(out)) == [
        "caf\\xe9.wav", "new\nline.wav", "tab\there.wav"]
    assert all(r["score"] is not None for r in _json_rows(out))


def test_predict_into_a_closed_pipe_exits_quietly(model_run, tmp_path):
    for i in range(3):
        _write_clip(tmp_path / "in" / f"c{i}.wav", i, fake=False)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = (f"{sys.executable} -m lcnn predict --run_dir {model_run} {tmp_path / 'in'}"
               " | head -c 1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                       text=True, env=env, timeout=300)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert error_lines(r.stderr) == []


# ------------------------------------------------------------------ damaged .tflite files


@pytest.fixture(scope="module")
def tflite_files(model_run, tmp_path_factory) -> dict[str, Path]:
    from lcnn.config import Config
    from lcnn.detector.export import convert_model
    from lcnn.detector.model import build_model

    folder = tmp_path_factory.mktemp("tflite")
    model = build_model(Config(**SMALL))
    good = {"float": convert_model(model), "int8": convert_model(model, int8=True)}
    files = {"truncated float": good["float"][:20000], "truncated int8": good["int8"][:60000],
             "empty": b"", "not tflite": b"hello world, this is not a model" * 10,
             "identifier only": good["float"][:8] + bytes(100)}
    for name, data in files.items():
        (folder / f"{name.replace(' ', '-')}.tflite").write_bytes(data)
    return {name: folder / f"{name.replace(' ', '-')}.tflite" for name in files}


@pytest.mark.parametrize("case", ["empty", "not tflite", "identifier only", "truncated float"])
def test_damaged_tflite_in_process(case, tflite_files, model_run, tmp_path, capsys):
    clip = tmp_path / "clip.wav"
    _write_clip(clip, 0, fake=False)
    code, out, err = run_main(capsys, "predict", "--run_dir", model_run, "--tflite",
                              tflite_files[case], clip)
    assert_one_error(code, err, str(tflite_files[case]))
    assert out == ""


def test_truncated_int8_tflite_in_a_subprocess(tflite_files, model_run, tmp_path):
    """The case that crashed or ate 24 GB: in a subprocess, so a regression cannot take the
    test run down with it."""
    clip = tmp_path / "clip.wav"
    _write_clip(clip, 0, fake=False)
    r = run_cli("predict", "--run_dir", model_run, "--tflite", tflite_files["truncated int8"],
                clip)
    assert_one_error(r.returncode, r.stderr, "not a usable TFLite model")


# ------------------------------------------------------------------ folders and the decoding cache


def test_dangling_and_looping_links_are_reported(tmp_path):
    from lcnn.detector.predict import list_inputs

    folder = tmp_path / "in"
    _write_clip(folder / "ok.wav", 0, fake=False)
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (folder / "loop").symlink_to(folder)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    found = {path.name: reason for path, reason in list_inputs([folder, tmp_path / "empty"])}
    assert found["ok.wav"] is None
    assert "broken link" in found["gone.wav"]
    assert "symbolic link loop" in found["loop"]
    assert found["empty"] == "folder with no audio file"  # named by mistake, not passed over


def test_an_os_error_is_not_remembered_as_bad_audio(tmp_path, monkeypatch):
    """chmod changes neither size nor mtime: a file that could not be opened must be tried
    again, not stay "corrupt" in the cache forever."""
    from lcnn.config import Config
    from lcnn.detector import data
    from lcnn.errors import AudioError

    root = make_dataset(tmp_path / "d")
    locked = root / "training" / "real" / "real0.wav"
    real_load = data.load_audio
    calls = []

    def load_audio(path, sample_rate=16000):
        calls.append(Path(path).name)
        if Path(path) == locked and len(calls) <= 4:  # the first decoding pass
            raise AudioError(path, "cannot read (Permission denied)", os_error=True)
        return real_load(path, sample_rate)

    monkeypatch.setattr(data, "load_audio", load_audio)
    cfg = Config(duration=0.5)
    with pytest.raises(data.BadFilesError, match="Permission denied"):
        data.load_split(root, "training", cfg, progress=False)
    clips = data.load_split(root, "training", cfg, progress=False)  # "after chmod"
    assert locked in clips.files and len(clips) == 4
    n = len(calls)
    data.load_split(root, "training", cfg, progress=False)
    assert len(calls) == n  # now cached: nothing decoded again


def test_two_datasets_alike_do_not_share_cached_audio(tmp_path):
    from lcnn.config import Config
    from lcnn.detector import data

    a, b = make_dataset(tmp_path / "a"), make_dataset(tmp_path / "b")
    for src in (a / "training").rglob("*.wav"):  # same names, sizes and mtimes, other audio
        dst = b / src.relative_to(a)
        _write_clip(dst, 99, fake=True)
        os.utime(dst, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))
    cache = tmp_path / "cache"
    cfg = Config(duration=0.5)
    clips_a = data.load_split(a, "training", cfg, cache_dir=cache, progress=False)
    clips_b = data.load_split(b, "training", cfg, cache_dir=cache, progress=False)
    assert not np.array_equal(np.asarray(clips_a.audio), np.asarray(clips_b.audio))


# ------------------------------------------------------------------ read-only run folders


def test_evaluate_shows_metrics_when_the_run_folder_is_read_only(run_copy, capsys, monkeypatch,
                                                                  caplog):
    import json

    from lcnn.detector import runs

    def refuse(path, *args, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runs, "write_scores", refuse)
    code, out, err = run_main(capsys, "evaluate", "--run_dir", run_copy, "--json")
    assert code == 0, err
    assert json.loads(out)["n_real"] == 2
    assert "could not save the scores and metrics" in caplog.text  # a warning on stderr
    assert "Traceback" not in err


def _start_over_after_loading(monkeypatch) -> None:
    """Make the next model loaded be followed by `train --overwrite` of its run folder: the
    folder cleared and marked as a new training, as train's _start_or_resume does."""
    from lcnn.detector import runs

    load = runs.load_model

    def load_then_start_over(run_dir, *args, **kw):
        model = load(run_dir, *args, **kw)
        runs.clear_run(run_dir, keep=(runs.CONFIG,))  # the new run's config, as if unchanged
        runs.mark_run_folder(run_dir)
        return model

    monkeypatch.setattr(runs, "load_model", load_then_start_over)


@pytest.mark.parametrize("conditions", [["--condition", "clean"], ["--condition", "all"]])
def test_evaluate_saves_nothing_in_a_run_folder_started_over_meanwhile(
        conditions, run_copy, capsys, monkeypatch, caplog):
    import json

    _start_over_after_loading(monkeypatch)
    code, out, err = run_main(capsys, "evaluate", "--run_dir", run_copy, "--json", *conditions)
    assert code == 0, err
    assert json.loads(out)  # the metrics of the model it loaded are still shown
    assert "was started over" in caplog.text
    assert sorted(p.name for p in run_copy.iterdir()) == [".lcnn-run", "config.json"]


def test_evaluate_saves_its_metrics_in_the_run_it_scored(run_copy, capsys):
    code, _, err = run_main(capsys, "evaluate", "--run_dir", run_copy)
    assert code == 0, err
    assert (run_copy / "metrics-testing.json").is_file()


def test_export_leaves_no_model_in_a_run_folder_started_over_meanwhile(run_copy, capsys,
                                                                     monkeypatch):
    _start_over_after_loading(monkeypatch)
    code, _, err = run_main(capsys, "export", "--run_dir", run_copy)
    assert_one_error(code, err, str(run_copy), "started over")
    assert not list(run_copy.glob("*.tflite"))


def test_export_to_a_read_only_folder_fails_before_converting(run_copy, capsys, monkeypatch):
    from lcnn import io
    from lcnn.detector import export

    def refuse(*args, dir=None, **kw):
        raise PermissionError(13, "Permission denied", str(dir))

    converted = []
    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(export, "convert_model", lambda *a, **k: converted.append(1) or b"")
    code, _, err = run_main(capsys, "export", "--run_dir", run_copy)
    assert_one_error(code, err, "model.tflite", "Permission denied")
    assert converted == []
