"""Evaluate a trained run on a split: scores, metrics with confidence intervals, breakdowns by
attack, speaker, language... when the data has a metadata.csv, and an ASVspoof score file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lcnn import calibration, runs
from lcnn.errors import LcnnError
from lcnn.metrics import breakdown, eer_by_group, raw_llr, summarize

METADATA = "metadata.csv"
GROUP_COLUMNS = ("text_id", "recording")  # what the bootstrap resamples, first found


def read_metadata(data_path: str | Path) -> dict[str, dict[str, str]]:
    """Rows of <data_path>/metadata.csv keyed by the `file` column (a path relative to
    data_path). Empty when there is no such file or it has no `file` column (e.g. FoR)."""
    path = Path(data_path) / METADATA
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        return {}
    return {Path(row["file"]).as_posix(): row for row in rows}


def read_attacks(data_path: Path, files: list[Path]) -> np.ndarray | None:
    """Attack family of each file from <data_path>/metadata.csv (columns file, attack), if any.

    The demo corpus ships such a file; FoR does not, and then this returns None.
    """
    return metadata_columns(data_path, files).get("attack")


def metadata_columns(data_path: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Every column of <data_path>/metadata.csv, one value per file; empty when the metadata
    does not describe all the files (e.g. FoR, which has none)."""
    rows = read_metadata(data_path)
    root = Path(data_path).resolve()
    try:
        keys = [Path(f).resolve().relative_to(root).as_posix() for f in files]
    except ValueError:
        return {}
    if not rows or not all(k in rows for k in keys):
        return {}
    return {c: np.array([rows[k][c] for k in keys]) for c in next(iter(rows.values()))}


def bootstrap_groups(columns: dict[str, np.ndarray]) -> tuple[np.ndarray | None, str]:
    """What the bootstrap resamples: the prompt (text_id) of each clip when known, since a real
    clip and the fakes made from its text are not independent; else the recording; else clips."""
    for name in GROUP_COLUMNS:
        if name in columns:
            return columns[name], name
    return None, "clip"


def write_asvspoof_scores(path: str | Path, names: list[str], labels: np.ndarray,
                          llrs: np.ndarray, attacks: np.ndarray | None = None) -> None:
    """An ASVspoof-convention score file, tab-separated, atomically: filename, attack,
    cm-label (bonafide/spoof), cm-score, where cm-score is an LLR, bona fide vs spoof, so
    HIGHER = MORE BONA FIDE (the opposite of this project's raw score).

    ASVspoof 5's evaluation package reads scores (filename, cm-score) and keys (filename,
    cm-label) from two files: `cut -f1,4 F > scores.tsv; cut -f1,3 F > keys.tsv`.
    """
    lines = ["filename\tattack\tcm-label\tcm-score"]
    for i, name in enumerate(names):
        key = "spoof" if labels[i] == 1 else "bonafide"
        attack = str(attacks[i]) if attacks is not None else ("-" if labels[i] else "bonafide")
        lines.append(f"{name}\t{attack}\t{key}\t{float(llrs[i]):.6f}")
    runs.atomic_write_text(path, "\n".join(lines) + "\n")


def evaluate(run_dir: str | Path, data_path: str | Path | None = None, split: str = "testing",
             threshold: float | None = None, skip_bad: bool = False,
             cache_dir: str | Path | None = None, by: tuple[str, ...] = (),
             score_file: str | Path | None = None, n_boot: int = 1000) -> dict:
    """Score every clip of a split with the run's best model and summarise.

    threshold (raw score) defaults to the one chosen on validation (calibration.json).
    Writes <run_dir>/scores-<split>.tsv (raw score, calibrated LLR and probability of fake)
    and metrics-<split>.json, and `score_file` in ASVspoof's convention when given; returns
    the metrics dict (see lcnn.metrics.summarize) plus `eer_by_attack` when the data has a
    metadata.csv and `by` (EER with CI per value of each metadata column named in `by`).
    """
    from lcnn import data
    from lcnn.train import predict_scores, set_threads

    run_dir = Path(run_dir)
    cfg = runs.load_config(run_dir)
    set_threads(cfg.threads)
    if data_path is None:
        data_path = runs.data_path(run_dir)
    known = list(next(iter(read_metadata(data_path).values()), {}))
    missing = [c for c in by if c not in known]
    if missing:
        raise LcnnError(f"evaluate --by: {', '.join(missing)} not in {data_path}/{METADATA} "
                        f"(columns: {', '.join(known) or 'none'})")
    model = runs.load_model(run_dir)
    cal, note = calibration.for_run(run_dir)
    clips = data.load_split(data_path, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad)
    scores = predict_scores(model, data.make_dataset(clips, cfg, training=False))
    columns = metadata_columns(Path(data_path), clips.files)
    groups, group_name = bootstrap_groups(columns)
    threshold, source = calibration.decision_threshold(cal, threshold)
    llrs = cal.llr(scores) if cal is not None else None
    result = summarize(clips.labels, scores, threshold, llrs, groups, n_boot)
    result.update(split=split, threshold_source=source, calibration_note=note or None)
    result["bootstrap"]["by"] = group_name
    result["calibration"] = None if cal is None else {
        "a": cal.a, "b": cal.b, "fitted_on": cal.fitted_on, "prior_fake": cal.prior_fake,
        "llr": "natural log, bona fide vs spoof (cllr and act_dcf use it)"}
    attacks = columns.get("attack")
    if attacks is not None:
        result["eer_by_attack"] = eer_by_group(clips.labels, scores, attacks)
    result["by"] = {c: breakdown(clips.labels, scores, columns[c], groups, n_boot)
                    for c in by if c in columns}  # empty when metadata.csv misses the split
    extra = {} if cal is None else {"llr": llrs, "p_fake_calibrated": cal.p_fake(scores)}
    runs.write_scores(run_dir / f"scores-{split}.tsv", clips.files, scores, clips.labels,
                      attacks, extra)
    runs.write_json(run_dir / f"metrics-{split}.json", result)
    if score_file is not None:
        root = Path(data_path).resolve()
        names = [Path(f).resolve().relative_to(root).as_posix() for f in clips.files]
        write_asvspoof_scores(score_file, names, clips.labels,
                              llrs if llrs is not None else raw_llr(scores), attacks)
    return result
