"""The course: settings the notebooks share (where the data, runs and figures live; quick mode).

Quick mode (environment variable LCNN_QUICK=1, set by `make test`) checks that every
notebook runs: 2 training epochs and fewer bootstrap resamples, and figures go to runs/quick/
so the committed figures in figures/ are only ever written by a full run (`make course`).
Point LCNN_DATA at another dataset in the FoR layout (e.g. data/for-2sec, relative to the
repository's root) to use it.

`python -m lcnn.course run|test|lint|lab` (lcnn/course/runner.py) are the commands behind
`make course|test|lint|lab`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lcnn.config import Config

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("LCNN_QUICK", "") not in ("", "0")
NOTEBOOKS = ROOT / "notebooks"


def data_path() -> Path:
    """The dataset the course uses: $LCNN_DATA, else the embedded demo corpus. A relative
    LCNN_DATA is taken from the repository's root (where `make course` runs), not from the
    notebooks' folder, where their kernels run."""
    path = Path(os.environ.get("LCNN_DATA", ROOT / "data" / "demo"))
    return path if path.is_absolute() else ROOT / path


def run_dir(name: str = "lcnn") -> Path:
    """Where the course's training run for a model lives."""
    return ROOT / "runs" / (f"quick-{name}" if QUICK else f"course-{name}")


def figures_dir() -> Path:
    """Where notebooks save figures: figures/ in a full run, runs/quick/figures in quick mode."""
    path = ROOT / "runs" / "quick" / "figures" if QUICK else ROOT / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


# The models the notebooks train or build, by name: Config fields that differ from the defaults
VARIANTS = {
    "lcnn": {},  # the default: a Light CNN on the waveform front end
    "sinc": {"front_end": "sinc"},  # the same LCNN on sinc band energies (notebook 2)
    # the project's original ReLU CNN, with the LCNN's level normalisation (better with it:
    # bench/ablation.md, "LCNN and baseline")
    "baseline": {"model": "baseline"},
}


def config(name: str = "lcnn") -> Config:
    """The course's training settings for a model of VARIANTS: the package defaults with the
    variant's fields, 2 epochs in quick mode."""
    return Config(**VARIANTS[name], **({"epochs": 2} if QUICK else {}))


def trained_run(model: str = "lcnn", verbose: int = 0) -> Path:
    """The course's run folder for a model of VARIANTS, training it first if no finished run
    exists.

    Lets a later notebook run on its own; normally 04_training has trained it already. A
    finished run of other settings (a learner's exercise, or a course whose defaults changed
    since) is kept and used, with a note naming what differs.
    """
    from lcnn.detector import runs
    from lcnn.detector.train import changed_settings, train

    path, cfg = run_dir(model), config(model)
    state = path / runs.STATE
    if not (state.exists() and runs.read_json(state).get("finished")):
        train(data_path(), path, cfg, verbose=verbose)
    changed = changed_settings(path, cfg, data_path())
    if changed:
        print(f"Note: {path} was trained with other settings than the course's "
              f"({', '.join(changed)} differ); notebook 04 trains it again with them.")
    return path
