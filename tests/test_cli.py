"""Unit tests of the application shell: flag -> Config mapping, Config validation, and how
train prepares a run folder (`_start_or_resume`). No TensorFlow needed."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from lcnn.app.cli import (
    SETTING_FLAGS,
    _config_from_args,
    _data_of,
    _resumed_config,
    build_parser,
    main,
)
from lcnn.config import RUNTIME_FIELDS, Config, parse_setting
from lcnn.detector import runs
from lcnn.detector.train import NEW_STATE, _start_or_resume
from lcnn.errors import ConfigError, LcnnError


def parse(*argv):
    return build_parser().parse_args(["train", *map(str, argv)])


# ------------------------------------------------------------------ flag mapping


def test_no_flags_give_configs_defaults():
    assert _config_from_args(parse("--data_path", "d")) == Config()


def test_every_flag_reaches_its_field():
    args = parse("--data_path", "d", "--model", "baseline", "--epochs", 3, "--batch_size", 8,
                 "--learning_rate", 0.01, "--patience", 0, "--seed", 7, "--threads", 2,
                 "--set", "duration=1.5", "--set", "focal_alpha=0.25", "--set", "sinc_log=true")
    cfg = _config_from_args(args)
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.patience, cfg.seed,
            cfg.threads) == ("baseline", 3, 8, 0.01, 0, 7, 2)
    assert (cfg.duration, cfg.focal_alpha, cfg.sinc_log) == (1.5, 0.25, True)
    assert set(SETTING_FLAGS) <= {f.name for f in dataclasses.fields(Config)}


def test_set_takes_several_settings_at_once_as_bench_ablation_does():
    once = parse("--data_path", "d", "--set", "augment_rawboost=", "epochs=40", "--seed", 7)
    repeated = parse("--data_path", "d", "--set", "augment_rawboost=", "--set", "epochs=40",
                     "--seed", 7)
    cfg = _config_from_args(once)
    assert (cfg.augment_rawboost, cfg.epochs, cfg.seed) == ("", 40, 7)
    assert cfg == _config_from_args(repeated)


def test_augmentation_flags():
    cfg = _config_from_args(parse("--data_path", "d", "--no_augment"))
    assert not (cfg.augment_noise or cfg.augment_shift or cfg.augment_gain)
    cfg = _config_from_args(parse("--data_path", "d", "--noise"))
    assert cfg.augment_noise and cfg.augment_shift and cfg.augment_gain


def test_protocol_flags_make_a_spec_of_the_splits():
    args = parse("--protocol", "t.txt", "--val_protocol", "d.txt", "--audio_dir", "A")
    assert _data_of(args, ("training", "validation")) == {
        "format": "asvspoof", "protocols": {"training": "t.txt", "validation": "d.txt"},
        "audio_dirs": {"training": "A", "validation": "A"}}
    args = parse("--protocol", "t.txt", "--val_protocol", "d.txt", "--audio_dir", "A",
                 "--val_audio_dir", "B")
    assert _data_of(args, ("training", "validation"))["audio_dirs"]["validation"] == "B"
    args = build_parser().parse_args(["evaluate", "--run_dir", "r", "--protocol", "e.txt",
                                      "--audio_dir", "E", "--split", "dev"])
    assert _data_of(args, (args.split,)) == {
        "format": "asvspoof", "protocols": {"dev": "e.txt"}, "audio_dirs": {"dev": "E"}}
    assert _data_of(parse("--data_path", "d"), ("training", "validation")) == "d"


@pytest.mark.parametrize("argv, message", [
    (("--data_path", "d", "--protocol", "t"), "--data_path and --protocol name two datasets"),
    (("--audio_dir", "A"), "--audio_dir needs --protocol FILE"),
    (("--protocol", "t", "--val_protocol", "d"), "--protocol needs --audio_dir DIR"),
    (("--protocol", "t", "--audio_dir", "A"), "--protocol needs --val_protocol FILE"),
])  # fmt: skip
def test_incomplete_protocol_flags_are_refused_by_name(argv, message):
    with pytest.raises(LcnnError, match=message):
        _data_of(parse(*argv), ("training", "validation"))


def test_set_rejects_unknown_keys(capsys):
    with pytest.raises(SystemExit):
        parse("--set", "colour=blue")
    error = capsys.readouterr().err
    assert "argument --set: 'colour=blue': expected KEY=VALUE with KEY one of" in error
    assert error.count("\n") == 1


@pytest.mark.parametrize(("item", "expected"), [
    ("sinc_stride=4", ("sinc_stride", 4)),
    ("learning_rate=1e-3", ("learning_rate", 0.001)),
    ("sinc_log=true", ("sinc_log", True)),
    ("focal_alpha=null", ("focal_alpha", None)),
    ('augment_rawboost="12"', ("augment_rawboost", "12")),  # JSON text: a string, not 12
    ("augment_rawboost=12", ("augment_rawboost", "12")),  # a text field: text
    ("sinc_filters=12", ("sinc_filters", 12)),
    ("augment_rawboost=", ("augment_rawboost", "")),
    ("model=baseline", ("model", "baseline")),  # not JSON: taken as text
    ("front_end=a=b", ("front_end", "a=b")),  # split at the first "=" only
])
def test_parse_setting_reads_the_value_as_json_or_text(item, expected):
    assert parse_setting(item) == expected


@pytest.mark.parametrize("item", ["colour=blue", "sinc_stride", "=4", "Epochs=3"])
def test_parse_setting_names_the_item_and_lists_the_fields(item):
    with pytest.raises(ConfigError) as error:
        parse_setting(item)
    message = str(error.value)
    assert message.startswith(f"{item!r}: expected KEY=VALUE with KEY one of ")
    listed = message.split(" one of ", 1)[1].split(", ")
    assert listed == sorted(f.name for f in dataclasses.fields(Config))


def test_bad_flag_values_name_the_flag():
    with pytest.raises(LcnnError, match="^--epochs must be a positive integer, got 0$"):
        _config_from_args(parse("--data_path", "d", "--epochs", 0))
    with pytest.raises(LcnnError, match="^--set duration must be a positive number"):
        _config_from_args(parse("--data_path", "d", "--set", "duration=-1"))


def test_resume_takes_runtime_options_and_refuses_settings(tmp_path):
    Config(epochs=5).to_json(tmp_path / runs.CONFIG)
    cfg = _resumed_config(parse("--resume", "--threads", 3, "--epochs", 5), tmp_path)
    assert (cfg.threads, cfg.epochs) == (3, 5)
    with pytest.raises(LcnnError, match=r"does not apply --epochs 12 \(saved: 5\)"):
        _resumed_config(parse("--resume", "--epochs", 12), tmp_path)


def test_seed_is_the_old_name_of_the_baseline(tmp_path):
    for argv in (("--model", "seed"), ("--set", "model=seed")):
        assert _config_from_args(parse("--data_path", "d", *argv)).model == "baseline"
    assert Config(model="seed") == Config(model="baseline")
    # a run saved before the rename: its config.json says "seed"
    saved = {**dataclasses.asdict(Config(model="baseline", epochs=5)), "model": "seed"}
    (tmp_path / runs.CONFIG).write_text(json.dumps(saved))
    assert runs.load_config(tmp_path) == Config(model="baseline", epochs=5)
    for argv in ((), ("--model", "seed"), ("--model", "baseline")):
        assert _resumed_config(parse("--resume", *argv), tmp_path).model == "baseline"
    with pytest.raises(LcnnError, match=r"--model lcnn \(saved: baseline\)"):
        _resumed_config(parse("--resume", "--model", "lcnn"), tmp_path)


@pytest.fixture
def trained_with(monkeypatch):
    """cmd_train with lcnn.detector.train.train replaced: the calls it would make."""
    import lcnn.detector.train

    calls = []

    def train(data_path, run_dir, cfg, **options):
        calls.append({"data_path": data_path, "run_dir": run_dir, "cfg": cfg, **options})
        return {"best_epoch": 1, "best_eer": 0.25, "clips_per_s": None}

    monkeypatch.setattr(lcnn.detector.train, "train", train)
    return calls


def test_train_command_passes_flags_to_train(trained_with, capsys):
    assert main(["train", "--data_path", "d", "--epochs", "2", "--quiet", "--skip_bad",
                 "--cache_dir", "c"]) == 0
    assert trained_with == [{"data_path": "d", "run_dir": Path("runs/lcnn"),
                             "cfg": Config(epochs=2), "overwrite": False, "skip_bad": True,
                             "cache_dir": "c", "verbose": 0, "strategy": "auto"}]
    assert "validation EER 25.00%" in capsys.readouterr().out
    # the default folder is named after --model as given: the runs/seed of old runs
    assert main(["train", "--data_path", "d", "--model", "seed", "--overwrite"]) == 0
    assert trained_with[-1]["run_dir"] == Path("runs/seed")
    assert trained_with[-1]["cfg"] == Config(model="baseline")
    assert (trained_with[-1]["overwrite"], trained_with[-1]["verbose"]) == (True, 1)


def test_train_resume_reads_the_saved_run(trained_with, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    runs.write_json(run / runs.CONFIG,
                    {**dataclasses.asdict(Config(epochs=5)), "data_path": str(tmp_path / "d")})
    assert main(["train", "--resume", "--run_dir", str(run), "--threads", "1"]) == 0
    assert trained_with[-1]["data_path"] == runs.data_spec(run)  # the old data_path, as a spec
    assert trained_with[-1]["cfg"] == Config(epochs=5, threads=1)


@pytest.mark.parametrize(("argv", "hint"), [
    (["train", "--data_path", "d"], "; run the same command again to resume"),
    # the same command with --overwrite would delete what the interrupted run saved
    (["train", "--data_path", "d", "--overwrite"],
     "; run the same command without --overwrite to resume"),
    (["export", "--run_dir", "r"], ""),  # nothing to resume
])
def test_ctrl_c_says_how_to_go_on(monkeypatch, capsys, argv, hint):
    import lcnn.detector.export
    import lcnn.detector.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lcnn.detector.train, "train", interrupted)
    monkeypatch.setattr(lcnn.detector.export, "export_tflite", interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"lcnn {argv[0]}: interrupted{hint}\n"


@pytest.mark.parametrize(("argv", "error"), [
    (["--resume", "--overwrite"], "--resume and --overwrite contradict each other; pass one"),
    (["--epochs", "2"], "--data_path (or --protocol, --val_protocol and --audio_dir) is required"),
    (["--data_path", "d", "--model", "resnet"], "--model: unknown model 'resnet'"),
])
def test_train_command_refuses_before_training(trained_with, capsys, argv, error):
    assert main(["train", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"lcnn train: error: {error}")
    assert trained_with == []


# ------------------------------------------------------------------ Config validation

BAD_FIELDS = {"sample_rate": 0, "duration": -1.0, "model": "resnet", "front_end": "cqt",
              "input_norm": "yes",
              "sinc_filters": 2.5,
              "sinc_kernel_size": 0, "sinc_stride": True, "sinc_pool": -4, "sinc_log": "no",
              "sinc_trainable": 1, "dropout": 1.0, "epochs": 0, "batch_size": -8,
              "learning_rate": math.nan, "clipnorm": 0.0, "focal_alpha": 1.5,
              "focal_gamma": -1.0, "class_weights": None, "patience": -1, "min_epochs": -1,
              "cllr_resets_patience": "yes",
              "threads": -1,
              "augment_noise": "yes", "augment_shift": 0, "augment_gain": [], "seed": -1,
              "augment_codec": "on", "augment_reverb": 2, "augment_telephone": None,
              "augment_rawboost": "14", "augment_variants": 0, "augment_band_mask": -2}


def test_every_field_is_checked():
    assert set(BAD_FIELDS) == {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS.items())
def test_a_bad_field_gives_one_message_naming_it(name, value):
    with pytest.raises(ConfigError) as error:
        Config(**{name: value})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith((f"{name} ", f"{name}: ")) and error.value.field == name


@pytest.mark.parametrize("value", [1e30, math.inf, -1e-3, 0.0])
def test_learning_rate_must_be_sane(value):
    with pytest.raises(ConfigError, match="learning_rate"):
        Config(learning_rate=value)


def test_from_json_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": "40"}))
    with pytest.raises(ConfigError, match=rf"^{path}: epochs must be a positive integer"):
        Config.from_json(path)
    path.write_text(json.dumps({"colour": "blue", "data_path": "d"}))
    with pytest.raises(ConfigError, match=rf"^{path}: unknown setting\(s\) colour$"):
        Config.from_json(path)
    path.write_text("[]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        Config.from_json(path)


def test_runtime_options_are_not_part_of_the_identity():
    assert Config(threads=1).identity() == Config(threads=4).identity()
    assert set(RUNTIME_FIELDS) & set(Config().identity()) == set()


# ------------------------------------------------------------------ _start_or_resume


def test_a_new_run_is_marked_and_saves_the_resolved_data_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    state = _start_or_resume(run, Config(), Path("data"), overwrite=False)
    assert state == NEW_STATE
    assert runs.is_run_folder(run)
    assert runs.data_spec(run) == {"format": "folders", "path": str(tmp_path / "data")}
    assert runs.read_json(run / runs.CONFIG)["data"] == runs.data_spec(run)
    assert runs.load_config(run) == Config()


def _protocol_spec(folder: Path) -> dict:
    return {"format": "asvspoof",
            "protocols": {"train": folder / "train.txt", "dev": folder / "dev.txt"},
            "audio_dirs": {"train": folder / "flac", "dev": folder / "flac"}}


def test_a_protocol_run_saves_its_spec_and_resumes_named_relatively(tmp_path, monkeypatch):
    """config.json keeps the protocol files and audio folders with absolute paths and
    canonical split names; the same dataset named with relative paths resumes the run."""
    run = tmp_path / "run"
    state = _trained(run, Config(), _protocol_spec(tmp_path))
    saved = runs.read_json(run / runs.CONFIG)["data"]
    assert saved == {"format": "asvspoof",
                     "protocols": {"training": str(tmp_path / "train.txt"),
                                   "validation": str(tmp_path / "dev.txt")},
                     "audio_dirs": {"training": str(tmp_path / "flac"),
                                    "validation": str(tmp_path / "flac")}}
    monkeypatch.chdir(tmp_path)
    assert _start_or_resume(run, Config(), _protocol_spec(Path(".")), overwrite=False) == state
    other = {**_protocol_spec(Path(".")), "audio_dirs": {"train": "wav", "dev": "flac"}}
    with pytest.raises(LcnnError, match=r"\(data differ\)"):
        _start_or_resume(run, Config(), other, overwrite=False)


def test_an_older_run_with_a_data_path_string_still_resumes(tmp_path):
    """Runs written before the dataset spec saved "data_path": "<absolute folder>"."""
    run, data = tmp_path / "run", tmp_path / "data"
    state = _trained(run, Config(), data)
    config = runs.read_json(run / runs.CONFIG)
    del config["data"]
    runs.write_json(run / runs.CONFIG, {**config, "data_path": str(data)})
    assert runs.load_config(run) == Config()
    assert runs.data_spec(run) == {"format": "folders", "path": str(data)}
    assert _start_or_resume(run, Config(), data, overwrite=False) == state
    with pytest.raises(LcnnError, match=r"\(data differ\)"):
        _start_or_resume(run, Config(), tmp_path / "other", overwrite=False)


def test_a_damaged_dataset_entry_names_the_config_file(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)
    config = runs.read_json(run / runs.CONFIG)
    runs.write_json(run / runs.CONFIG, {**config, "data": {"format": "asvspoof"}})
    with pytest.raises(runs.RunError, match=r"config.json: incomplete dataset description"):
        runs.data_spec(run)
    runs.write_json(run / runs.CONFIG, {**config, "data": {"format": "tar"}})
    with pytest.raises(runs.RunError, match=r"config.json: unknown dataset format 'tar'"):
        runs.data_spec(run)
    del config["data"]
    runs.write_json(run / runs.CONFIG, config)
    with pytest.raises(runs.RunError, match=r"config.json: no dataset saved"):
        runs.data_spec(run)


def test_overwrite_of_an_empty_folder_under_its_own_lock(tmp_path):
    """make course's case: runs/course-lcnn exists but is empty; train --overwrite takes the
    lock, then clears the folder: the lock alone does not make it a foreign folder."""
    run = tmp_path / "run"
    run.mkdir()
    with runs.run_lock(run):
        assert _start_or_resume(run, Config(), tmp_path, overwrite=True) == NEW_STATE
    assert runs.is_run_folder(run)


def test_of_two_trainers_that_find_one_stale_lock_only_the_first_runs(tmp_path, monkeypatch,
                                                                    dead_pid):
    """B finds a killed trainer's lock; before B removes it, A removes it and takes the lock
    itself. B must then refuse (naming A), not remove A's lock and run beside it."""
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.LOCK).write_text(json.dumps({"pid": dead_pid, "host": runs.HOST, "started": "x"}))
    a_lock = json.dumps({"pid": os.getppid(), "host": runs.HOST, "started": "A's start"})
    judge = runs._lock_owner

    def a_takes_the_lock_meanwhile(path, text=None):
        owner = judge(path, text)
        if owner is None and (run / runs.LOCK).read_text() != a_lock:
            (run / runs.LOCK).unlink()
            (run / runs.LOCK).write_text(a_lock)
        return owner

    monkeypatch.setattr(runs, "_lock_owner", a_takes_the_lock_meanwhile)
    with pytest.raises(runs.RunError, match=rf"in use by another training \(pid {os.getppid()}"):
        with runs.run_lock(run):
            pass
    assert (run / runs.LOCK).read_text() == a_lock
    assert sorted(p.name for p in run.iterdir()) == [runs.LOCK]  # no renamed lock left over


def test_a_live_lock_without_its_start_time_is_still_named(tmp_path):
    """A lock written by another tool or an older lcnn may lack a field: one clear line."""
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.LOCK).write_text(json.dumps({"pid": os.getppid(), "host": runs.HOST}))
    with pytest.raises(runs.RunError, match=rf"pid {os.getppid()} on .*, started \?\)"):
        runs.check_unlocked(run)


def _trained(run: Path, cfg: Config, data: Path, epoch: int = 3) -> dict:
    run.mkdir(exist_ok=True)
    _start_or_resume(run, cfg, data, overwrite=False)
    state = {**NEW_STATE, "epoch": epoch, "best_epoch": 1, "best_eer": 0.2}
    runs.write_json(run / runs.STATE, state)
    return state


def test_the_same_run_resumes_with_other_threads_and_a_relative_path(tmp_path, monkeypatch):
    run, data = tmp_path / "run", tmp_path / "data"
    state = _trained(run, Config(threads=1), data)
    monkeypatch.chdir(tmp_path)
    assert _start_or_resume(run, Config(threads=4), Path("data"), overwrite=False) == state


def test_other_settings_are_refused_by_name(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(LcnnError, match=r"\(data, epochs differ\)"):
        _start_or_resume(run, Config(epochs=3), tmp_path / "other", overwrite=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_run_saved_as_model_seed_resumes_as_the_baseline(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    state = _trained(run, Config(model="baseline"), data)
    saved = json.loads((run / runs.CONFIG).read_text())
    (run / runs.CONFIG).write_text(json.dumps({**saved, "model": "seed"}))
    assert _start_or_resume(run, Config(model="baseline"), data, overwrite=False) == state
    with pytest.raises(LcnnError, match=r"\(model differ\)"):
        _start_or_resume(run, Config(), data, overwrite=False)


def _drop_saved(run: Path, *fields: str) -> None:
    """Make run's config.json look saved before `fields` existed."""
    saved = json.loads((run / runs.CONFIG).read_text())
    (run / runs.CONFIG).write_text(json.dumps({k: v for k, v in saved.items()
                                               if k not in fields}))


def test_a_run_saved_before_a_field_existed_is_read_as_it_was(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    state = _trained(run, Config(), data)
    _drop_saved(run, "augment_band_mask")  # masking came later; off is what the run did
    assert _start_or_resume(run, Config(), data, overwrite=False) == state
    _drop_saved(run, "front_end", "input_norm")  # runs before them: sinc, no level norm
    assert (runs.load_config(run).front_end, runs.load_config(run).input_norm) == ("sinc", False)
    with pytest.raises(LcnnError, match=r"\(front_end, input_norm differ\)"):
        _start_or_resume(run, Config(), data, overwrite=False)
    assert _start_or_resume(run, Config(front_end="sinc", input_norm=False), data,
                            overwrite=False) == state


def test_a_run_that_never_finished_an_epoch_takes_new_settings(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(model="baseline"), data, epoch=0)
    assert _start_or_resume(run, Config(), data, overwrite=False) == NEW_STATE
    assert runs.load_config(run) == Config()


def test_overwrite_clears_a_run_but_keeps_its_lock(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)
    (run / runs.BEST).write_text("model")
    (run / runs.LOCK).write_text("{}")
    assert _start_or_resume(run, Config(epochs=2), data, overwrite=True) == NEW_STATE
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [runs.MARKER, runs.LOCK, runs.CONFIG, runs.STATE])
    assert runs.load_config(run).epochs == 2


def test_overwrite_refuses_foreign_files_and_touches_nothing(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)
    (run / "thesis.txt").write_text("x")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(runs.RunError, match="thesis.txt"):
        _start_or_resume(run, Config(), data, overwrite=True)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resuming_settles_the_files_of_the_epoch_state_json_records(tmp_path):
    """A run killed between state.json and moving its epoch's files into place: resuming
    moves those of the recorded epoch (and a next-<epoch>.keras, last.keras as older runs named
    it) and deletes those of a later, unrecorded epoch, so best.keras, its validation scores and
    last.keras all belong to the epochs state.json names."""
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)  # state.json: epoch 3
    names = (runs.LAST, runs.BEST, runs.VALIDATION_SCORES)
    for name in names:
        (run / name).write_text("epoch 2")
        runs.pending(run, 3, name).write_text("epoch 3")
        runs.pending(run, 4, name).write_text("epoch 4")
    (run / "next-4.keras").write_text("epoch 4")
    (run / "next-3-steps.txt").write_text("a note")  # not lcnn's: left alone
    _start_or_resume(run, Config(), data, overwrite=False)
    assert [(run / name).read_text() for name in names] == ["epoch 3"] * 3
    assert [p.name for p in run.glob("next-*")] == ["next-3-steps.txt"]
    (run / "next-3.keras").write_text("old name")
    _start_or_resume(run, Config(), data, overwrite=False)
    assert (run / runs.LAST).read_text() == "old name"


def test_an_atomic_write_is_on_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    import os

    from lcnn import io

    events = []
    replace = os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_size)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace",)), replace(a, b)))
    io.atomic_write_text(tmp_path / "state.json", "{}")
    assert events == [("fsync", 2), ("replace",)]
    assert (tmp_path / "state.json").read_text() == "{}"


def test_a_history_column_added_by_a_later_version_reads_as_nan(tmp_path):
    path = tmp_path / runs.HISTORY
    path.write_text("epoch,loss\n1,0.5\n")  # a run saved before val_cllr existed, resumed
    runs.write_history(path, [*runs.read_history(path),
                              {"epoch": 2.0, "loss": 0.4, "val_cllr": 0.3}])
    old, new = runs.read_history(path)
    assert new == {"epoch": 2.0, "loss": 0.4, "val_cllr": 0.3} and math.isnan(old["val_cllr"])
    path.write_text("epoch,loss,val_cllr\n1,0.5,\n2,0.4,0.3\n")  # as older versions wrote it
    assert math.isnan(runs.read_history(path)[0]["val_cllr"])


def test_history_rows_keep_one_epoch_format_when_rewritten(tmp_path):
    path = tmp_path / runs.HISTORY
    runs.write_history(path, [{"epoch": 1, "loss": 0.5}])
    runs.write_history(path, [*runs.read_history(path), {"epoch": 2, "loss": 0.4}])
    assert path.read_text().splitlines()[1:] == ["1,0.5", "2,0.4"]


def test_damaged_state_names_the_file_and_key(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    _trained(run, Config(), data)
    runs.write_json(run / runs.STATE, {**NEW_STATE, "epoch": "3"})
    with pytest.raises(runs.RunError, match=r"state.json: damaged run state \(epoch is '3'\)"):
        _start_or_resume(run, Config(), data, overwrite=False)


# ------------------------------------------------------------------ early stopping


class _FakeModel:
    """Stands in for a Keras model at the end of an epoch: fixed validation scores."""

    def __init__(self, scores):
        self.scores = iter(scores)
        self.optimizer = type("Optimizer", (), {"learning_rate": 0.1})()
        self.weights = self.variables = []  # no weights, no seed states

    def score(self, dataset):  # what lcnn.detector.loop.scorer(model) returns
        return np.asarray(next(self.scores))

    def save(self, path):
        Path(path).write_bytes(b"model")


def _end_epoch(run_dir, model, clips, state, patience, epoch, loss, min_epochs=0,
               cllr_resets_patience=False):
    import tensorflow as tf

    from lcnn.detector.train import _end_epoch

    cfg = Config(patience=patience, min_epochs=min_epochs,
                 cllr_resets_patience=cllr_resets_patience)
    return _end_epoch(run_dir, model, model.score, None, clips, state, cfg, epoch,
                      {"loss": loss}, 1.0, tf.distribute.get_strategy())


@pytest.mark.parametrize(("patience", "min_epochs", "stops_after"),
                         [(0, 0, 2), (1, 0, 2), (2, 0, 3), (0, 4, 4), (2, 2, 3), (1, 6, 6)])
def test_patience_counts_epochs_without_a_better_eer(tmp_path, patience, min_epochs,
                                                     stops_after):
    """Validation EER 0.0 in epoch 1, then 0.5 ever after: patience 0 and 1 both stop at the
    first epoch that is not better, patience 2 one epoch later; never before min_epochs."""
    from types import SimpleNamespace

    labels = [0, 0, 1, 1]
    perfect, useless = [0.1, 0.2, 0.8, 0.9], [0.5, 0.5, 0.5, 0.5]
    clips = SimpleNamespace(labels=labels, files=[f"f{i}.wav" for i in range(4)])
    state = dict(NEW_STATE)
    model = _FakeModel([perfect] + [useless] * 7)
    epoch = 0
    while not state["stopped_early"] and epoch < 8:
        _end_epoch(tmp_path, model, clips, state, patience, epoch, 1.0, min_epochs)
        epoch += 1
    assert epoch == stops_after and state["stopped_early"]
    assert runs.load_state(tmp_path)["epoch"] == stops_after
    assert state["best_epoch"] == 1 and state["best_eer"] == 0.0


@pytest.mark.parametrize(("cllr_resets_patience", "stops_after"), [(False, 2), (True, 5)])
def test_a_lower_cllr_can_restart_the_patience_count(tmp_path, cllr_resets_patience,
                                                     stops_after):
    """Epoch 1 separates the classes (EER 0) with scores near 0.5; epochs 2-4 do not (EER 0.5)
    but each has a lower Cllr than any before; epoch 5 scores 0.5 everywhere. Patience 1 stops
    at epoch 2, or, when a lower Cllr counts as progress, at epoch 5; the best is epoch 1."""
    from types import SimpleNamespace

    clips = SimpleNamespace(labels=[0, 0, 1, 1], files=[f"f{i}.wav" for i in range(4)])
    barely = [0.49, 0.495, 0.505, 0.51]
    mixed = [[lo, 0.6, 0.4, 1 - lo] for lo in (0.1, 0.05, 0.02)]  # one clip wrong per class
    model = _FakeModel([barely, *mixed, [0.5] * 4, [0.5] * 4])
    state = dict(NEW_STATE)
    epoch = 0
    while not state["stopped_early"] and epoch < 6:
        _end_epoch(tmp_path, model, clips, state, 1, epoch, 1.0,
                   cllr_resets_patience=cllr_resets_patience)
        epoch += 1
    assert epoch == stops_after and state["stopped_early"]
    assert (state["best_epoch"], state["best_eer"]) == (1, 0.0)
    history = runs.read_history(tmp_path / runs.HISTORY)
    assert [r["val_eer"] for r in history[1:4]] == [0.5] * len(history[1:4])
    cllrs = [r["val_cllr"] for r in history[:4]]
    assert all(later < earlier for earlier, later in zip(cllrs, cllrs[1:], strict=False))


def test_an_equal_eer_with_a_lower_cllr_is_a_better_epoch(tmp_path):
    """Three epochs at validation EER 0: the second's scores are further apart (lower Cllr, as
    computed here by hand) and becomes the best; the third, closer again, does not."""
    from types import SimpleNamespace

    labels = np.array([0, 0, 1, 1])
    close, apart = [0.4, 0.45, 0.55, 0.6], [0.1, 0.2, 0.8, 0.9]

    def cllr_by_hand(scores):  # raw score s read as P(fake): LLR(real vs fake) = ln((1-s)/s)
        llr = np.log1p(-np.array(scores)) - np.log(scores)
        return (np.mean(np.log2(1 + np.exp(-llr[labels == 0])))
                + np.mean(np.log2(1 + np.exp(llr[labels == 1])))) / 2

    clips = SimpleNamespace(labels=labels, files=[f"f{i}.wav" for i in range(4)])
    state = dict(NEW_STATE)
    model = _FakeModel([close, apart, close])
    for epoch in range(3):
        _end_epoch(tmp_path, model, clips, state, 5, epoch, 1.0)
    assert (state["best_epoch"], state["best_eer"], state["wait"]) == (2, 0.0, 1)
    assert state["best_cllr"] == pytest.approx(cllr_by_hand(apart))
    history = runs.read_history(tmp_path / runs.HISTORY)
    assert [r["val_cllr"] for r in history] == pytest.approx(
        [cllr_by_hand(s) for s in (close, apart, close)])
    old = {k: v for k, v in state.items() if k != "best_cllr"}  # a run saved before best_cllr
    _end_epoch(tmp_path, _FakeModel([close]), clips, old, 5, 3, 1.0)
    assert old["best_epoch"] == 4  # nothing to compare with: an equal EER counts as better


def test_a_diverged_epoch_is_one_error_and_keeps_the_last_good_one(tmp_path):
    """NaN validation scores (training diverged) end training with one LcnnError; the state
    and the models of the last good epoch stay as they were."""
    from types import SimpleNamespace

    from lcnn.errors import LcnnError

    clips = SimpleNamespace(labels=[0, 0, 1, 1], files=[f"f{i}.wav" for i in range(4)])
    state = dict(NEW_STATE)
    model = _FakeModel([[0.1, 0.2, 0.8, 0.9], [0.1, float("nan"), 0.8, 0.9]])
    _end_epoch(tmp_path, model, clips, state, 5, 0, 1.0)
    with pytest.raises(LcnnError, match="training diverged in epoch 2"):
        _end_epoch(tmp_path, model, clips, state, 5, 1, float("nan"))
    assert runs.load_state(tmp_path)["epoch"] == 1
