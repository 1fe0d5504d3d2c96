"""Set-up every test module shares.

TensorFlow threads: the CPU is shared (the course machines have 2 cores, and training runs
alongside), so TensorFlow in the test process computes an op on at most two threads and runs
one op at a time, as training does (lcnn.runtime.set_threads). TensorFlow reads these two
variables when it creates its thread pools (the same pools tf.config.threading sets), so setting
them before any test module is imported covers modules that import TensorFlow at the top and
tests that import it later alike. A value already in the environment wins; an explicit
set_threads(n) (e.g. `train --threads`) still overrides them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TENSORFLOW_THREADS = {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}


def pytest_configure(config) -> None:
    for name, value in TENSORFLOW_THREADS.items():
        os.environ.setdefault(name, value)


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited: what a killed trainer leaves in its lock and
    temporary files."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
