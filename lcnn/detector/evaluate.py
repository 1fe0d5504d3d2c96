"""Evaluate a trained run on a split: scores, metrics with confidence intervals, breakdowns by
attack, speaker, language... when the dataset has such metadata, robustness under channel
conditions, and an ASVspoof score file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lcnn import channels
from lcnn.dataset import data_spec, open_source
from lcnn.detector import calibration, runs
from lcnn.errors import LcnnError, RunError
from lcnn.io import atomic_write_text
from lcnn.metrics import breakdown, eer_by_group, raw_llr, summarize

log = logging.getLogger(__name__)
GROUP_COLUMNS = ("text_id", "recording")  # what the bootstrap resamples, first found


def bootstrap_groups(columns: dict[str, np.ndarray]) -> tuple[np.ndarray | None, str]:
    """What the bootstrap resamples: the prompt (text_id) of each clip when known, since a real
    clip and the fakes made from its text are not independent; else the recording; else clips."""
    for name in GROUP_COLUMNS:
        if name in columns:
            return columns[name], name
    return None, "clip"


def data_tag(run_dir: Path, data: str | Path | dict | None) -> str:
    """"" when `data` (as evaluate takes it) is the dataset the run was trained on, else
    "-<name>-<hash of its absolute paths>". What evaluate writes about another dataset then
    sits beside the run's own files instead of over them: training's scores-validation.tsv
    is what the run's calibration is fitted on, and a second dataset's testing scores must not
    replace the first's."""
    if data is None:
        return ""
    spec = data_spec(data)
    try:
        if spec == runs.data_spec(run_dir):
            return ""
    except RunError:
        pass  # no dataset saved: anything named is another one
    path = spec.get("path") or next(iter(spec["protocols"].values()))
    name = re.sub(r"[^A-Za-z0-9_.]+", "-", Path(path).stem if spec["format"] != "folders"
                  else Path(path).name).strip("-.") or "data"
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:6]
    return f"-{name}-{digest}"


ASVSPOOF_HEADER = "filename\tattack\tcm-label\tcm-score"


def write_asvspoof_scores(path: str | Path, names: list[str], labels: np.ndarray,
                          llrs: np.ndarray, attacks: np.ndarray | None = None) -> None:
    """An ASVspoof-convention score file, tab-separated, atomically: filename, attack,
    cm-label (bonafide/spoof), cm-score, where cm-score is an LLR, bona fide vs spoof, so
    HIGHER = MORE BONA FIDE (the opposite of this project's raw score).

    ASVspoof 5's evaluation package reads scores (filename, cm-score) and keys (filename,
    cm-label) from two files: `cut -f1,4 F > scores.tsv; cut -f1,3 F > keys.tsv`.
    """
    lines = [ASVSPOOF_HEADER]
    for i, name in enumerate(names):
        key = "spoof" if labels[i] == 1 else "bonafide"
        attack = str(attacks[i]) if attacks is not None else ("-" if labels[i] else "bonafide")
        lines.append(f"{name}\t{attack}\t{key}\t{float(llrs[i]):.6f}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def evaluate(run_dir: str | Path, data_path: str | Path | dict | None = None,
             split: str = "testing",
             threshold: float | None = None, skip_bad: bool = False,
             cache_dir: str | Path | None = None, by: tuple[str, ...] = (),
             score_file: str | Path | None = None, n_boot: int = 1000,
             condition: str = "clean", windows: bool = False, seed: int = 0,
             best: runs.BestModel | None = None) -> dict:
    """Score every clip of a split with the run's best model and summarise.

    data_path: anything lcnn.dataset.open_source takes; default the run's training dataset.
    threshold (raw score) defaults to the one chosen on validation (calibration.json).
    `condition` passes every clip through one channel of lcnn.channels.CONDITIONS first
    (seeded by `seed`); `windows` scores whole files as `predict` does (see window_scores)
    instead of one centre clip each. Writes <run_dir>/scores-<split><tag>.tsv (raw score,
    calibrated LLR and probability of fake) and metrics-<split><tag>.json (tag: data_tag for
    a dataset other than the run's, then "-<condition>" unless clean, "-windows" with
    windows), and `score_file` in ASVspoof's convention when given. Returns the metrics dict
    (see lcnn.metrics.summarize) plus `eer_by_attack` when the dataset names attacks, `by`
    (EER with CI per value of each metadata column named in `by`) and `saved` (the files
    written). `best`: the run's model if already loaded (runs.load_best). Nothing is saved in
    a run folder that `train --overwrite` started over while this ran.
    """
    from lcnn.detector import data
    from lcnn.detector.predict import predict_scores
    from lcnn.runtime import set_threads

    channel = channels.condition(condition)  # an unknown name fails before any loading
    run_dir = Path(run_dir)
    if score_file is not None:
        runs.check_output(score_file, "--score_file", f"{ASVSPOOF_HEADER}\n".encode())
    cfg = runs.load_config(run_dir)
    source = open_source(runs.data_spec(run_dir) if data_path is None else data_path)
    listing = source.listing(split)  # files, labels, metadata columns and their root
    set_threads(cfg.threads)  # after the checks above: a wrong dataset fails at once
    known = list(listing.meta)
    missing = [c for c in by if c not in known]
    if missing:
        raise LcnnError(f"evaluate --by: {', '.join(missing)} not among {source}'s metadata "
                        f"columns ({', '.join(known) or 'none'})")
    best = runs.load_best(run_dir) if best is None else best
    model = best.model
    cal, note = calibration.for_run(run_dir)
    clips = data.load_split(source, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad)
    data.check_both_classes(clips, f"{source} ({split})")
    if windows:
        scores = window_scores(model, clips.files, cfg, channel, seed)
    else:
        if channel is not None:
            clips = with_channel(clips, cfg, condition, channel, seed)
        scores = predict_scores(model, data.make_dataset(clips, cfg, training=False))
    columns = clips.meta
    groups, group_name = bootstrap_groups(columns)
    threshold, threshold_source = calibration.decision_threshold(cal, threshold)
    llrs = cal.llr(scores) if cal is not None else None
    result = summarize(clips.labels, scores, threshold, llrs, groups, n_boot)
    result.update(split=split, condition=condition, windows=windows, best_epoch=best.epoch,
                  threshold_source=threshold_source, calibration_note=note or None)
    result["bootstrap"]["by"] = group_name
    result["calibration"] = None if cal is None else {
        "a": cal.a, "b": cal.b, "fitted_on": cal.fitted_on, "prior_fake": cal.prior_fake,
        "llr": "natural log, bona fide vs spoof (cllr and act_dcf use it)"}
    attacks = columns.get("attack")
    if attacks is not None:
        result["eer_by_attack"] = eer_by_group(clips.labels, scores, attacks)
    result["by"] = {c: breakdown(clips.labels, scores, columns[c], groups, n_boot)
                    for c in by if c in columns}
    extra = {} if cal is None else {"llr": llrs, "p_fake_calibrated": cal.p_fake(scores)}
    tag = (data_tag(run_dir, data_path) + ("" if condition == "clean" else f"-{condition}")
           + ("-windows" if windows else ""))
    if f"scores-{split}{tag}.tsv" in runs.TRAINING_FILES:  # training's, which calibration reads
        tag += "-evaluated"
    saved = ([run_dir / f"scores-{split}{tag}.tsv", run_dir / f"metrics-{split}{tag}.json"]
             if _still_in(best, run_dir) else [])
    try:
        if saved:
            runs.write_scores(saved[0], clips.files, scores, clips.labels, attacks, extra)
            runs.write_json(saved[1], result)
    except OSError as e:  # e.g. a read-only run folder: the metrics are still worth showing
        log.warning("lcnn evaluate: warning: could not save the scores and metrics in %s (%s)",
                    run_dir, e.strerror or e)
        saved = []
    if score_file is not None:
        # absolute, not resolved: a dataset of symbolic links names its links, not their targets
        root = os.path.abspath(listing.root)
        names = [Path(os.path.relpath(os.path.abspath(f), root)).as_posix() for f in clips.files]
        write_asvspoof_scores(score_file, names, clips.labels,
                              llrs if llrs is not None else raw_llr(scores), attacks)
        saved.append(Path(score_file))
    result["saved"] = [str(path) for path in saved]
    return result


def with_channel(clips, cfg, name: str, channel: channels.Channel, seed: int):
    """The clips after `channel` (cached like training copies; see data.build_variants)."""
    from lcnn.detector import data

    def fn(x: np.ndarray, rng: np.random.Generator, j: int) -> np.ndarray:
        return channel(x, cfg.sample_rate, rng)

    audio = data.build_variants(clips, fn, 1, f"condition {name} seed={seed}")[:, 0]
    return dataclasses.replace(clips, audio=audio, variants=None)


def window_scores(model, files: list[Path], cfg, channel: channels.Channel | None = None,
                  seed: int = 0, chunk: int = 32) -> np.ndarray:
    """Each file's score as `predict` gives it: the mean over 50 %-overlapping windows of the
    whole file (after `channel`, seeded per file, and normalised like any loaded file)."""
    from lcnn.audio import load_audio, normalize
    from lcnn.detector.predict import clip_windows

    def windows_of(i: int) -> np.ndarray:
        x = load_audio(files[i], cfg.sample_rate)
        if channel is not None:
            x = normalize(channel(x, cfg.sample_rate, np.random.default_rng([seed, i])))
        return clip_windows(x, cfg).astype(np.float32)

    scores = np.zeros(len(files))
    with ThreadPoolExecutor(max_workers=2) as pool:  # decoding and channels overlap
        for start in range(0, len(files), chunk):  # a chunk of files at a time: flat memory
            parts = list(pool.map(windows_of, range(start, min(start + chunk, len(files)))))
            scores[start : start + len(parts)] = _mean_scores(model, parts, cfg.batch_size)
    return scores


def _mean_scores(model, parts: list[np.ndarray], batch_size: int) -> list[float]:
    """The mean model score of each group of windows in `parts`, scored in batches."""
    batch = np.concatenate(parts)
    out = np.concatenate([np.asarray(model.predict_on_batch(batch[b : b + batch_size]))
                          .reshape(-1) for b in range(0, len(batch), batch_size)])
    return [w.mean() for w in np.split(out, np.cumsum([len(p) for p in parts])[:-1])]


def robustness(run_dir: str | Path, data_path: str | Path | dict | None = None,
               split: str = "testing", seed: int = 0, windows: bool = False,
               **kwargs) -> dict[str, dict]:
    """evaluate() under every condition of lcnn.channels.CONDITIONS; also written to
    <run_dir>/robustness-<split><tag>.json (tag as evaluate's, without the condition).
    Returns {condition: metrics}."""
    best = runs.load_best(run_dir)
    table = {name: evaluate(run_dir, data_path, split, condition=name, windows=windows,
                            seed=seed, best=best, **kwargs) for name in channels.CONDITIONS}
    tag = data_tag(Path(run_dir), data_path) + ("-windows" if windows else "")
    if best.still_in(run_dir):  # else each evaluate above has warned
        runs.write_json(Path(run_dir) / f"robustness-{split}{tag}.json", table)
    return table


def _still_in(best: runs.BestModel, run_dir: Path) -> bool:
    """Whether run_dir still holds the training `best` came from; a warning if not."""
    if best.still_in(run_dir):
        return True
    log.warning("lcnn evaluate: warning: %s was started over (train --overwrite) while "
                "evaluate ran; what it measured of the earlier model is not saved there",
                run_dir)
    return False
