"""Where training runs: the tf.distribute strategy of `train --strategy`.

- `auto`: TensorFlow's default strategy, one device (the CPU, or the first GPU TensorFlow
  finds): what lcnn did before strategies existed.
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per local GPU, or with no GPU one
  per logical CPU device (`LCNN_CPU_DEVICES=N` splits the CPU into N before TensorFlow starts:
  no faster, but it runs the multi-replica path on any laptop, as the tests do). Keras'
  `model.fit` splits each batch over the replicas and sums their gradients of a loss already
  divided by the global batch: `--batch_size` is the global batch. BatchNorm layers are
  switched to synchronised statistics, so a replica's share of a batch is normalised with the
  whole batch's mean and variance, as on one device. One difference remains: Keras 3's
  optimizer clips gradients (Config.clipnorm) per replica, before summing them, so when
  clipping is active a step differs from one device's (equal within float error otherwise
  for the sinc front end, tests/test_distribute.py). With the log-mel front end (the default)
  two epochs under `mirrored` end 1e-2 away from one device's weights, for a reason not found
  yet.
- `multiworker`: refused with one line. `model.fit` under `MultiWorkerMirroredStrategy` fails in
  Keras 3 ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585, open); it
  needs a training step of lcnn's own, which does not exist yet.
"""

from __future__ import annotations

import os

from lcnn.errors import LcnnError

STRATEGIES = ("auto", "mirrored", "multiworker")
CPU_DEVICES = "LCNN_CPU_DEVICES"  # logical CPU devices for `mirrored` on a machine without GPU
MULTIWORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"


def check_strategy(name: str) -> None:
    """LcnnError unless `name` is a strategy lcnn can train with (before TensorFlow starts)."""
    if name == "multiworker":
        raise LcnnError("--strategy multiworker is not available: Keras 3's model.fit fails "
                        "under MultiWorkerMirroredStrategy (keras-team/keras#20585, "
                        f"{MULTIWORKER_ISSUE}); use --strategy mirrored on one machine")
    if name not in STRATEGIES:
        raise LcnnError(f"--strategy: unknown strategy {name!r}; valid: auto, mirrored")


def _cpu_devices() -> int | None:
    """LCNN_CPU_DEVICES as a count, None when unset."""
    text = os.environ.get(CPU_DEVICES, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise LcnnError(f"{CPU_DEVICES}={text!r}: expected a positive number of logical CPU "
                        "devices")
    return int(text)


def _split_cpu(n: int) -> None:
    """Make the first physical CPU n logical devices (only possible before TensorFlow runs)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) == n:
        return  # configured already (by the caller, or an earlier training in this process)
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise LcnnError(f"{CPU_DEVICES}={n}: TensorFlow has started already in this process; "
                        "set it before anything runs (e.g. in a fresh process)") from None


def make_strategy(name: str):
    """The tf.distribute strategy called `name` (see the module docstring). Call it before
    TensorFlow runs anything: it may split the CPU into logical devices."""
    check_strategy(name)
    import tensorflow as tf

    if name == "auto":
        return tf.distribute.get_strategy()
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()  # every local GPU
    n = _cpu_devices()
    if n is not None:
        _split_cpu(n)
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def prepare_model(model, strategy) -> None:
    """Synchronise BatchNorm statistics over the replicas when there are several."""
    if strategy.num_replicas_in_sync < 2:
        return  # one device: models stay exactly as before
    import keras

    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True  # read at call time, and saved in the .keras file


def _all_layers(model):
    """The layers of model, and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
