#!/usr/bin/env python
"""Rebuild the embedded demo corpus data/demo/ from installed Debian and PyPI packages.

    python tools/build_demo_corpus.py            # writes data/demo/ (about 25 minutes, 2 cores)

Learners never need this: the corpus is committed. The build is deterministic (fixed seeds,
sorted inputs), writes into a temporary folder next to the target and swaps it in at the end.
See data/demo/README.md (written by this script) for what the corpus contains and why.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import multiprocessing
import os
import shutil
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from demo_corpus import cap_threads  # the package alone loads no numerical library

REPO = Path(__file__).resolve().parent.parent
SEED = 20261202
SPLITS = ("training", "validation", "testing")
GROUP_SHARES = {"training": 0.6, "validation": 0.2, "testing": 0.2}
# Real clips per voice (speaker + language) and split; every real clip gets one vocoded copy
# of the same recording, so each voice, language and gender has as many fakes as real clips.
PER_VOICE = {"training": 75, "validation": 25, "testing": 30}
SEEN = ("hifigan-universal", "world", "griffin-lim", "lpc")
UNSEEN = "lpcnet"  # the neural vocoder that only appears in testing
# Attack of the k-th copy of a voice, cycling: in testing a third of the copies are unseen.
CYCLE = {"training": SEEN, "validation": SEEN,
         "testing": (UNSEEN, SEEN[0], SEEN[1], UNSEEN, SEEN[2], SEEN[3])}
UNSEEN_SPEAKER = "ivrvoice_ru"  # a voice that only appears in testing, in both classes


@dataclass
class Clip:
    """A finished clip (int16 at 16 kHz) and its metadata row."""

    row: dict[str, str]
    audio: object


def clip_rng(name: str):
    """A generator seeded by the clip's name, so no clip depends on the order of the others."""
    import numpy as np

    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def group_ids(recordings, english: dict[str, str]) -> dict[str, str]:
    """Prompt name -> split unit. Prompts that share an English text or identical audio are one
    unit; a prompt's recordings in all languages share its name, hence its unit."""
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
    for stem, text in sorted(english.items()):
        union(stem, first_seen.setdefault("text:" + normalise_text(text), stem))
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


_VOCODERS: dict = {}


def _vocoder(attack: str):
    """The vocoder of an attack, made once per worker process (the neural ones load weights)."""
    from demo_corpus import vocoders

    if attack not in _VOCODERS:
        _VOCODERS[attack] = {
            "world": lambda: vocoders.world, "griffin-lim": lambda: vocoders.griffin_lim,
            "lpc": lambda: vocoders.lpc, "hifigan-universal": lambda: vocoders.HiFiGAN(),
            "lpcnet": lambda: vocoders.LPCNet()}[attack]()
    return _VOCODERS[attack]


def make_pair(job: tuple[str, str, object, str | None]):
    """(name, attack, speech segment, cache folder) -> (real clip, fake clip, whether the copy
    came from the cache), None if either does not make a clip. Runs in a worker process."""
    import numpy as np
    from demo_corpus import chain

    name, attack, segment, cache = job
    real = chain.make_clip(segment, chain.RATE, clip_rng(f"real/{name}"))
    if real is None:
        return None
    cached = Path(cache) / f"{attack}_{name}.npy" if cache else None
    from_cache = cached is not None and cached.exists()
    if from_cache:
        copy = np.load(cached)
    else:
        copy = _vocoder(attack)(segment, clip_rng(f"{attack}/{name}/vocoder"))
        if cached is not None:  # written under another name first: a killed build leaves
            np.save(cached.with_suffix(".tmp.npy"), copy)  # no half-written copy behind
            os.replace(cached.with_suffix(".tmp.npy"), cached)
    copy = chain.g722_pass(chain.match_spectrum(copy[: len(segment)], segment))
    fake = chain.make_clip(copy, chain.RATE, clip_rng(f"{attack}/{name}"))
    return None if fake is None else (real, fake, from_cache)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


class Builder:
    """Chooses the recordings of every split and makes the clips in a pool of processes."""

    def __init__(self, workers: int, cache: Path | None) -> None:
        from demo_corpus import chain, sources

        self.chain, self.sources = chain, sources
        english = sources.read_transcript(sources.SPEAKERS[0].transcript)
        self.recordings = [r for s in sources.SPEAKERS for r in sources.recordings(s)]
        self.unit = group_ids(self.recordings, english)
        self.split = assign_splits(self.unit.values())
        self.workers, self.cache = workers, cache
        self.from_cache = 0  # vocoded copies taken from the cache

    def _candidates(self, split: str) -> dict[tuple[str, str], list]:
        """Usable recordings of a split per voice (speaker, language), in a seeded order."""
        import numpy as np

        out: dict[tuple[str, str], list] = {}
        for rec in self.recordings:
            voice = (rec.speaker.name, rec.speaker.lang)
            if self.split[self.unit[rec.group]] != split:
                continue
            if rec.speaker.name == UNSEEN_SPEAKER and split != "testing":
                continue
            out.setdefault(voice, []).append(rec)
        rng = np.random.default_rng([SEED, zlib.crc32(split.encode())])
        return {v: [recs[i] for i in rng.permutation(len(recs))] for v, recs in sorted(out.items())}

    def _row(self, rec, split: str, label: str, attack: str, name: str) -> dict[str, str]:
        s = rec.speaker
        return {"file": f"{split}/{label}/{name}.flac", "split": split, "label": label,
                "attack": attack, "source": s.package, "speaker": s.name, "gender": s.gender,
                "lang": s.lang, "text_id": self.unit[rec.group], "recording": rec.rec_id,
                "generator": "human" if label == "real" else attack, "text": rec.text,
                "origin": rec.origin, "licence": s.licence}

    def split_clips(self, split: str, pool) -> list[Clip]:
        clips: list[Clip] = []
        want = PER_VOICE[split]
        cycle = CYCLE[split]
        for voice, recs in self._candidates(split).items():
            jobs, voice_clips = [], []
            for rec in recs:
                segment = self.chain.speech_segment(rec.audio, rec.sr)
                if segment is not None:
                    jobs.append((rec, cycle[len(jobs) % len(cycle)], segment))
            done = 0  # jobs sent to the pool; more are sent when some make no clip
            while len(voice_clips) < 2 * want and done < len(jobs):
                batch = jobs[done : done + want - len(voice_clips) // 2]
                done += len(batch)
                results = pool.imap(make_pair, [(r.rec_id, a, s, self.cache and str(self.cache))
                                                for r, a, s in batch])
                for (rec, attack, _), result in zip(batch, results, strict=True):
                    if result is not None:
                        self.from_cache += result[2]
                        name = f"{attack}_{rec.rec_id}"
                        voice_clips += [
                            Clip(self._row(rec, split, "real", "bonafide", rec.rec_id), result[0]),
                            Clip(self._row(rec, split, "fake", attack, name), result[1])]
            pairs = len(voice_clips) // 2
            clips += voice_clips
            print(f"  {split} {voice[0]}/{voice[1]}: {pairs} pairs", flush=True)
            if pairs < want:
                raise SystemExit(f"{split} {voice}: only {pairs} of {want} clip pairs")
        return clips

    def run(self) -> list[Clip]:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(self.workers, initializer=_init_worker) as pool:
            return [c for split in SPLITS for c in self.split_clips(split, pool)]


COLUMNS = ("file", "split", "label", "attack", "source", "speaker", "gender", "lang", "text_id",
           "recording", "generator", "text", "origin", "licence")


def write(clips: list[Clip], folder: Path) -> list[dict[str, str]]:
    """Write the FLAC files and metadata.csv into `folder` (a fresh temporary folder)."""
    import soundfile as sf

    rows = sorted((c.row for c in clips), key=lambda r: r["file"])
    if len({r["file"] for r in rows}) != len(rows):
        raise SystemExit("two clips got the same file name")
    for clip in clips:
        path = folder / clip.row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), clip.audio, 16000, format="FLAC", subtype="PCM_16")
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
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping the vocoded copies between builds (optional)")
    args = parser.parse_args(argv)
    cap_threads()  # before numpy loads (prereqs imports it); the forked workers inherit it
    from demo_corpus import prereqs

    apt, pip = prereqs.missing()
    if apt or pip:
        print("build_demo_corpus: missing prerequisites. Install them with:\n"
              + prereqs.install_hint(apt, pip), file=sys.stderr)
        return 1
    from demo_corpus import card

    start = time.time()
    out = args.out.resolve()
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        print("vocoding and finishing clips ...", flush=True)
        builder = Builder(args.workers, args.cache)
        rows = write(builder.run(), tmp)
        print("measuring cues and writing the data card ...", flush=True)
        card.write_card(tmp, rows, unseen=UNSEEN, unseen_speaker=UNSEEN_SPEAKER,
                        build_seconds=time.time() - start, from_cache=builder.from_cache)
        swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {len(rows)} clips to {out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
