"""How TensorFlow runs on this machine: threads (and, later, its log output)."""

from __future__ import annotations

import os


def set_threads(n: int = 0) -> None:
    """Use n CPU threads inside TensorFlow ops (0 = all cores), one op at a time.

    Must run before TensorFlow executes anything; later calls are ignored by TensorFlow.
    """
    import tensorflow as tf

    n = n or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        # one op at a time: on a laptop, parallel ops only fight over the same cores
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised (e.g. a notebook that trained before); keep its setting
