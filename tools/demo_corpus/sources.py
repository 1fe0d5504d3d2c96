"""Where the real speech and the prompt texts come from: installed Debian packages."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDS = Path("/usr/share/asterisk/sounds")
DOC = Path("/usr/share/doc")


@dataclass(frozen=True)
class Speaker:
    """One real voice: a folder of 16-kHz G.722 prompts from one Debian package."""

    name: str  # speaker id used in metadata.csv
    gender: str
    lang: str
    folder: str  # under SOUNDS
    licence: str

    @property
    def package(self) -> str:
        return f"asterisk-core-sounds-{self.lang}-g722"

    @property
    def transcript(self) -> Path:
        """The prompt texts, shipped in the base package of the language."""
        return DOC / f"asterisk-core-sounds-{self.lang}" / f"core-sounds-{self.lang}.txt.gz"


SPEAKERS = (
    Speaker("allison_smith", "F", "en", "en_US_f_Allison", "CC-BY-SA-3.0"),
    Speaker("allison_smith", "F", "es", "es_MX_f_Allison", "CC-BY-SA-3.0"),
    Speaker("june_wallack", "F", "fr", "fr_CA_f_June", "CC-BY-SA-3.0"),
    Speaker("carlo_flora", "M", "it", "it_IT_m_Carlo", "CC-BY-3.0"),
    Speaker("ivrvoice_ru", "F", "ru", "ru_RU_f_IvrvoiceRU", "CC-BY-3.0"),
)


@dataclass
class Recording:
    """One real prompt before processing."""

    rec_id: str  # unique per recording
    group: str  # recordings of the same prompt (any language) share a group: the split unit
    speaker: Speaker
    origin: str  # file the audio came from
    text: str  # the prompt in its own language ("" if the transcript lacks it)
    audio: np.ndarray  # float64 at 16 kHz, as decoded from G.722
    sr: int = 16000


def decode_g722(path: Path) -> np.ndarray:
    """A raw G.722 file (as Asterisk stores them) decoded to float64 in [-1, 1) at 16 kHz."""
    import av

    with av.open(str(path), format="g722") as container:
        pcm = [frame.to_ndarray().ravel() for frame in container.decode(audio=0)]
    if not pcm:  # a few prompts are empty files
        return np.zeros(0)
    return np.concatenate(pcm).astype(np.float64) / 32768.0


def normalise_text(text: str) -> str:
    """Lower-case words only, so that punctuation variants of one prompt count as one text."""
    return " ".join(re.findall(r"[\w']+", text.lower()))


def read_transcript(path: Path) -> dict[str, str]:
    """Prompt name -> text; comments, tones and notes in brackets are left out."""
    texts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            text = text.strip()
            if not sep or line.startswith(";") or not text or "[" in text or "/" in name:
                continue
            texts[name.strip()] = text
    return texts


def recordings(speaker: Speaker) -> list[Recording]:
    """The top-level prompts of one voice (the digits/letters subfolders are single words)."""
    texts = read_transcript(speaker.transcript)
    out = []
    for path in sorted((SOUNDS / speaker.folder).glob("*.g722")):
        out.append(Recording(
            rec_id=f"{speaker.lang}_{speaker.name}_{path.stem}", group=path.stem,
            speaker=speaker, origin=str(path), text=texts.get(path.stem, ""),
            audio=decode_g722(path)))
    return out
