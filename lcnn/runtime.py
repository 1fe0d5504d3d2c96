"""How TensorFlow runs here: its threads, and no C++ log lines in notebook outputs or on the
command line's stderr.

`set_threads(n)` sets TensorFlow's thread pools (call it before TensorFlow runs anything).

TensorFlow's C++ core logs through absl and TFLite through its own logger, both straight to
file descriptor 2, past Python's sys.stderr. Two switches cover them:

- `quiet_tensorflow()` sets TF_CPP_MIN_LOG_LEVEL=2 before TensorFlow loads (its INFO and WARNING
  lines, absl's "All log messages before absl::InitializeLog()" among them). `import lcnn`
  calls it, so it only has to come before `import tensorflow`; set TF_CPP_MIN_LOG_LEVEL=0
  yourself to see everything again.
- `native_stderr_silenced()` points descriptor 2 at the null device for a block of code, for
  C++ lines no setting reaches (TFLite's "Created TensorFlow Lite XNNPACK delegate for CPU").
  `quiet_tensorflow()` also loads TensorFlow inside it: TensorFlow 2.21 logs absl's notice
  and "oneDNN custom operations are on" while its libraries load, before it reads
  TF_CPP_MIN_LOG_LEVEL (seen on AMD EPYC machines).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator


def quiet_tensorflow() -> None:
    """Hide TensorFlow's start-up and C++ INFO/WARNING lines (errors still show).

    Takes effect only if TensorFlow has not been imported yet; a value the user set wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"] not in ("0", "1")
    if quiet and "tensorflow" not in sys.modules and not any(
            isinstance(f, _SilentTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorFlowImport())


class _SilencedLoader(importlib.abc.Loader):
    """A module loader that runs the module's code with descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with native_stderr_silenced():
            self.loader.exec_module(module)
        # In an interactive shell (Jupyter) the first tf.get_logger() call sets TensorFlow's
        # Python logger to INFO, undoing quiet_tensorflow's level; make that call now.
        get_logger = getattr(module, "get_logger", None)
        if get_logger is not None:
            get_logger().setLevel(logging.ERROR)


class _SilentTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as usual, but loads it with native stderr silenced."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders do the search
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send whatever native code writes to file descriptor 2 to the null device meanwhile.

    Python exceptions still propagate; only C/C++ writes to stderr are lost, so keep the block
    small (one library call whose messages are known to be noise).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (e.g. pythonw on Windows)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
