"""Export a trained run to TensorFlow Lite, and score audio with the exported file.

    python -m lcnn export --run_dir RUN [--int8]      -> RUN/model.tflite or RUN/model-int8.tflite
    python -m lcnn predict --run_dir RUN --tflite RUN/model-int8.tflite clip.wav

Keras 3 models do not convert with `TFLiteConverter.from_keras_model`, so the model is first
exported as a TensorFlow SavedModel (`model.export`) and converted from there. `int8=True`
applies dynamic-range quantisation (`tf.lite.Optimize.DEFAULT` without a representative
dataset): weights are stored as int8, and each int8 layer quantises its input on the fly, so
no calibration data is needed.

Two changes make the exported graph fast and faithful:
- Each SincConv1D is exported as a plain Conv1D holding its current taps
  (`inference_model`). The layer computes its taps from the cut-offs inside the graph, and
  the converter does not fold that computation into a constant. XNNPACK (TFLite's fast CPU
  kernels) takes only constant filters, so the largest layer ran in TFLite's slower
  built-in kernel; with the taps as a weight it runs in XNNPACK.
- In the int8 file the sinc taps stay float32 (`keep_float`). TFLite's dynamic-range
  quantiser has no per-layer opt-out, so the float taps are copied back into the int8 file.
  Quantising them would also quantise the waveform at the layer's input to 8 bits: scores
  moved by 0.02 (median) against 0.001 with float taps, on the demo corpus's testing split.
  The log filter bank's band weights stay float32 for the same reason: quantised, they
  would quantise the power spectrum, whose range spans many decades, to 8 bits.

The interpreter is TensorFlow's own `tf.lite.Interpreter`: in TF 2.21 it still works (with a
deprecation notice pointing to the `ai_edge_litert` package), and it needs no extra
dependency. If a later TensorFlow removes it, `ai_edge_litert` is used when installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lcnn.detector import runs
from lcnn.errors import ExportError
from lcnn.io import atomic_path
from lcnn.runtime import native_stderr_silenced

if TYPE_CHECKING:  # lcnn.detector.predict imports TensorFlow; a missing run should fail without it
    from lcnn.detector.predict import Scorer

FLOAT_NAME, INT8_NAME = "model.tflite", "model-int8.tflite"
_MIN_QUANTISED_SIZE = 1024  # TFLite's dynamic-range quantiser leaves smaller weights in float32


def default_path(run_dir: str | Path, int8: bool = False) -> Path:
    """Where `export_tflite` writes by default: <run_dir>/model.tflite or model-int8.tflite."""
    return Path(run_dir) / (INT8_NAME if int8 else FLOAT_NAME)


def convert_model(model, int8: bool = False) -> bytes:
    """A Keras model as TFLite flatbuffer bytes (float32, or dynamic-range int8 weights)."""
    from lcnn.detector.layers import LogFilterbank, SincConv1D

    flat = _convert(inference_model(model), int8=int8)
    if not int8:
        return flat
    # TFLite stores a Conv1D filter [kernel, in, out] as [out, 1, kernel, in], and the filter
    # bank's constant [bins, bands] as a fully connected layer's [bands, bins]
    keep = [layer.filter_bank().T[:, None, :, None] for layer in model.layers
            if isinstance(layer, SincConv1D)]
    keep += [layer.weights_.T for layer in model.layers if isinstance(layer, LogFilterbank)]
    return keep_float(flat, keep)


def inference_model(model):
    """A copy of `model` in which each SincConv1D is a plain Conv1D holding its current taps.

    Same outputs (the taps are the sinc layer's `filter_bank()`), but the filter is a weight
    rather than a computation, so TFLite sees a constant convolution filter.
    """
    import keras

    from lcnn.detector.layers import SincConv1D

    def clone(layer):
        if not isinstance(layer, SincConv1D):
            return layer.__class__.from_config(layer.get_config())
        return keras.layers.Conv1D(layer.filters, layer.kernel_size, strides=layer.stride,
                                   padding=layer.padding, use_bias=False, name=layer.name)

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers, strict=True):
        taps = isinstance(old, SincConv1D)
        new.set_weights([old.filter_bank()[:, None, :]] if taps else old.get_weights())
    return copy


def _convert(model, int8: bool) -> bytes:
    """TFLite bytes of `model`, via a SavedModel (Keras 3 has no direct path)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="lcnn-export-") as tmp, _quiet_tensorflow_logger():
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            return converter.convert()
        except Exception as e:  # the converter's errors are long MLIR dumps; keep the first line
            raise ExportError(f"TFLite conversion failed: {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    """The first line of an error message (TensorFlow's run to pages), or the error's type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def keep_float(int8: bytes, weights: list[np.ndarray]) -> bytes:
    """The int8 model with each of `weights` stored as float32 again.

    A weight is found by value: the int8 tensor of its shape whose values, times their
    per-channel scales, are within half a step of it. (Tensor names are no help: the same
    weight can be named differently in two conversions.) A convolution with a float filter
    runs in float. Weights under 1,024 values are left alone: the converter keeps them float.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(int8))
    for weight in (w for w in weights if w.size >= _MIN_QUANTISED_SIZE):
        held = [t for t in model.subgraphs[0].tensors if _quantises(model, t, weight)]
        if not held:  # e.g. a BatchNorm right after the layer, folded into its filter
            warnings.warn(f"int8 export: the weight of shape {weight.shape} to keep in float32 "
                          "was not found among the int8 tensors; it stays int8", stacklevel=2)
            continue
        model.buffers[held[0].buffer].data = np.frombuffer(weight.astype("<f4").tobytes(),
                                                           dtype=np.uint8)
        held[0].type, held[0].quantization = schema.TensorType.FLOAT32, None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _quantises(model, tensor, weight: np.ndarray) -> bool:
    """Whether `tensor` is the per-channel int8 form of `weight`."""
    from tensorflow.lite.python import schema_py_generated as schema

    q, data = tensor.quantization, model.buffers[tensor.buffer].data
    if (tensor.type != schema.TensorType.INT8 or tuple(tensor.shape) != weight.shape
            or data is None or q is None or q.scale is None
            or len(q.scale) not in (1, weight.shape[0])):
        return False
    values = np.frombuffer(bytes(data), dtype=np.int8).reshape(weight.shape)
    scale = np.asarray(q.scale, dtype=np.float32).reshape((-1,) + (1,) * (weight.ndim - 1))
    return bool(np.all(np.abs(values * scale - weight) <= 0.501 * scale))  # half a step


@contextlib.contextmanager
def _quiet_tensorflow_logger():
    """Hide TensorFlow's INFO lines ("Assets written to: /tmp/...") while exporting."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_tflite(run_dir: str | Path, int8: bool = False, out: str | Path | None = None) -> Path:
    """Export the run's best model to TFLite and return the written file's path.

    Writes <run_dir>/model.tflite (float32) or model-int8.tflite (`int8=True`) unless `out`
    names another file. Raises a RunError (an LcnnError) if the run has no trained model.
    """
    from lcnn.runtime import set_threads

    run_dir = Path(run_dir)
    cfg = runs.load_config(run_dir)
    set_threads(cfg.threads)
    best = runs.load_best(run_dir)
    path = Path(out) if out else default_path(run_dir, int8)
    runs.check_output(path, "--out", b"TFL3", offset=4)  # a FlatBuffer's file identifier
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; --out must name a file such as model.tflite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{path.parent}: cannot create the output folder ({e.strerror})") \
            from None
    try:
        # the temporary file first: an unwritable folder fails before the slow conversion
        with atomic_path(path) as tmp:
            tmp.write_bytes(convert_model(best.model, int8=int8))
            if not out and not best.still_in(run_dir):  # the earlier model's file stays out
                raise ExportError(f"{run_dir}: was started over (train --overwrite) while "
                                  "exporting; export again when the new run has a model")
    except OSError as e:
        raise ExportError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def _interpreter_class():
    """TensorFlow's TFLite interpreter, or LiteRT's where TensorFlow no longer has one."""
    import tensorflow as tf

    interpreter = getattr(getattr(tf, "lite", None), "Interpreter", None)
    if interpreter is not None:
        return interpreter
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ExportError(
            "this TensorFlow has no TFLite interpreter; pip install ai-edge-litert"
        ) from None
    return Interpreter


TFLITE_ID = b"TFL3"  # the flatbuffer file identifier of a TFLite model, at bytes 4..8
MAX_TENSOR_BYTES = 1 << 30  # a sane model's tensors (for one window) are far smaller


def read_tflite(path: str | Path) -> bytes:
    """The bytes of a .tflite file, after checks that need no interpreter: a file, big enough,
    the TFLite identifier, a root table inside the file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such TFLite file; create one with "
                          "`python -m lcnn export --run_dir RUN`")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ExportError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < 16 or data[4:8] != TFLITE_ID:
        raise ExportError(f"{path}: not a TFLite model (no {TFLITE_ID.decode()} identifier)")
    if int.from_bytes(data[:4], "little") >= len(data):
        raise ExportError(f"{path}: damaged TFLite model (root table beyond the end of the file)")
    return data


def _check_tensor_sizes(interpreter, path: Path) -> None:
    """Refuse a model whose tensors would need absurd memory (a damaged shape)."""
    total = 0
    for detail in interpreter.get_tensor_details():
        shape = [max(int(d), 1) for d in detail["shape"]]
        total += int(np.prod(shape, dtype=np.float64)) * np.dtype(detail["dtype"]).itemsize
    if total > MAX_TENSOR_BYTES:
        raise ExportError(f"{path}: damaged TFLite model (its tensors would need "
                          f"{total / 2**30:.1f} GiB)")


def load_interpreter(path: str | Path, threads: int | None = None):
    """A TFLite interpreter for the file at `path`, with a clear error for a bad file.

    The file is handed over as bytes (`model_content`): that path runs TFLite's flatbuffer
    verifier, while `model_path` trusts the file, and a truncated model then crashes the
    process or grows without bound. `threads` defaults to all cores (0 or None), like
    `Config.threads`. TFLite's own default runs one thread: one 2-s clip took 1.9 ms against
    1.2 ms on 2 threads (int8, 2 cores).
    """
    path = Path(path)
    data = read_tflite(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TF 2.21's deprecation notice, printed on every load
        try:
            interpreter = _interpreter_class()(model_content=data,
                                               num_threads=threads or os.cpu_count())
        except (ValueError, RuntimeError) as e:
            raise ExportError(f"{path}: not a usable TFLite model ({_first_line(e)})") from None
    _check_tensor_sizes(interpreter, path)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1 or len(inputs[0]["shape"]) != 2:
        raise ExportError(f"{path}: expected one waveform input [batch, samples], got "
                          f"{[tuple(d['shape']) for d in inputs]}")
    return interpreter


def tflite_scorer(path: str | Path, threads: int | None = None) -> Scorer:
    """A Scorer ([windows, n_samples] float32 -> [windows] p(fake)) backed by a .tflite file.

    The batch dimension is resized to the number of windows when it changes, so one call
    scores a whole file. `threads` defaults to all cores.
    """
    interpreter = load_interpreter(path, threads)
    inp = interpreter.get_input_details()[0]
    out_index = interpreter.get_output_details()[0]["index"]
    n_samples = int(inp["shape"][1])
    shape = [None]  # batch size the tensors are currently allocated for

    def score(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != n_samples:
            raise ExportError(f"{path}: the model takes windows of {n_samples} samples, "
                              f"got an array of shape {x.shape}")
        try:
            if shape[0] != len(x):
                interpreter.resize_tensor_input(inp["index"], [len(x), n_samples])
                with native_stderr_silenced():  # TFLite logs its XNNPACK delegate here
                    interpreter.allocate_tensors()
                shape[0] = len(x)
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return np.array(interpreter.get_tensor(out_index)).reshape(-1)
        except (RuntimeError, ValueError) as e:  # a damaged model the verifier let through
            raise ExportError(f"{path}: TFLite cannot run this model ({_first_line(e)})") \
                from None

    return score
