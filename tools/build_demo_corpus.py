#!/usr/bin/env python
"""Rebuild the embedded demo corpus data/demo/ from installed Debian and PyPI packages.

    python tools/build_demo_corpus.py            # writes data/demo/ (about 10 minutes, 2 cores)

Learners never need this: the corpus is committed. The build is deterministic (fixed seeds,
sorted inputs), writes into a temporary folder next to the target and swaps it in at the end.
See data/demo/README.md (written by this script) for what the corpus contains and why.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from demo_corpus import prereqs  # first: it caps the thread count before numpy loads

REPO = Path(__file__).resolve().parent.parent
SEED = 20261130
SPLITS = ("training", "validation", "testing")
GROUP_SHARES = {"training": 0.6, "validation": 0.2, "testing": 0.2}
PER_CLASS = {"training": 160, "validation": 50, "testing": 60}  # clips per class and split
UNSEEN = "festival-hts"  # the attack family that only appears in testing
UNSEEN_IN_TESTING = 18
MIN_TTS_WORDS = 6  # shorter prompts rarely fill two seconds of speech
# The codec2 recordings are few and long: each one goes to a split chosen here, so that
# every split has some male and some non-asterisk speech.
CODEC2_SPLIT = {
    "codec2_ve9qrp": "training",
    "codec2_speech_orig_16k": "validation",
    "codec2_big_dog": "validation",
    "codec2_all": "testing",
}
# Share of each real voice source among real clips, and among the recordings that the
# vocoders copy. TTS speaks English only, so real clips lean on English and the vocoders on
# the other languages, which keeps the language mix of the two classes close.
REAL_WEIGHTS = {"en/allison_smith": 0.45, "en/codec2": 0.15, "es/allison_smith": 0.10,
                "fr/june_wallack": 0.10, "it/menardi_it": 0.10, "fr/armelle_desjardins": 0.10}
VOCODER_WEIGHTS = {"en/allison_smith": 0.0, "en/codec2": 0.10, "es/allison_smith": 0.225,
                   "fr/june_wallack": 0.225, "it/menardi_it": 0.225,
                   "fr/armelle_desjardins": 0.225}


@dataclass(frozen=True)
class Family:
    """One attack family: a TTS engine with its voices, or a vocoder."""

    name: str
    kind: str  # "tts" or "vocoder"
    voices: tuple[str, ...] = ()


FAMILIES = (
    Family("piper-vits", "tts", ("joe",)),
    # flite's slt is the one female voice among its five: used more so that the fake class
    # is not mostly male while the real one is mostly female.
    Family("flite", "tts", ("slt", "awb", "slt", "rms", "slt", "kal16")),
    Family("festival-diphone", "tts", ("kal_diphone",)),
    Family("espeak-ng", "tts", ("en-us+f3", "en-gb+f2", "en-us+f4", "en+f1", "en-us+m3")),
    Family("festival-hts", "tts", ("cmu_us_slt_arctic_hts",)),
    Family("world", "vocoder"),
    Family("griffin-lim", "vocoder"),
    Family("lpc", "vocoder"),
)


@dataclass
class Clip:
    """A finished clip and its metadata row."""

    row: dict[str, str]
    audio: object = field(repr=False)


def clip_rng(name: str):
    """A generator seeded by the clip's name, so no clip depends on the order of the others."""
    import numpy as np

    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def group_ids(recordings, texts: dict[str, str]) -> dict[str, str]:
    """Prompt name -> split unit. Prompts that share a text or identical audio are one unit."""
    from demo_corpus.sources import normalise_text

    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        ra, rb = sorted((find(a), find(b)))
        parent[rb] = ra

    first_seen: dict[str, str] = {}
    for stem, text in sorted(texts.items()):
        key = "text:" + normalise_text(text)
        union(stem, first_seen.setdefault(key, stem))
    for rec in recordings:
        key = "audio:" + hashlib.sha1(rec.audio.tobytes()).hexdigest()
        union(rec.group, first_seen.setdefault(key, rec.group))
    return {stem: find(stem) for stem in parent}


def assign_splits(units: Iterable[str]) -> dict[str, str]:
    """Shuffle the split units with the fixed seed and cut them 60/20/20."""
    import numpy as np

    units = sorted(set(units))
    order = np.random.default_rng(SEED).permutation(len(units))
    cut1 = int(GROUP_SHARES["training"] * len(units))
    cut2 = cut1 + int(GROUP_SHARES["validation"] * len(units))
    split = {}
    for rank, i in enumerate(order):
        split[units[i]] = SPLITS[0] if rank < cut1 else SPLITS[1] if rank < cut2 else SPLITS[2]
    return split


def quotas(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer shares of `total` proportional to `weights` (largest remainders)."""
    raw = {k: total * w / sum(weights.values()) for k, w in weights.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: out[k] - raw[k])[: total - sum(out.values())]:
        out[k] += 1
    return out


def fill(total: int, weights: dict[str, float],
         candidates: dict[str, Iterator[Clip]]) -> list[Clip]:
    """Take clips from each source up to its quota; sources that run dry leave room to others."""
    want = quotas(total, {k: w for k, w in weights.items() if k in candidates})
    taken: list[Clip] = []
    for key in want:
        taken += [c for _, c in zip(range(want[key]), candidates[key], strict=False)]
    while len(taken) < total:
        before = len(taken)
        for key in want:
            clip = next(candidates[key], None)
            if clip is not None and len(taken) < total:
                taken.append(clip)
        if len(taken) == before:
            raise SystemExit(f"not enough source material: {len(taken)} of {total} clips")
    return taken


class Builder:
    """Makes every clip of the corpus in memory; `write` puts them on disk."""

    def __init__(self) -> None:
        import numpy as np
        from demo_corpus import chain, sources, tts

        self.np, self.chain, self.tts = np, chain, tts
        self.texts = sources.read_transcripts()
        self.recordings = [r for s in sources.ASTERISK_SPEAKERS
                           for r in sources.asterisk_recordings(s)]
        self.recordings += sources.codec2_recordings(self._codec2_starts)
        self.unit = group_ids([r for r in self.recordings if r.source != "codec2-examples"],
                              self.texts)
        for rec in self.recordings:
            rec.group = self.unit.get(rec.group, rec.group)
        self.split = assign_splits(u for u in self.unit.values())
        self.split.update(CODEC2_SPLIT)
        self.piper = tts.Piper()
        self.engines: dict[str, Callable] = {
            "piper-vits": self.piper, "flite": tts.flite, "festival-diphone": tts.festival,
            "festival-hts": tts.festival, "espeak-ng": tts.espeak}

    def _codec2_starts(self, audio, sr: int) -> list[int]:
        """Speech onsets at least 2.7 s apart, so the pieces of a recording do not overlap."""
        starts: list[int] = []
        for onset in self.chain.onsets(audio, sr):
            if not starts or onset - starts[-1] >= int(2.7 * sr):
                starts.append(onset)
        return starts

    def _finish(self, name: str, audio, sr: int):
        return self.chain.make_clip(audio, sr, clip_rng(name))

    def _source_key(self, rec) -> str:
        return f"{rec.lang}/{'codec2' if rec.source == 'codec2-examples' else rec.speaker}"

    def _by_source(self, split: str, family: str) -> dict[str, list]:
        """Usable real recordings of a split per voice source, in a per-family seeded order."""
        out: dict[str, list] = {}
        for rec in self.recordings:
            if self.split[rec.group] == split and rec.usable:
                out.setdefault(self._source_key(rec), []).append(rec)
        rng = self.np.random.default_rng([SEED, zlib.crc32(f"{split}/{family}".encode())])
        return {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(out.items())}

    def _row(self, rec, split: str, label: str, attack: str, generator: str, text: str) -> dict:
        return {"split": split, "label": label, "attack": attack, "source": rec.source,
                "speaker": rec.speaker, "lang": rec.lang, "text_id": rec.group,
                "recording": rec.rec_id, "generator": generator, "text": text,
                "origin": rec.origin, "licence": rec.licence}

    def _text_of(self, rec) -> str:
        """The words of an English asterisk prompt; other languages have no transcript here."""
        if rec.lang != "en" or rec.source == "codec2-examples":
            return ""
        return self.texts.get(Path(rec.origin).stem, "")

    def real_clips(self, split: str) -> list[Clip]:
        def gen(recs) -> Iterator[Clip]:
            for rec in recs:
                row = self._row(rec, split, "real", "bonafide", "human", self._text_of(rec))
                row["file"] = f"{split}/real/{rec.rec_id}.wav"
                yield Clip(row, rec.clip)

        groups = self._by_source(split, "real")
        return fill(PER_CLASS[split], REAL_WEIGHTS, {k: gen(v) for k, v in groups.items()})

    def vocoded(self, split: str, family: str, count: int) -> list[Clip]:
        from demo_corpus import vocoders

        vocoder = {"world": vocoders.world, "griffin-lim": vocoders.griffin_lim,
                   "lpc": vocoders.lpc}[family]

        def gen(recs) -> Iterator[Clip]:
            for rec in recs:
                name = f"{family}_{rec.rec_id}"
                audio, sr = vocoder(rec.audio, rec.sr, clip_rng(name + "/vocoder"))
                clip = self._finish(name, audio, sr)
                if clip is not None:
                    row = self._row(rec, split, "fake", family, family, self._text_of(rec))
                    row["file"] = f"{split}/fake/{name}.wav"
                    yield Clip(row, clip)

        groups = self._by_source(split, family)
        return fill(count, VOCODER_WEIGHTS, {k: gen(v) for k, v in groups.items()})

    def synthesised(self, split: str, fam: Family, count: int) -> list[Clip]:
        stems = sorted(s for s, t in self.texts.items()
                       if self.split[self.unit[s]] == split and len(t.split()) >= MIN_TTS_WORDS)
        rng = self.np.random.default_rng([SEED, zlib.crc32(f"{split}/{fam.name}".encode())])
        out: list[Clip] = []
        for i in rng.permutation(len(stems)):
            if len(out) == count:
                break
            stem, voice = stems[i], fam.voices[len(out) % len(fam.voices)]
            audio, sr = self.engines[fam.name](self.texts[stem], voice)
            name = f"{fam.name}_{voice.replace('+', '-')}_{stem}"
            clip = self._finish(name, audio, sr)
            if clip is None:
                continue
            out.append(Clip({
                "file": f"{split}/fake/{name}.wav", "split": split, "label": "fake",
                "attack": fam.name, "source": "tts", "speaker": f"{fam.name}:{voice}",
                "lang": "en", "text_id": self.unit[stem], "recording": name,
                "generator": f"{fam.name}:{voice}", "text": self.texts[stem], "origin": "",
                "licence": "generated"}, clip))
        if len(out) < count:
            raise SystemExit(f"{fam.name}: only {len(out)} of {count} clips in {split}")
        return out

    def fake_clips(self, split: str) -> list[Clip]:
        seen = [f for f in FAMILIES if f.name != UNSEEN]
        total = PER_CLASS[split]
        out: list[Clip] = []
        if split == "testing":
            unseen = next(f for f in FAMILIES if f.name == UNSEEN)
            out += self.synthesised(split, unseen, UNSEEN_IN_TESTING)
            total -= UNSEEN_IN_TESTING
        for fam, count in quotas(total, {f.name: 1.0 for f in seen}).items():
            family = next(f for f in seen if f.name == fam)
            if family.kind == "tts":
                out += self.synthesised(split, family, count)
            else:
                out += self.vocoded(split, fam, count)
            print(f"  {split}: {fam} {count}", flush=True)
        return out

    def run(self) -> list[Clip]:
        for rec in self.recordings:  # one pass decides which recordings fill a clip
            rec.clip = self._finish(f"real_{rec.rec_id}", rec.audio, rec.sr)
            rec.usable = rec.clip is not None
        clips: list[Clip] = []
        for split in SPLITS:
            clips += self.real_clips(split)
            clips += self.fake_clips(split)
        return clips


COLUMNS = ("file", "split", "label", "attack", "source", "speaker", "lang", "text_id",
           "recording", "generator", "text", "origin", "licence")


def write(clips: list[Clip], folder: Path) -> list[dict[str, str]]:
    """Write the WAV files and metadata.csv into `folder` (a fresh temporary folder)."""
    import soundfile as sf

    rows = sorted((c.row for c in clips), key=lambda r: r["file"])
    if len({r["file"] for r in rows}) != len(rows):
        raise SystemExit("two clips got the same file name")
    for clip in clips:
        path = folder / clip.row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), clip.audio, 16000, subtype="PCM_16")
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` with renames, so a failed build never leaves half a corpus."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "demo",
                        help="corpus folder to (re)write (default: data/demo)")
    args = parser.parse_args(argv)
    apt, pip = prereqs.missing()
    if apt or pip:
        print("build_demo_corpus: missing prerequisites. Install them with:\n"
              + prereqs.install_hint(apt, pip), file=sys.stderr)
        return 1
    from demo_corpus import card

    start = time.time()
    out = args.out.resolve()
    tmp = out.with_name(f".{out.name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        print("synthesising clips ...", flush=True)
        builder = Builder()
        rows = write(builder.run(), tmp)
        print("measuring cues and writing the data card ...", flush=True)
        card.write_card(tmp, rows, unseen=UNSEEN, build_seconds=time.time() - start)
        swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {len(rows)} clips to {out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
