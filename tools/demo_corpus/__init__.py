"""Helpers of tools/build_demo_corpus.py: sources, synthesis, the common chain, cues, data card."""

import os

# The machine is shared: cap numerical libraries at two threads before any of them loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "2")
