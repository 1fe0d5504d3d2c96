"""TFLite export: float and int8 files score like the Keras model, through the API and the CLI."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from lcnn.audio import load_audio
from lcnn.config import Config
from lcnn.detector import runs
from lcnn.detector.export import export_tflite, tflite_scorer
from lcnn.detector.model import OUTPUT_LAYER
from lcnn.detector.predict import clip_windows
from lcnn.errors import ExportError, LcnnError

# A short clip keeps export and scoring fast; the layers are the default model's.
CFG = Config(duration=0.5, sinc_filters=16, threads=2)
FLOAT_TOL = 1e-4
# Dynamic-range int8 quantises the weights and, inside each convolution, the activations, so
# errors add up over the layers: on this model scores moved by 0.015-0.02 on average, 0.06 at most.
INT8_TOL = 0.1  # largest difference allowed in any probability
INT8_MEAN_TOL = 0.03  # mean absolute difference allowed


def _signals(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise (label 0) and harmonic tones (label 1): easy to tell apart after a few steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / CFG.sample_rate
    x, y = [], []
    for i in range(count):
        if i % 2:
            f0 = rng.uniform(100, 300)
            clip = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
        else:
            clip = rng.standard_normal(n)
        x.append(0.3 * clip / np.max(np.abs(clip)))
        y.append(i % 2)
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _spread_scores(model, x: np.ndarray) -> None:
    """Rescale the output layer so the scores of `x` spread around 0.5 (logit std 2).

    A freshly initialised model scores every clip about 0.5, which would make the comparison
    with TFLite trivially pass; training it would cost more time than this test is worth.
    """
    layer = model.get_layer(OUTPUT_LAYER)
    kernel, bias = layer.get_weights()
    p = np.clip(np.asarray(model.predict_on_batch(x), dtype=np.float64).ravel(), 1e-6, 1 - 1e-6)
    logits = np.log(p / (1 - p)) - bias[0]  # the part that the kernel contributes
    scale = 2.0 / max(float(np.std(logits)), 1e-6)
    layer.set_weights([kernel * scale, -scale * np.mean(logits, keepdims=True).astype("float32")])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding the default model after a few steps, its scores spread out."""
    import keras

    from lcnn.detector.model import build_model
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("run")
    model = build_model(CFG)
    x, y = _signals(CFG.n_samples, 16, seed=0)
    # A few training steps: weights and BatchNorm statistics shaped by the input, as in a
    # trained model (at random init the int8 scores of the log-mel model moved by up to 0.15,
    # against 0.008 at most for a model trained on the demo corpus)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    for _ in range(30):
        model.train_on_batch(x, y)
    _spread_scores(model, x)
    runs.write_json(folder / runs.CONFIG, {**dataclasses.asdict(CFG), "data_path": "unused"})
    runs.atomic_save_model(model, folder / runs.BEST)
    return folder


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """Float through the API (to an --out path), int8 through the CLI (default path)."""
    out = tmp_path_factory.mktemp("out") / "sub" / "float.tflite"
    r = _cli("export", "--run_dir", run_dir, "--int8")
    assert r.returncode == 0, r.stderr
    int8 = run_dir / "model-int8.tflite"
    assert f"wrote {int8}" in r.stdout
    return {"float": export_tflite(run_dir, out=out), "int8": int8}


@pytest.fixture(scope="module")
def keras_scores(run_dir):
    x, _ = _signals(CFG.n_samples, 12, seed=1)
    model = runs.load_model(run_dir)
    return x, np.asarray(model.predict_on_batch(x)).reshape(-1)


def test_paths_and_sizes(run_dir, exported):
    assert exported["float"].name == "float.tflite" and exported["float"].parent.name == "sub"
    assert exported["int8"].parent == run_dir
    # int8 weights take a quarter of the space of float32 ones (plus graph overhead)
    assert exported["int8"].stat().st_size < 0.5 * exported["float"].stat().st_size
    assert not list(run_dir.glob(".*.tmp")), "temporary files left behind"


def test_float_matches_keras(exported, keras_scores):
    x, expected = keras_scores
    assert np.std(expected) > 0.01, "the test model's scores should differ between clips"
    got = tflite_scorer(exported["float"])(x)
    np.testing.assert_allclose(got, expected, atol=FLOAT_TOL)


def test_int8_close_to_keras(exported, keras_scores):
    x, expected = keras_scores
    got = tflite_scorer(exported["int8"])(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=INT8_TOL)
    assert np.mean(np.abs(got - expected)) < INT8_MEAN_TOL


def _constants(path) -> dict[tuple, set[str]]:
    """The constant tensors of a .tflite file: shape -> element types."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    out: dict[tuple, set[str]] = {}
    for t in model.subgraphs[0].tensors:
        if model.buffers[t.buffer].data is not None:
            out.setdefault(tuple(int(n) for n in t.shape), set()).add(names[t.type])
    return out


def test_int8_keeps_the_front_end_float(run_dir, exported, tmp_path):
    from lcnn.detector.export import convert_model
    from lcnn.detector.model import build_model

    def taps(model):  # the sinc taps as TFLite's conv kernel [out, 1, kernel, in]
        sinc = model.get_layer("sinc")
        return (sinc.filters, 1, sinc.kernel_size, 1)

    model = runs.load_model(run_dir)  # the default: the waveform front end
    conv1 = model.get_layer("conv1").kernel.shape  # [kernel, in, out]
    conv1 = (conv1[2], 1, conv1[0], conv1[1])  # TFLite's [out, 1, kernel, in]
    int8, flt = _constants(exported["int8"]), _constants(exported["float"])
    assert int8[taps(model)] == flt[taps(model)] == {"FLOAT32"}
    assert int8[conv1] == {"INT8"} and flt[conv1] == {"FLOAT32"}
    front_weights = {  # the other front ends' weights, which int8 must leave float32 too
        "sinc": taps,  # 64 x 129 taps: large enough for TFLite to quantise them
        "mel": lambda m: m.get_layer("filterbank").weights_.T.shape,  # fully connected [out, in]
    }
    for front_end, shape in front_weights.items():
        other = build_model(dataclasses.replace(CFG, front_end=front_end))
        path = tmp_path / f"{front_end}-int8.tflite"
        path.write_bytes(convert_model(other, int8=True))
        assert _constants(path)[shape(other)] == {"FLOAT32"}, front_end


def test_int8_weights_are_the_models_rounded_to_int8(run_dir, exported):
    """The int8 file holds conv1's kernel as int8 numbers times a scale per output channel
    (symmetric: the largest weight of a channel becomes +-127); scaled back, every weight is
    within half a step of the Keras model's."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    kernel = np.asarray(runs.load_model(run_dir).get_layer("conv1").kernel)  # [kernel, in, out]
    expected = kernel.transpose(2, 0, 1)[:, None]  # TFLite's [out, 1, kernel, in]
    tflite = flatbuffer_utils.read_model(str(exported["int8"]))
    (tensor,) = [t for t in tflite.subgraphs[0].tensors
                 if tuple(t.shape) == expected.shape and t.type == schema.TensorType.INT8
                 and tflite.buffers[t.buffer].data is not None]
    values = np.frombuffer(bytes(tflite.buffers[tensor.buffer].data), dtype=np.int8)
    values = values.reshape(expected.shape).astype(np.float64)
    scale = np.asarray(tensor.quantization.scale, dtype=np.float64).reshape(-1, 1, 1, 1)
    assert scale.shape[0] == expected.shape[0] and np.all(tensor.quantization.zeroPoint == 0)
    np.testing.assert_array_equal(np.abs(values).max(axis=(1, 2, 3)), 127)
    assert np.all(np.abs(values * scale - expected) <= scale / 2 + 1e-7)


def test_int8_export_of_the_baseline(tmp_path):
    """The baseline's sinc layer (24 x 15 taps) is too small for the converter to quantise."""
    from lcnn.detector.export import convert_model
    from lcnn.detector.model import build_model

    model = build_model(dataclasses.replace(CFG, model="baseline"))
    x, _ = _signals(CFG.n_samples, 4, seed=3)
    path = tmp_path / "baseline-int8.tflite"
    path.write_bytes(convert_model(model, int8=True))
    expected = np.asarray(model.predict_on_batch(x)).reshape(-1)
    np.testing.assert_allclose(tflite_scorer(path)(x), expected, atol=INT8_TOL)


def test_scorer_resizes_batch(exported, keras_scores):
    x, expected = keras_scores
    score = tflite_scorer(exported["float"])
    one_at_a_time = np.concatenate([score(row[None]) for row in x[:3]])
    np.testing.assert_allclose(one_at_a_time, expected[:3], atol=FLOAT_TOL)
    np.testing.assert_allclose(score(x), expected, atol=FLOAT_TOL)  # back to a batch


def test_scorer_rejects_wrong_window_length(exported):
    score = tflite_scorer(exported["float"])
    with pytest.raises(ExportError, match=f"windows of {CFG.n_samples} samples"):
        score(np.zeros((2, CFG.n_samples + 1), dtype=np.float32))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(LcnnError, match="run folder|not a run folder"):
        export_tflite(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    runs.write_json(empty / runs.CONFIG, {**dataclasses.asdict(CFG), "data_path": "x"})
    with pytest.raises(LcnnError, match="no trained model"):
        export_tflite(empty)


def test_out_never_replaces_a_file_of_the_run(run_dir):
    best = (run_dir / runs.BEST).read_bytes()
    with pytest.raises(LcnnError, match="--out .*best.keras: would replace a file of the run"):
        export_tflite(run_dir, out=run_dir / runs.BEST)
    assert (run_dir / runs.BEST).read_bytes() == best


def test_out_replaces_an_earlier_export_but_no_other_file(run_dir, exported, tmp_path):
    out = tmp_path / "model.tflite"
    out.write_bytes(exported["int8"].read_bytes())  # an earlier export
    export_tflite(run_dir, out=out)
    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(LcnnError, match="clip.wav: exists and is not an earlier output of --out"):
        export_tflite(run_dir, out=audio)
    assert audio.read_bytes() == b"RIFF\x24\x00\x00\x00WAVEfmt "


def test_bad_tflite_file_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="no such TFLite file"):
        tflite_scorer(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ExportError, match="junk.tflite"):
        tflite_scorer(junk)


def test_cli_predict_with_tflite(run_dir, exported, tmp_path):
    x, _ = _signals(CFG.n_samples, 2, seed=2)
    wav = tmp_path / "clip.wav"
    sf.write(wav, x[1], CFG.sample_rate, subtype="FLOAT")
    r = _cli("predict", "--run_dir", run_dir, "--tflite", exported["int8"], "--json", wav)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    # the same file scored in this process by the Keras model
    windows = clip_windows(load_audio(wav, CFG.sample_rate), CFG)
    expected = float(np.mean(runs.load_model(run_dir).predict_on_batch(windows)))
    assert got["windows"] == len(windows)
    assert abs(got["score"] - expected) < INT8_TOL


def test_cli_missing_run_is_one_line(tmp_path):
    r = _cli("export", "--run_dir", tmp_path / "no-run")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lcnn export: error:" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
