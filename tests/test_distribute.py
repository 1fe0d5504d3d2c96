"""train --strategy: `mirrored` over two logical CPU devices and `multiworker` with two worker
processes on 127.0.0.1 train the same model as one device (lcnn's one training step,
lcnn.detector.loop, with gradient clipping active); TF_CONFIG mistakes are one line."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import TINY, history, tiny_list

from lcnn.app.cli import main

TESTS = Path(__file__).resolve().parent
# A fresh process per training: logical devices and TF_CONFIG must be set before TensorFlow
# starts. argv: data, run folder, strategy, Config overrides (JSON). The sinc front end: with
# the log-mel one the runs part after a few steps (see lcnn.detector.distribute).
SCRIPT = """
import dataclasses, json, sys
sys.path.insert(0, sys.argv[5])
from test_train import TINY
from lcnn.detector.train import train
cfg = dataclasses.replace(TINY, **json.loads(sys.argv[4]))
state = train(sys.argv[1], sys.argv[2], cfg, strategy=sys.argv[3], verbose=0)
print(json.dumps(state))
"""
SINC = {"front_end": "sinc", "epochs": 2}  # 2 epochs of 3 steps, the last one 4 clips


def _train(data: Path, run: Path, strategy: str, env: dict | None = None,
           overrides: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(data), str(run), strategy,
         json.dumps(overrides or SINC), str(TESTS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _weights(run: Path) -> list[np.ndarray]:
    from lcnn.detector import runs

    return runs.load_model(run).get_weights()


def assert_same_training(run: Path, reference: Path, weights_atol: float = 1e-4) -> None:
    """Same epochs, losses and metrics in history.csv, and the same best model."""
    ours, theirs = history(run), history(reference)
    assert [r["epoch"] for r in ours] == [r["epoch"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        for name in ("loss", "accuracy", "auc", "val_eer", "learning_rate"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-6), (name, a, b)
    for a, b in zip(_weights(run), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=weights_atol)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny data set and a run trained on it on one device (strategy auto)."""
    root = tmp_path_factory.mktemp("distribute")
    data = tiny_list(root / "data")
    _finish(_train(data, root / "auto", "auto"))
    return data, root / "auto"


def test_mirrored_on_two_cpu_devices_matches_one_device(single_device, tmp_path):
    data, reference = single_device
    state = _finish(_train(data, tmp_path / "run", "mirrored", {"LCNN_CPU_DEVICES": "2"}))
    assert state["replicas"] == 2
    assert_same_training(tmp_path / "run", reference)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_with_two_workers_matches_one_device(single_device, tmp_path):
    """Two worker processes on 127.0.0.1 (TF_CONFIG each, as TensorFlow's own multi-worker
    tests run them): both finish, only the chief (worker 0) writes its run folder, and that
    folder holds what one device trains."""
    data, reference = single_device
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    runs = [tmp_path / f"worker{i}" for i in range(2)]
    procs = [_train(data, runs[i], "multiworker", {"TF_CONFIG": json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})}) for i in range(2)]
    try:
        states = [_finish(proc) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [s["replicas"] for s in states] == [2, 2]
    assert states[0]["best_epoch"] == states[1]["best_epoch"]
    assert not runs[1].exists()  # the other worker wrote to a temporary folder only
    assert_same_training(runs[0], reference)


def test_a_killed_run_resumes_from_last_keras(single_device, tmp_path, monkeypatch):
    """Killed after its first epoch was saved, the run continues from last.keras (weights,
    Adam's state, the schedule's position) and ends as the uninterrupted run did."""
    from lcnn.detector import train as training

    data, reference = single_device
    cfg = dataclasses.replace(TINY, **SINC)
    end_epoch = training._end_epoch

    def killed_after_one(*args, **kwargs):
        eer = end_epoch(*args, **kwargs)
        if args[7] == 0:  # the first epoch is saved and state.json says so: as if SIGKILLed
            raise KeyboardInterrupt
        return eer

    monkeypatch.setattr(training, "_end_epoch", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        training.train(data, tmp_path / "run", cfg, verbose=0)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epoch"] == 1
    assert (tmp_path / "run" / "last.keras").is_file()
    monkeypatch.setattr(training, "_end_epoch", end_epoch)
    state = training.train(data, tmp_path / "run", cfg, verbose=0)
    assert state["epoch"] == 2 and state["finished"]
    assert_same_training(tmp_path / "run", reference)


@pytest.mark.parametrize("recorded", [False, True], ids=["before-state", "after-state"])
def test_a_run_killed_while_saving_an_epoch_resumes_as_if_it_was_not(
        single_device, tmp_path, monkeypatch, recorded):
    """Killed at the end of its second epoch, with the model saved but state.json not yet
    saying so (or just saying so), the run resumes from the right model: it ends as the
    uninterrupted run did, and no epoch is trained twice. Until state.json records the epoch,
    best.keras and scores-validation.tsv stay those of the best epoch it names."""
    from lcnn.detector import runs
    from lcnn.detector import train as training

    data, reference = single_device
    assert json.loads((reference / runs.STATE).read_text())["best_epoch"] == 2
    cfg = dataclasses.replace(TINY, **SINC)
    write_json = runs.write_json

    def killed_at_epoch_two(path, obj):
        if Path(path).name == runs.STATE and obj.get("epoch") == 2 and not obj.get("finished"):
            run = Path(path).parent  # epoch 2 is its best: its model and scores wait
            for name in (runs.BEST, runs.VALIDATION_SCORES):
                assert (run / name).read_bytes() != runs.pending(run, 2, name).read_bytes()
            if recorded:
                write_json(path, obj)
            raise KeyboardInterrupt
        write_json(path, obj)

    monkeypatch.setattr(runs, "write_json", killed_at_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        training.train(data, tmp_path / "run", cfg, verbose=0)
    assert runs.pending(tmp_path / "run", 2, runs.LAST).is_file()
    monkeypatch.setattr(runs, "write_json", write_json)
    state = training.train(data, tmp_path / "run", cfg, verbose=0)
    assert state["epoch"] == 2 and state["finished"]
    assert not list((tmp_path / "run").glob("next-*"))
    assert_same_training(tmp_path / "run", reference)


CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize("tf_config, message", [
    (None, "--strategy multiworker needs TF_CONFIG, e.g. TF_CONFIG='{\"cluster\""),
    ("{cluster", "TF_CONFIG: not JSON"),
    (json.dumps({"cluster": CLUSTER}), "TF_CONFIG: no 'task' entry"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}),
     "TF_CONFIG: task worker 2 is not in the cluster"),
    (json.dumps({"cluster": {**CLUSTER, "ps": ["127.0.0.1:3"]},
                 "task": {"type": "ps", "index": 0}}), "TF_CONFIG: task type 'ps'"),
])  # fmt: skip
def test_a_bad_tf_config_is_one_line(tmp_path, capsys, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    data = tiny_list(tmp_path / "data", n_train=4, n_fake=2)
    run = tmp_path / "run"
    argv = ["train", "--data_path", str(data), "--run_dir", str(run), "--strategy",
            "multiworker"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not run.exists()
