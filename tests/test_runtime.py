"""No TensorFlow, absl or TFLite log lines: neither from the library nor on the CLI's stderr."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from lcnn.config import Config
from lcnn.detector import runs

CFG = Config(duration=0.5, sinc_filters=16, threads=2)
# what TensorFlow 2.21 prints unless told otherwise
NOISE = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN", "XNNPACK", "TensorFlow binary")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**environment, **env}, timeout=300)


def _cli(*args) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)], capture_output=True,
                          text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with an untrained default model (export and predict need no training)."""
    from lcnn.detector.model import build_model

    folder = tmp_path_factory.mktemp("run")
    runs.write_json(folder / runs.CONFIG, {**dataclasses.asdict(CFG), "data_path": "unused"})
    runs.atomic_save_model(build_model(CFG), folder / runs.BEST)
    return folder


@pytest.fixture(scope="module")
def tflite_file(run_dir):
    r = _cli("export", "--run_dir", run_dir)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return run_dir / "model.tflite"


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(CFG.n_samples * 3) / CFG.sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), CFG.sample_rate)
    return path


USE_TENSORFLOW = """
import numpy as np
{setup}
import tensorflow as tf
print(int(tf.reduce_sum(tf.ones(3))))
interpreter = tf.lite.Interpreter(model_path={path!r})
{allocate}
"""


def test_without_the_switches_tensorflow_is_noisy(tflite_file):
    """The control: plain TensorFlow prints the lines the other tests look for."""
    r = _python(USE_TENSORFLOW.format(setup="", path=str(tflite_file),
                                      allocate="interpreter.allocate_tensors()"))
    assert r.returncode == 0, r.stderr
    assert "absl::InitializeLog" in r.stderr and "XNNPACK" in r.stderr


def test_library_use_leaves_stderr_empty(tflite_file):
    code = USE_TENSORFLOW.format(
        setup="import warnings; warnings.simplefilter('ignore')\n"
              "from lcnn.runtime import native_stderr_silenced",
        path=str(tflite_file),
        allocate="with native_stderr_silenced():\n    interpreter.allocate_tensors()\n"
                 "import sys; print('still visible', file=sys.stderr)")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    assert r.stderr == "still visible\n"  # Python's stderr works again after the block


def test_cli_stderr_is_empty(run_dir, tflite_file, wav):
    """Export (the fixture) and TFLite scoring: TensorFlow loads, XNNPACK starts."""
    r = _cli("predict", "--run_dir", run_dir, "--tflite", tflite_file, wav)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert [line for line in r.stdout.splitlines() if not line.startswith("#")][0].startswith(
        str(wav))


def test_cli_errors_stay_one_line(run_dir, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    r = _cli("predict", "--run_dir", run_dir, "--tflite", bad, tmp_path)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and not any(n in r.stderr for n in NOISE)


def test_tensorflow_warnings_stay_hidden_in_an_interactive_shell():
    # Jupyter is interactive (sys.ps1): there, TensorFlow's first tf.get_logger() call would
    # set its logger to INFO and send retracing warnings to the notebook's output.
    code = ("import sys; sys.ps1 = '>>> '\n"
            "import lcnn, logging, tensorflow as tf\n"
            "tf.get_logger().warning('a warning that must not show')\n"
            "print(logging.getLogger('tensorflow').level)")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(40)] and "must not show" not in r.stderr
