"""Helpers of tools/build_demo_corpus.py: sources, synthesis, the common chain, cues, data card."""

import os

# Read by OpenMP, OpenBLAS, MKL and numba when they load (with numpy, scipy, torch, librosa).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def cap_threads(n: int = 2) -> None:
    """Cap the numerical libraries at n threads each (the machine is shared). Call it before any
    of them is imported; a value already in the environment wins. The builder calls it when it
    starts, not on import, so importing a helper (tests do) leaves the environment alone."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(n))
