"""Ablations: front end, channel augmentation, and transfer to held-out attacks and speakers.

Usage (from the repository root): python -m bench.ablation [--data data/demo] [--seeds 42 43 44]
                                     [--quick] [--tables front_end model fusion augment transfer]
                                     [--holdouts attack speaker] [--rows NAME ...]
                                     [--set FIELD=VALUE ...]

Every row is the base Config (Config's defaults, or those changed by --set) with the row's
overrides. --rows and --holdouts recompute some rows of a table and keep the others, when
those were measured with the same base Config.

front_end: the default Config with a few front-end fields changed (see SETTINGS), trained
with lcnn.detector.train.train (same epochs, augmentation, early stopping and seed) on the demo
corpus, and evaluated on `testing`: EER overall and on the unseen attack family (the one that
appears in testing only, read from metadata.csv) and ASVspoof 5's minDCF, then under every
robustness condition (lcnn.detector.evaluate.robustness). With several
seeds every table gives mean +- sample standard deviation, the 95 % t-interval over the seeds
in brackets, then each seed: one run says little when two seeds of one setting differ by
several points. Clips/s are the training epochs' median (first epoch excluded) from each
run's history; runs share the CPU with whatever else runs, so compare speeds within one table.

model: the default LCNN against the baseline, with and without level normalisation, measured
as the front_end table is.

fusion: the model table's LCNN and baseline runs of each seed fused into one LLR
(lcnn.detector.calibration.fuse_runs: a logistic regression fitted on validation).

augment: the default with one kind of channel augmentation on (AUGMENT_SETTINGS), each run
also evaluated under every robustness condition (lcnn.detector.evaluate.robustness).

transfer: leave-one-out over the metadata.csv columns in HOLDOUTS. For each value (an attack
family, a speaker) the run trains on a copy of the corpus (symbolic links) without any clip
of that value and is tested on the value's clips against real clips it never saw (see
holdout_tree).

Writes bench/ablation.json and the generated section of bench/ablation.md (`--render` rewrites
that section from the json alone, training nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import (
    ROOT,
    THREADS,
    atomic_write,
    epoch_speeds,
    parse_settings,
    summary,
)
from bench.report import update_readme
from lcnn.config import (
    BEFORE_FIELD,
    NO_CHANNEL_COPIES,
    ORIGINAL_BASELINE,
    RUNTIME_FIELDS,
    Config,
)
from lcnn.dataset import unseen_attacks

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
JSON_PATH = ROOT / "bench" / "ablation.json"  # every table `make ablation` measured
MD_PATH = ROOT / "bench" / "ablation.md"  # their rendering, between prose kept as written
# (name, Config overrides). Every front end gives the LCNN body 64 bands at a 64-sample hop.
# The rows name their front end, so that they stay what they say when the default changes.
SETTINGS = [
    ("default", {}),
    # what learning the filters buys the waveform front end: its 24 sinc filters kept as built
    ("waveform, sinc filters frozen", {"front_end": "wave", "sinc_trainable": False}),
    ("LCNN on a log-mel filter bank", {"front_end": "mel"}),
    ("linear filter bank (LFCC-style)", {"front_end": "linear"}),
    ("learnable sinc, log energies", {"front_end": "sinc", "sinc_log": True}),
    ("learnable sinc, RMS energies", {"front_end": "sinc"}),
    ("fixed sinc filters (mel-spaced), RMS", {"front_end": "sinc", "sinc_trainable": False}),
    ("learnable sinc, RMS, no input normalisation", {"front_end": "sinc", "input_norm": False}),
    ("cross-entropy (focal gamma 0)", {"focal_gamma": 0.0}),
]

# The LCNN against the baseline (the original ReLU CNN on 24 full-rate sinc filters), both on
# the full schedule. Rows of the same name as in the front-end table reuse its runs.
MODEL_SETTINGS = [
    ("default", {}),
    ("baseline (original ReLU CNN, full-rate sinc)", ORIGINAL_BASELINE),
    ("baseline with input normalisation", {"model": "baseline"}),
    ("LCNN on a log-mel filter bank", {"front_end": "mel"}),
]
# Score fusion of two settings of MODEL_SETTINGS, by name: (name, (first, second)).
FUSIONS = [
    ("default + baseline with input normalisation", ("default",
                                                     "baseline with input normalisation")),
    ("default + baseline (original)", ("default",
                                       "baseline (original ReLU CNN, full-rate sinc)")),
]

# Channel augmentation (lcnn.channels / lcnn.augment) one kind at a time, band masking (a
# SpecAugment-style mask inside the model), then kinds together. Each row names every kind it
# trains on and switches the others off (copies()), so that it stays what it says whatever the
# default trains on.
def copies(**kinds) -> dict:
    """Config overrides that train on exactly these channel kinds: copies(augment_codec=True)."""
    return {**NO_CHANNEL_COPIES, **kinds}


AUGMENT_SETTINGS = [
    ("default", {}),
    ("no channel copies", copies()),
    ("codec copies", copies(augment_codec=True)),
    ("reverb copies", copies(augment_reverb=True)),
    ("telephone copies", copies(augment_telephone=True)),
    ("RawBoost 1+2 copies", copies(augment_rawboost="12")),
    # RawBoost's impulsive noise without algorithm 1's filters
    ("RawBoost 2 copies", copies(augment_rawboost="2")),
    ("band masking (up to 8 of 64 bands)", copies(augment_band_mask=8)),
    ("codec + reverb + RawBoost 1+2", copies(augment_codec=True, augment_reverb=True,
                                            augment_rawboost="12")),
    # the channels that cost the waveform LCNN most: AMR-NB (a codec), the room, the phone band
    ("codec + reverb + telephone copies", copies(augment_codec=True, augment_reverb=True,
                                                 augment_telephone=True)),
    # RawBoost's stationary noise (algorithm 3, coloured, 10-40 dB SNR): noise at 10 dB is the
    # condition no other kind imitates
    ("RawBoost 3 copies", copies(augment_rawboost="3")),
    ("codec + reverb + telephone + RawBoost 3 copies", copies(
        augment_codec=True, augment_reverb=True, augment_telephone=True, augment_rawboost="3")),
    # With K copies a training row is a copy K/(K+1) of the time (4/5 by default); one copy
    # makes it half.
    ("codec, 1 copy (half the rows clean)", copies(augment_codec=True, augment_variants=1)),
    ("RawBoost 1+2, 1 copy (half the rows clean)", copies(augment_rawboost="12",
                                                         augment_variants=1)),
    # the default's RawBoost copies plus the two kinds that fixed their own channels without a
    # measured cost on clean clips (AMR-NB, the room), two copies of each kind
    ("codec + reverb + RawBoost 1+2, 6 copies", copies(
        augment_codec=True, augment_reverb=True, augment_rawboost="12", augment_variants=6)),
    # the same without codec copies (which of the two kinds costs HiFi-GAN transfer?)
    ("reverb + RawBoost 1+2 copies", copies(augment_reverb=True, augment_rawboost="12")),
    # the default with RawBoost's stationary noise after 1+2 in its RawBoost copies (the
    # RawBoost paper's series 1+2+3): noise at 10 dB is the one condition room copies made worse
    ("reverb + RawBoost 1+2+3 copies", copies(augment_reverb=True, augment_rawboost="123")),
    # 1+2+3 in every RawBoost copy cost transfer to held-out HiFi-GAN: here one of the two
    # RawBoost copies goes through algorithm 3 alone and the other through 1+2, as now
    ("reverb + RawBoost 1+2 and 3 copies", copies(augment_reverb=True,
                                                  augment_rawboost="12,3")),
    # the default plus codec copies, two of each kind: what fixing AMR-NB costs elsewhere
    ("codec + reverb + RawBoost 1+2+3, 6 copies", copies(
        augment_codec=True, augment_reverb=True, augment_rawboost="123", augment_variants=6)),
    # the same with phone-line copies instead: the other channel that removes the band above 4 kHz
    ("telephone + reverb + RawBoost 1+2+3, 6 copies", copies(
        augment_telephone=True, augment_reverb=True, augment_rawboost="123", augment_variants=6)),
]
# Leave-one-out transfer: (metadata.csv column, which clips a held-out value covers).
HOLDOUTS = [("attack", "fake"), ("speaker", "both")]
HOLDOUT_COLUMNS = {column for column, _ in HOLDOUTS}


def front_end(cfg: Config) -> dict:
    """The front-end fields of a Config, plus the frame rate the LCNN body (or the baseline's
    convolutions) sees."""
    if cfg.model == "baseline":
        from lcnn.detector.model import BASELINE_SINC

        filters, kernel = BASELINE_SINC
        return {"kind": "sinc", "filters": filters, "kernel": kernel, "stride": 1, "pool": 1,
                "frames_per_s": cfg.sample_rate}
    if cfg.front_end == "wave":
        from lcnn.detector.model import WAVE_POOLS

        return {"kind": "wave", "filters": cfg.sinc_filters,
                "frames_per_s": cfg.sample_rate / math.prod(WAVE_POOLS)}
    hop = cfg.sinc_stride * cfg.sinc_pool
    return {"kind": cfg.front_end, "filters": cfg.sinc_filters, "kernel": cfg.sinc_kernel_size,
            "stride": cfg.sinc_stride, "pool": cfg.sinc_pool,
            "frames_per_s": cfg.sample_rate / hop}


def describe_front_end(fe: dict) -> str:
    """'sinc 64 x 129, stride 16 x pool 4' or 'mel 64 bands', for a table cell."""
    if fe.get("kind") == "wave":
        return f"waveform: full-rate sinc, 3 conv + max-pool, {fe['filters']} channels"
    if fe.get("kind", "sinc") == "sinc":
        return f"sinc {fe['filters']} x {fe['kernel']}, stride {fe['stride']} x pool {fe['pool']}"
    return f"{fe['kind']} {fe['filters']} bands"


def train_or_reuse(data_path: Path, run_dir: Path, cfg: Config) -> dict:
    """lcnn.detector.train.train, keeping a run of the same settings in run_dir: a finished
    one is reused and an interrupted one resumed, so a table can be extended or re-rendered
    without retraining; a run with other settings there is replaced. Raises DivergedError."""
    from lcnn.detector.train import train
    from lcnn.errors import DivergedError, LcnnError

    try:
        return train(data_path, run_dir, cfg, verbose=0)
    except DivergedError:  # resuming would retry the same steps: start over, once
        pass
    except LcnnError:  # run_dir holds a run with other settings
        pass
    return train(data_path, run_dir, cfg, overwrite=True, verbose=0)


def diverged(seed: int) -> dict:
    """A table row's entry for a seed whose training diverged (NaN outputs)."""
    return {"seed": seed, "diverged": True}


def finished(seeds: list[dict]) -> list[dict]:
    """The seeds of a row whose training did not diverge."""
    return [r for r in seeds if not r.get("diverged")]


def row_name(row: dict) -> str:
    """The setting's name, saying how many of its seeds diverged."""
    bad = len(row["runs"]) - len(finished(row["runs"]))
    return row["name"] + (f" ({bad} of {len(row['runs'])} seeds diverged)" if bad else "")


def measure_setting(data_path: Path, run_dir: Path, cfg: Config, unseen: list[str]) -> dict:
    """Train and evaluate one setting: its speed, size, EERs, and the testing EER under every
    robustness condition."""
    from lcnn.detector import data
    from lcnn.detector.evaluate import evaluate
    from lcnn.detector.model import build_model, model_flops
    from lcnn.errors import DivergedError

    started = time.perf_counter()
    try:
        state = train_or_reuse(data_path, run_dir, cfg)
    except DivergedError:
        return diverged(cfg.seed)
    result = evaluate(run_dir, data_path, "testing")
    clips = len(data.load_split(data_path, "training", cfg, progress=False))
    model = build_model(cfg)
    by_attack = result.get("eer_by_attack", {})
    return {"seed": cfg.seed, "params": model.count_params(),
            "gflop_per_clip": model_flops(model, cfg) / 1e9,
            "train_clips_per_s": summary(epoch_speeds(run_dir, clips)),
            "epochs": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "val_eer": state["best_eer"], "test_eer": result["eer"],
            "test_eer_ci95": result["eer_ci95"], "test_min_dcf": result["min_dcf"],
            "unseen_eer": {a: by_attack[a] for a in unseen if a in by_attack},
            "eer_by_attack": by_attack,
            "condition_eer": {name: r["eer"]
                              for name, r in condition_metrics(run_dir, data_path).items()},
            "seconds": time.perf_counter() - started}


def unseen_means(seeds: list[dict]) -> list[float]:
    """Each seed's EER on the unseen attacks (their mean, when several), for seeds that have one."""
    return [float(np.mean(list(r["unseen_eer"].values()))) for r in seeds if r["unseen_eer"]]


def mean_sd(values: list[float], scale: float = 100, digits: int = 1) -> str:
    """'mean +- sd [95 % t-interval] (each, ...)' over seeds (sample sd, ddof=1); one value
    as it is, '-' for none."""
    from scipy import stats

    values = [scale * v for v in values]
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values))
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return (f"{mean:.{digits}f} ± {sd:.{digits}f} [{mean - half:.{digits}f}, "
            f"{mean + half:.{digits}f}] ({each})")


def table(rows: list[dict], unseen: list[str]) -> str:
    """Markdown: one line per setting, metrics as mean +- sd over seeds (each seed in brackets)."""
    pct = mean_sd
    lines = ["| setting | front end | frames/s | params | "
             "GFLOP/clip | train clips/s | val EER % | testing EER % | testing minDCF | "
             f"unseen ({', '.join(unseen) or '-'}) EER % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        fe, seeds = row["front_end"], finished(row["runs"])
        if not seeds:
            lines.append(f"| {row_name(row)} | {describe_front_end(fe)} |" + " - |" * 8)
            continue
        speed = np.median([r["train_clips_per_s"]["median"] for r in seeds])
        unseen_eers = unseen_means(seeds)
        lines.append(
            f"| {row_name(row)} | {describe_front_end(fe)} | {fe['frames_per_s']:g} | "
            f"{seeds[0]['params']:,} | "
            f"{seeds[0]['gflop_per_clip']:.3f} | {speed:.0f} | "
            f"{pct([r['val_eer'] for r in seeds])} | {pct([r['test_eer'] for r in seeds])} | "
            f"{mean_sd([r['test_min_dcf'] for r in seeds], 1, 3)} | "
            f"{pct(unseen_eers) if unseen_eers else '-'} |")
    return "\n".join(lines)


def condition_metrics(run_dir: Path, data_path: Path) -> dict[str, dict]:
    """lcnn.detector.evaluate.robustness of a run on testing, read back from the run's
    robustness-testing.json when that was written after its best model and covers every
    condition (the channels are seeded, so the numbers are the same): a run shared by two
    tables is put through the channels once."""
    from lcnn import channels
    from lcnn.detector import runs
    from lcnn.detector.evaluate import robustness

    saved = run_dir / "robustness-testing.json"
    if saved.exists() and saved.stat().st_mtime >= (run_dir / runs.BEST).stat().st_mtime:
        table = runs.read_json(saved)
        if set(table) == set(channels.CONDITIONS):
            return table
    return robustness(run_dir, data_path)


def augment_table(rows: list[dict], unseen: list[str], first: str = "channel augmentation"
                  ) -> str:
    """Markdown: testing, unseen-attack, mean and worst condition EER per setting."""
    lines = [f"| {first} | testing EER % | unseen ({', '.join(unseen) or '-'}) "
             "EER % | mean over conditions EER % | worst condition EER % |",
             "|---|---|---|---|---|"]
    for row in rows:
        seeds = finished(row["runs"])
        if not seeds:
            lines.append(f"| {row_name(row)} |" + " - |" * 4)
            continue
        unseen_eers = unseen_means(seeds)
        worst = [max(r["condition_eer"].values()) for r in seeds]
        worst_name = max(seeds[0]["condition_eer"], key=seeds[0]["condition_eer"].get)
        lines.append(
            f"| {row_name(row)} | {mean_sd([r['test_eer'] for r in seeds])} | "
            f"{mean_sd(unseen_eers)} | "
            f"{mean_sd([np.mean(list(r['condition_eer'].values())) for r in seeds])} | "
            f"{mean_sd(worst)} ({worst_name}, seed {seeds[0]['seed']}) |")
    return "\n".join(lines)


def model_table(rows: list[dict], unseen: list[str]) -> str:
    """The front-end columns, then the same rows through every channel when every run has
    been through them (the front-end tables stored before 2026-12-03 have not)."""
    channels = augment_table(rows, unseen, first="model") if all(
        "condition_eer" in r for row in rows for r in finished(row["runs"])) else ""
    return table(rows, unseen) + (f"\n\nThrough the channels of `evaluate --condition all`:"
                                  f"\n\n{channels}" if channels else "")


def holdout_values(data_path: Path, column: str, covers: str) -> list[str]:
    """Values of a metadata.csv column to hold out: those of fake clips (covers="fake"), or
    those with both real and fake clips (covers="both")."""
    from lcnn.dataset import read_metadata

    by_class: dict[str, set] = {"real": set(), "fake": set()}
    for rel, row in read_metadata(data_path).items():
        if column in row:
            by_class[Path(rel).parts[1].lower()].add(row[column])
    values = by_class["fake"] if covers == "fake" else by_class["fake"] & by_class["real"]
    return sorted(values)


def holdout_tree(data_path: Path, column: str, value: str, covers: str, dest: Path) -> dict:
    """A copy of the corpus as symbolic links that holds out the clips whose `column` is `value`.

    training/ and validation/ keep every other clip. testing/ holds the held-out clips of
    all splits (none was trained on) and, for covers="fake" (an attack family), the
    testing split's real clips; for covers="both" (a speaker), the held-out real clips are
    the real side. Returns the testing counts.
    """
    import shutil

    from lcnn.dataset import read_metadata

    if dest.exists():
        shutil.rmtree(dest)
    counts = {"test_real": 0, "test_fake": 0}
    for rel, row in read_metadata(data_path).items():
        split, cls = Path(rel).parts[0], Path(rel).parts[1].lower()
        if row.get(column) == value:
            target = dest / "testing" / cls / f"{split}-{Path(rel).name}"
        elif split != "testing" or (covers == "fake" and cls == "real"):
            target = dest / rel
        else:
            continue
        if target.is_relative_to(dest / "testing"):
            counts[f"test_{cls}"] += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to((data_path / rel).resolve())
    return counts


def holdout_name(column: str, value: str) -> str:
    """A held-out value's run-folder name, which --rows takes: attack-hifigan-universal."""
    return f"{column}-{''.join(c if c.isalnum() else '-' for c in value)}"


def transfer_rows(data_path: Path, out_dir: Path, base: Config, seeds: list[int],
                  column: str, covers: str, only: list[str]) -> list[dict]:
    """Leave-one-out over the values of a metadata column (those named in `only`, if any):
    train without, test on it."""
    from lcnn.detector.evaluate import evaluate
    from lcnn.errors import DivergedError

    rows = []
    for value in holdout_values(data_path, column, covers):
        name = holdout_name(column, value)
        if only and name not in only:
            continue
        tree = out_dir / "trees" / name
        counts = holdout_tree(data_path, column, value, covers, tree)
        if not (counts["test_real"] and counts["test_fake"]):
            continue  # nothing to compute an EER on
        runs_ = []
        for seed in seeds:
            print(f"without {column} {value}, seed {seed} ...", flush=True)
            run_dir = out_dir / f"without-{name}-{seed}"
            try:
                state = train_or_reuse(tree, run_dir, dataclasses.replace(base, seed=seed))
            except DivergedError:
                runs_.append(diverged(seed))
                continue
            runs_.append({"seed": seed, "val_eer": state["best_eer"],
                          "test_eer": evaluate(run_dir, tree, "testing")["eer"]})
        rows.append({"column": column, "value": value, **counts, "runs": runs_})
    return rows


def transfer_table(rows: list[dict]) -> str:
    """Markdown: one line per held-out value, then the mean per column that has several."""
    lines = ["| held out | testing clips (real / fake) | EER % on the held-out clips |",
             "|---|---|---|"]
    for row in rows:
        bad = len(row["runs"]) - len(finished(row["runs"]))
        lines.append(f"| {row['column']} {row['value']} | {row['test_real']} / "
                     f"{row['test_fake']} | "
                     f"{mean_sd([r['test_eer'] for r in finished(row['runs'])])}"
                     f"{f' ({bad} diverged)' if bad else ''} |")
    for column in dict.fromkeys(r["column"] for r in rows):
        held_out = [row for row in rows if row["column"] == column]
        if len(held_out) < 2:
            continue
        by_seed: dict[int, list[float]] = {}
        for r in (r for row in held_out for r in finished(row["runs"])):
            by_seed.setdefault(r["seed"], []).append(r["test_eer"])
        # only seeds that every row was run with: a row may have been extended with more
        in_all = set.intersection(*({r["seed"] for r in row["runs"]} for row in held_out))
        per_seed = [float(np.mean(v)) for seed, v in by_seed.items() if seed in in_all]
        more = " (seeds that every row has)" if len(per_seed) < len(by_seed) else ""
        lines.append(f"| **mean over {len(held_out)} {column} values**{more} | | "
                     f"{mean_sd(per_seed)} |")
    return "\n".join(lines)


def slug(name: str) -> str:
    """A setting's run-folder name: 'baseline (original ...)' -> 'baseline'."""
    return name.split(" (")[0].replace(" ", "-").replace(",", "").replace("+", "")


def scored_run(data_path: Path, run_dir: Path, cfg: Config) -> bool:
    """A finished run with testing scores in run_dir (the model table's, or trained and
    evaluated now); False when its training diverged."""
    from lcnn.detector.evaluate import evaluate
    from lcnn.errors import DivergedError

    try:
        train_or_reuse(data_path, run_dir, cfg)
    except DivergedError:
        return False
    if not (run_dir / "scores-testing.tsv").exists():
        evaluate(run_dir, data_path, "testing")
    return True


def fusion_rows(data_path: Path, out_dir: Path, base: Config, seeds: list[int],
                unseen: list[str]) -> list[dict]:
    """Each pair of FUSIONS fused seed by seed (lcnn.detector.calibration.fuse_runs: fitted on
    validation, scored on testing), from the model table's runs (trained first if missing)."""
    import pandas as pd

    from lcnn import metrics
    from lcnn.detector.calibration import fuse_runs

    settings = dict(MODEL_SETTINGS)
    rows = []
    for name, pair in FUSIONS:
        runs_ = []
        for seed in seeds:
            dirs = [out_dir / f"{slug(setting)}-{seed}" for setting in pair]
            cfgs = [dataclasses.replace(base, **settings[setting], seed=seed) for setting in pair]
            if not all(scored_run(data_path, d, c) for d, c in zip(dirs, cfgs, strict=True)):
                runs_.append(diverged(seed))
                continue
            fusion, files, labels, llr = fuse_runs(dirs)
            table = pd.read_csv(dirs[0] / "scores-testing.tsv", sep="\t").set_index("file")
            by = metrics.eer_by_group(labels, -llr, table.loc[files, "attack"].to_numpy())
            runs_.append({"seed": seed, "weights": fusion.weights, "b": fusion.b,
                          "test_eer": metrics.eer(labels, -llr),
                          "test_min_dcf": metrics.min_dcf_value(labels, -llr),
                          "cllr": metrics.cllr(labels, llr),
                          "unseen_eer": {a: by[a] for a in unseen if a in by},
                          "eer_by_attack": by})
        rows.append({"name": name, "runs": runs_})
    return rows


def fusion_table(rows: list[dict], unseen: list[str]) -> str:
    """Markdown: the fused systems' testing metrics over seeds, and the fusion weights."""
    lines = ["| fused systems | testing EER % | testing minDCF | Cllr (bits) | "
             f"unseen ({', '.join(unseen) or '-'}) EER % | weights (first seed) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        seeds = finished(row["runs"])
        if not seeds:
            lines.append(f"| {row_name(row)} |" + " - |" * 5)
            continue
        unseen_eers = unseen_means(seeds)
        weights = ", ".join(f"{w:.2f}" for w in seeds[0]["weights"])
        lines.append(
            f"| {row_name(row)} | {mean_sd([r['test_eer'] for r in seeds])} | "
            f"{mean_sd([r['test_min_dcf'] for r in seeds], 1, 3)} | "
            f"{mean_sd([r['cllr'] for r in seeds], 1, 3)} | {mean_sd(unseen_eers)} | "
            f"{weights}; b {seeds[0]['b']:.2f} |")
    return "\n".join(lines)


def picked(settings, rows: list[str]):
    """The (name, overrides) settings whose run-folder name (slug) is in rows; all if empty."""
    return [s for s in settings if not rows or slug(s[0]) in rows]


def settings_rows(settings, data_path: Path, out_dir: Path, base: Config,
                  seeds: list[int], unseen: list[str]) -> list[dict]:
    """Train and measure every (name, overrides) setting once per seed."""
    rows = []
    for name, overrides in settings:
        cfg = dataclasses.replace(base, **overrides)
        runs_ = []
        for seed in seeds:
            print(f"{name}, seed {seed} ({cfg.epochs} epochs) ...", flush=True)
            runs_.append(measure_setting(data_path, out_dir / f"{slug(name)}-{seed}",
                                         dataclasses.replace(cfg, seed=seed), unseen))
        rows.append({"name": name, "overrides": overrides, "front_end": front_end(cfg),
                     "runs": runs_})
    return rows


TABLES = {  # name: (render(rows, unseen), heading)
    "front_end": (model_table, "Front end, level and loss"),
    "model": (model_table, "LCNN and baseline"),
    "fusion": (fusion_table, "Score fusion of the LCNN and the baseline"),
    "augment": (augment_table, "Channel augmentation"),
    "transfer": (lambda rows, _: transfer_table(rows), "Transfer to held-out attacks and speakers"),
}


def testing_note(data_path: Path) -> str:
    """What one clip is worth in the testing split, and how the tables summarise seeds."""
    from lcnn.dataset import open_source

    labels = open_source(data_path).listing("testing").labels
    real = int((labels == 0).sum())
    return (f"Testing: {len(labels)} clips ({real} real), so one real clip moves an EER by "
            f"about {100 / real:.1f} points. Metrics: mean ± sample standard deviation over "
            "the seeds, the 95 % t-interval over the seeds in brackets, then each seed.")


def render(stored: dict) -> str:
    """Markdown for every table in bench/ablation.json, each under the command that made it."""
    parts = []
    def order(key: str) -> tuple:  # TABLES' order; the default's table before others
        return list(TABLES).index(table_of(key)), key != table_of(key), key

    for key, t in sorted(stored.items(), key=lambda kv: order(kv[0])):
        render_table, heading = TABLES[table_of(key)]
        if key != table_of(key):
            heading += f", {key.removeprefix(table_of(key)).strip()}"
        parts.append(f"### {heading}\n\n`{t['command']}`, {t['date']}, \"default\" = "
                     f"{base_settings(t['config'])}, {t['epochs']} epochs "
                     f"(early stopping patience {t['patience']}), {seeds_text(t)}, "
                     f"{t['threads']} threads, "
                     f"{t['seconds']:.0f} s.\n\n{render_table(t['rows'], t['unseen'])}")
    return "\n\n".join(parts)


def seeds_text(table: dict) -> str:
    """The seeds behind a stored table: one list if every row has it, else each list and its
    rows (a row can be extended with more seeds: --rows NAME --seeds ...)."""
    lists = Counter(tuple(r["seed"] for r in row["runs"]) for row in table["rows"])
    if len(lists) <= 1:
        return "seeds " + ", ".join(map(str, next(iter(lists), table["seeds"])))
    return "seeds " + "; ".join(f"{', '.join(map(str, seeds))} ({n} row{'s' * (n > 1)})"
                                for seeds, n in lists.most_common())


def setting_text(value) -> str:
    """A Config value as --set spells it (lcnn.config.parse_setting reads it back); an empty
    text as "" so that a header does not end a setting in a bare "="."""
    return value if isinstance(value, str) and value else json.dumps(value)


def differing(config: dict) -> list[str]:
    """A stored base Config's fields that differ from today's defaults, as FIELD=VALUE (as
    --set takes them; threads, a runtime option, left out)."""
    today = dataclasses.asdict(Config(threads=THREADS))
    saved = {**BEFORE_FIELD, **config}  # fields added since the table was stored
    return [f"{k}={setting_text(saved.get(k))}" for k in sorted(today)
            if k not in RUNTIME_FIELDS and saved.get(k) != today[k]]


def base_settings(config: dict) -> str:
    """A stored table's base Config, as what differs from today's defaults."""
    differ = differing(config)
    return (f"today's defaults except {', '.join(differ)}" if differ
            else "today's defaults (lcnn.config.Config)")


def table_key(name: str, config: dict) -> str:
    """Where ablation.json keeps table `name` made on base settings `config`: a table on other
    base settings than today's defaults is stored beside the default's, not over it, and one
    made when the defaults were others is the default's no longer."""
    differ = differing(config)
    return f"{name} with {', '.join(differ)}" if differ else name


def runs_folder(runs_dir: Path, config: dict) -> Path:
    """Where the runs of tables on base settings `config` go: other settings than today's
    defaults get a folder of their own, so that their runs do not replace the default's of the
    same row (which the next table reuses)."""
    differ = differing(config)
    if not differ:
        return runs_dir
    return runs_dir / ("with-" + "-".join(re.sub(r"[^A-Za-z0-9_.=]+", "_", s) for s in differ))


def table_of(key: str) -> str:
    """The table (a TABLES name) that an ablation.json key holds."""
    return key.split(" with ")[0]


def stored_tables(json_path: Path) -> dict:
    """The tables in ablation.json (none if it does not exist), without the old single-run
    layout's keys, each under the key of its base settings against today's defaults."""
    stored = json.loads(json_path.read_text()) if json_path.exists() else {}
    return {table_key(table_of(k), v["config"]): v for k, v in stored.items()
            if table_of(k) in TABLES}


# The tables made of (name, overrides) settings, each run measured by measure_setting
SETTINGS_TABLES = {"front_end": SETTINGS, "model": MODEL_SETTINGS, "augment": AUGMENT_SETTINGS}


def row_key(name: str):
    """What identifies a row of table `name`, and how such rows are ordered."""
    if name in SETTINGS_TABLES:
        order = {n: i for i, (n, _) in enumerate(SETTINGS_TABLES[name])}
        return (lambda row: row["name"]), (lambda row: order.get(row["name"], len(order)))
    columns = {c: i for i, (c, _) in enumerate(HOLDOUTS)}
    return ((lambda row: (row.get("column"), row.get("value"))),
            (lambda row: (columns.get(row.get("column"), len(columns)), row.get("value") or "")))


def merged_rows(old: dict, rows: list[dict], name: str, command: str) -> tuple[list, str]:
    """A stored table's rows updated with `rows`, in the table's order, and the command that
    names both runs. A run is one seed of one row (row_key): a seed run again replaces the
    stored one, the row's other stored seeds stay, so `--rows NAME --seeds 47 48` adds seeds."""
    key, order = row_key(name)
    stored = {key(r): r for r in old["rows"]}
    fresh = {key(r) for r in rows}
    merged = [r for r in old["rows"] if key(r) not in fresh]
    for row in rows:
        seeds = {run["seed"] for run in row["runs"]}
        kept = [run for run in stored.get(key(row), {}).get("runs", []) if run["seed"] not in seeds]
        merged.append({**row, "runs": sorted(kept + row["runs"], key=lambda run: run["seed"])})
    if merged == rows:
        return rows, command
    return sorted(merged, key=order), f"{old['command']} ({old['date']}), then {command}"


def partial(name: str, args) -> bool:
    """Whether this command recomputes only some rows of table `name` (--rows, --holdouts)."""
    if name in SETTINGS_TABLES:
        return bool(args.rows)
    return name == "transfer" and (bool(transfer_picks(args))
                                   or set(args.holdouts) != HOLDOUT_COLUMNS)


def transfer_picks(args) -> list[str]:
    """The held-out values among --rows (e.g. attack-hifigan-universal)."""
    return [r for r in args.rows if r.split("-")[0] in HOLDOUT_COLUMNS]


def run_table(name: str, args, base: Config, out_dir: Path, unseen: list[str]) -> list[dict]:
    """Train and evaluate every row of one table."""
    if name in SETTINGS_TABLES:
        return settings_rows(picked(SETTINGS_TABLES[name], args.rows), args.data, out_dir, base,
                             args.seeds, unseen)
    if name == "fusion":
        return fusion_rows(args.data, out_dir, base, args.seeds, unseen)
    return [row for column, covers in HOLDOUTS if column in args.holdouts
            for row in transfer_rows(args.data, out_dir, base, args.seeds, column, covers,
                                     transfer_picks(args))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                        help="one training per seed and setting; the table gives mean +- sd")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES),
                        help="tables to (re)compute; the others in bench/ablation.json stay")
    parser.add_argument("--holdouts", nargs="+", default=[c for c, _ in HOLDOUTS],
                        choices=[c for c, _ in HOLDOUTS],
                        help="the transfer table's leave-one-out columns (default: all); "
                             "the stored rows of the others stay")
    parser.add_argument("--rows", nargs="+", default=[], metavar="NAME",
                        help="only these rows of the front_end, model, augment and transfer "
                             "tables, by run-folder name (e.g. default "
                             "codec--reverb--telephone-copies attack-hifigan-universal); they "
                             "replace the stored rows of the same name, the others stay")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="base settings other than Config's defaults, for every row (e.g. "
                             "a candidate default: --set augment_codec=true)")
    parser.add_argument("--quick", action="store_true", help="2 epochs; checks the script only")
    parser.add_argument("--render", action="store_true",
                        help="train nothing: rewrite bench/ablation.md's tables from "
                             "bench/ablation.json, e.g. after the defaults changed (each table's "
                             "header names the settings it differs from them by)")
    args = parser.parse_args()
    if args.render:
        write_markdown(JSON_PATH, args.data)
        return
    import tensorflow as tf  # below --render, which needs none

    from lcnn.runtime import set_threads

    known = {slug(name) for t in args.tables for name, _ in SETTINGS_TABLES.get(t, [])}
    if "transfer" in args.tables:
        known |= {holdout_name(column, value) for column, covers in HOLDOUTS
                  if column in args.holdouts
                  for value in holdout_values(args.data, column, covers)}
    unknown = sorted(set(args.rows) - known)
    if unknown:
        parser.error(f"--rows: {', '.join(unknown)} not in the tables {', '.join(args.tables)}; "
                     f"valid: {', '.join(sorted(known))}")
    set_threads(THREADS)
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")

    base = Config(threads=THREADS, **parse_settings(args.set))
    if args.quick:
        base = dataclasses.replace(base, epochs=2)
    runs_dir = ROOT / "runs" / ("ablation-quick" if args.quick else "ablation")
    json_path = runs_dir / "ablation.json" if args.quick else JSON_PATH
    config = dataclasses.asdict(base)
    out_dir = runs_folder(runs_dir, config)
    unseen = unseen_attacks(args.data)
    for name in args.tables:
        started = time.perf_counter()
        rows = run_table(name, args, base, out_dir, unseen)
        # read again just before writing: another ablation may have stored a table meanwhile
        stored = stored_tables(json_path)
        command = " ".join(["python -m bench.ablation", *sys.argv[1:]])
        key = table_key(name, config)
        # rows measured with the same base settings are kept; others would be a different default
        if partial(name, args) and stored.get(key, {}).get("config") == config:
            rows, command = merged_rows(stored[key], rows, name, command)
        stored[key] = {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "tensorflow": tf.__version__, "threads": THREADS, "data": str(args.data),
            "config": config, "epochs": base.epochs,
            "patience": base.patience, "seeds": args.seeds, "unseen": unseen,
            "seconds": time.perf_counter() - started, "rows": rows}
        atomic_write(json_path, json.dumps(stored, indent=2) + "\n")  # each table as it ends
    if args.quick:
        print(render(stored_tables(json_path)))
    else:
        write_markdown(json_path, args.data)


def write_markdown(json_path: Path, data_path: Path,
                   md_path: Path = MD_PATH) -> None:
    """Print the tables stored in `json_path` and write them into `md_path`'s results block."""
    text = render(stored_tables(json_path))
    print(text)
    update_readme(md_path, text, testing_note(data_path))


if __name__ == "__main__":
    main()
