"""Where training runs: the tf.distribute strategy of `train --strategy`.

Every strategy trains with the same step, lcnn.detector.loop.TrainStep (Keras' `model.fit`
is not used): each replica takes its share of the global batch (`--batch_size` is the global
batch), the replicas' gradients are summed, and the Keras optimizer then clips and applies
them once, so a step equals one device's, clipping included (tests/test_distribute.py).

- `auto`: TensorFlow's default strategy, one device (the CPU, or the first GPU TensorFlow
  finds): the step is the one `model.fit` takes (tests/test_train.py).
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per local GPU, or with no GPU one
  per logical CPU device (`LCNN_CPU_DEVICES=N` splits the CPU into N before TensorFlow starts:
  no faster, but it runs the multi-replica path on any laptop, as the tests do). BatchNorm
  layers are switched to synchronised statistics, so a replica's share of a batch is
  normalised with the whole batch's mean and variance, as on one device.
- `multiworker`: `tf.distribute.MultiWorkerMirroredStrategy` over the machines TF_CONFIG lists
  (each worker runs the same `train` command with its own TF_CONFIG "task"). Every worker
  reads every global batch and keeps its replicas' share (tf.data's DATA sharding), so the
  union is the batch one device would see. Only the chief writes the run folder; the others
  write to a temporary folder they delete. On resuming, the chief's progress (state.json)
  and last.keras reach the other workers through an all-reduce (share_from_chief), so they
  need no access to the run folder; after each epoch every worker takes the chief's
  validation verdict, so all stop at the same epoch. If a worker dies, the others stop with
  an error from TensorFlow's collectives: start every worker again with the same command,
  and training resumes after the last epoch the chief saved.

Equal within float error to one device for the sinc front end (tests/test_distribute.py).
With the log-mel front end `mirrored` and `multiworker` drift from one device
by float rounding: the first step agrees, later ones part further. Keras' synchronised
BatchNorm (variance as E[x^2] - E[x]^2 in float32) is one source; why the log-mel model
amplifies such rounding more than the sinc model is not known yet.
"""

from __future__ import annotations

import json
import os

import numpy as np

from lcnn.errors import LcnnError

STRATEGIES = ("auto", "mirrored", "multiworker")
CPU_DEVICES = "LCNN_CPU_DEVICES"  # logical CPU devices for `mirrored` on a machine without GPU
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def check_strategy(name: str) -> None:
    """LcnnError unless `name` is a strategy lcnn can train with, and (multiworker) TF_CONFIG
    describes this worker's cluster; checked before TensorFlow starts."""
    if name not in STRATEGIES:
        raise LcnnError(f"--strategy: unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "multiworker":
        tf_config_chief()


def tf_config_chief() -> bool:
    """Whether this process is the chief of TF_CONFIG's cluster: the "chief" task, or worker 0
    when the cluster has none.

    One LcnnError line when TF_CONFIG is missing or is not what MultiWorkerMirroredStrategy
    reads: JSON with "cluster" (task type -> list of "host:port") and "task" ("type" one of
    the cluster's "chief"/"worker" entries, "index" into its list).
    """
    text = os.environ.get(TF_CONFIG, "").strip()
    need = f"--strategy multiworker needs {TF_CONFIG}, e.g. {TF_CONFIG}='{_TF_CONFIG_EXAMPLE}'"
    if not text:
        raise LcnnError(f"{need} (it is not set)")
    try:
        config = json.loads(text)
    except ValueError as e:
        raise LcnnError(f"{TF_CONFIG}: not JSON ({e}); {need}") from None
    try:
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], task["index"]
        members = {str(k): list(v) for k, v in cluster.items()}
    except KeyError as e:
        raise LcnnError(f"{TF_CONFIG}: no {e} entry; {need}") from None
    except (TypeError, AttributeError):
        raise LcnnError(f"{TF_CONFIG}: not the shape MultiWorkerMirroredStrategy reads; "
                        f"{need}") from None
    if kind not in ("chief", "worker"):
        raise LcnnError(f"{TF_CONFIG}: task type {kind!r}: lcnn trains with \"chief\" and "
                        "\"worker\" tasks only")
    hosts = members.get(kind, [])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(hosts):
        raise LcnnError(f"{TF_CONFIG}: task {kind} {index!r} is not in the cluster "
                        f"({len(hosts)} {kind} address(es)); {need}")
    if len(members.get("chief", [])) > 1:
        raise LcnnError(f"{TF_CONFIG}: {len(members['chief'])} chiefs; a cluster has at most one")
    return kind == "chief" or (index == 0 and "chief" not in members)


def is_chief(name: str) -> bool:
    """Whether this process writes the run folder: always, except under multiworker, where
    only the chief does (the "chief" task, or worker 0 when the cluster has none)."""
    return name != "multiworker" or tf_config_chief()


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
    if name == "multiworker":  # every local GPU (or the CPU) of each worker in TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
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


def share_from_chief(strategy, values: np.ndarray) -> np.ndarray:
    """The chief's `values` (a float64 vector) on every worker: a collective all-reduce to
    which only the first replica (on the chief) contributes. Returns `values` unchanged when
    training on one machine. Every worker must call it at the same point of training."""
    import tensorflow as tf

    values = np.asarray(values, dtype=np.float64)
    if getattr(strategy.extended, "_num_workers", 1) < 2:
        return values

    def replica(x):
        context = tf.distribute.get_replica_context()
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), x.dtype)
        # where() rather than a product: a NaN of another worker must not leak in
        return context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  tf.where(first > 0, x, tf.zeros_like(x)))

    shared = tf.function(lambda x: strategy.run(replica, args=(x,)))(tf.constant(values))
    return strategy.experimental_local_results(shared)[0].numpy()
