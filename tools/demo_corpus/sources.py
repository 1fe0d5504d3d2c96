"""Where the real speech and the prompt texts come from: installed Debian packages."""

from __future__ import annotations

import gzip
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDS = Path("/usr/share/asterisk/sounds")
CODEC2 = Path("/usr/share/codec2")
TRANSCRIPT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


@dataclass(frozen=True)
class Speaker:
    """One real voice source: a folder of prompts from one Debian package."""

    name: str  # speaker id used in metadata.csv
    package: str
    folder: Path
    pattern: str
    lang: str
    licence: str


ASTERISK_SPEAKERS = (
    Speaker("allison_smith", "asterisk-core-sounds-en-wav", SOUNDS / "en_US_f_Allison", "*.wav",
            "en", "CC-BY-SA-3.0"),
    Speaker("allison_smith", "asterisk-core-sounds-es-wav", SOUNDS / "es_MX_f_Allison", "*.wav",
            "es", "CC-BY-SA-3.0"),
    Speaker("june_wallack", "asterisk-core-sounds-fr-wav", SOUNDS / "fr_CA_f_June", "*.wav",
            "fr", "CC-BY-SA-3.0"),
    Speaker("menardi_it", "asterisk-prompt-it-menardi-wav", SOUNDS / "it_IT_f_Menardi", "*.wav",
            "it", "CC-BY-SA-3.0-IT"),
    Speaker("armelle_desjardins", "asterisk-prompt-fr-armelle", SOUNDS / "fr", "*.gsm",
            "fr", "BSD-style (Michel Gutierrez)"),
)

# codec2-examples speech recordings that do not overlap each other (all.wav contains hts1a,
# hts2a, forig, morig, cq_ref, vk5qi and kristoff, so those are reached through all.wav only).
# david4, vk2tpm_004 and 700d_end_over are modem signals, not speech.
CODEC2_RECORDINGS = (
    ("all", "wav/all.wav"),  # several speakers
    ("ve9qrp", "raw/ve9qrp.raw"),  # one man, over amateur radio
    ("speech_orig_16k", "raw/speech_orig_16k.wav"),
    ("big_dog", "raw/big_dog.raw"),
)
CODEC2_LICENCE = "LGPL-2.1 (codec2-examples, David Rowe)"


@dataclass
class Recording:
    """One real utterance (or a piece of a long recording) before processing."""

    rec_id: str  # unique per recording piece
    group: str  # recordings of the same prompt (any language) share a group: the split unit
    speaker: str
    source: str  # Debian package
    origin: str  # file the audio came from
    lang: str
    licence: str
    audio: np.ndarray
    sr: int


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read WAV, raw 8 kHz s16le (codec2) or GSM (via sox) as mono float64."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.float64) / 32768.0, 8000
    if path.suffix == ".gsm":
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "x.wav"
            subprocess.run(["sox", str(path), "-b", "16", str(wav)], check=True,
                           capture_output=True)
            return load_audio(wav)
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1), sr


def normalise_text(text: str) -> str:
    """Lower-case words only, so that punctuation variants of one prompt count as one text."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def read_transcripts() -> dict[str, str]:
    """Prompt name -> English text, from asterisk-core-sounds-en; tones and notes are left out."""
    texts = {}
    with gzip.open(TRANSCRIPT, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            text = text.strip()
            if not sep or line.startswith(";") or not text or "[" in text or "/" in name:
                continue
            texts[name.strip()] = text
    return texts


def asterisk_recordings(speaker: Speaker) -> list[Recording]:
    """The top-level prompts of one asterisk voice (digits/letters subfolders are single words)."""
    out = []
    for path in sorted(speaker.folder.glob(speaker.pattern)):
        audio, sr = load_audio(path)
        out.append(Recording(
            rec_id=f"{speaker.lang}_{speaker.name}_{path.stem}", group=path.stem,
            speaker=speaker.name, source=speaker.package, origin=str(path), lang=speaker.lang,
            licence=speaker.licence, audio=audio, sr=sr))
    return out


def codec2_recordings(cut) -> list[Recording]:
    """Pieces of the codec2 speech recordings, each starting at a speech onset.

    `cut(audio, sr)` returns the start samples of the pieces; all pieces of one recording share
    one group, so a recording never spans two splits.
    """
    out = []
    for name, rel in CODEC2_RECORDINGS:
        audio, sr = load_audio(CODEC2 / rel)
        for k, start in enumerate(cut(audio, sr)):
            begin = max(0, start - int(0.3 * sr))
            out.append(Recording(
                rec_id=f"en_codec2_{name}_{k:02d}", group=f"codec2_{name}",
                speaker=f"codec2_{name}" if name != "all" else "codec2_all_mixed",
                source="codec2-examples", origin=f"{CODEC2 / rel}@{start / sr:.2f}s", lang="en",
                licence=CODEC2_LICENCE, audio=audio[begin : start + int(2.4 * sr)], sr=sr))
    return out
