"""From a raw score to a log-likelihood ratio and a probability of fake, fitted on validation.

The model's raw score s (higher = more fake) comes out of a sigmoid, but the model is trained
with focal loss, which is not a proper scoring rule (Charoenphakdee et al., CVPR 2021): s is
not the probability that a clip is fake. Platt scaling (Platt 1999) fits

    LLR = a * logit(s) + b

on the validation scores of the best epoch. LLR is a natural-log likelihood ratio in ASVspoof's
direction, bona fide vs spoof: ln p(s | bona fide) / p(s | spoof), positive for real-looking
clips (a < 0 for a working model). The probability of fake at a prior P(fake) = pi is then
sigmoid(logit(pi) - LLR). a and b are fitted with the two classes weighted equally, so the
LLR does not depend on the class balance of the validation split.

The run folder keeps the result in calibration.json together with two thresholds on the raw
score, both chosen on validation: the validation EER threshold (the default of `predict`) and
the Bayes threshold of ASVspoof 5's operating point (P_spoof = 0.05, C_miss = 1, C_fa = 10).

Fusion (`fuse_runs`) fits the same logistic regression on several runs' validation scores at
once, LLR = sum_k w_k * logit(s_k) + b: linear logistic-regression fusion, as Brümmer's FoCal
toolkit does it (Brümmer et al., IEEE TASLP 2007). It adds the evidence of systems that hear
different artefacts.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lcnn import metrics
from lcnn.detector import runs

PRIOR_FAKE = 0.5  # the prior of the probability of fake that predict/evaluate print
EPS = 1e-7  # raw scores are clipped to [EPS, 1 - EPS] before the logit


def logit(scores: np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=np.float64), EPS, 1 - EPS)
    return np.log(s) - np.log1p(-s)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))  # no overflow


def fit_platt(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(a, b) of LLR = a * logit(s) + b, bona fide vs spoof, fitted by logistic regression.

    Platt's targets (N+1)/(N+2) and 1/(N+2) instead of 1 and 0 keep a finite when the
    validation scores separate the classes perfectly; each class weighs half.
    """
    labels, scores = metrics.check_scores(labels, scores)
    weights, b = fit_linear_llr(labels, logit(scores)[:, None])
    return weights[0], b


def fit_linear_llr(labels: np.ndarray, x: np.ndarray) -> tuple[list[float], float]:
    """(w, b) of LLR = x @ w + b for features x `[clips, k]`: Platt scaling for k = 1, linear
    logistic-regression fusion of k systems (Brummer's FoCal) for k > 1. Platt's targets, each
    class weighted half (see fit_platt)."""
    from sklearn.linear_model import LogisticRegression

    real = (np.asarray(labels) == 0).astype(float)
    n_real, n_fake = real.sum(), (1 - real).sum()
    target = np.where(real == 1, (n_real + 1) / (n_real + 2), 1 / (n_fake + 2))
    class_weight = np.where(real == 1, 0.5 / n_real, 0.5 / n_fake)
    # each clip twice: as "real" with weight target, as "fake" with weight 1 - target
    model = LogisticRegression(C=np.inf).fit(
        np.vstack([x, x]), np.r_[np.ones_like(real), np.zeros_like(real)],
        sample_weight=np.r_[class_weight * target, class_weight * (1 - target)])
    return [float(w) for w in model.coef_[0]], float(model.intercept_[0])


@dataclass
class Calibration:
    """A fitted calibration and the thresholds chosen on validation (raw-score units)."""

    a: float
    b: float
    thresholds: dict = field(default_factory=dict)  # name -> {"score": ..., "source": ...}
    prior_fake: float = PRIOR_FAKE
    fitted_on: str = ""
    validation: dict = field(default_factory=dict)  # metrics on the validation scores
    best_epoch: int | None = None  # the run's best epoch then (None: unknown, older files)

    def llr(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated LLR, natural log, bona fide vs spoof (positive = looks real)."""
        return self.a * logit(scores) + self.b

    def p_fake(self, scores: np.ndarray, prior_fake: float | None = None) -> np.ndarray:
        """Calibrated probability that a clip is fake, at prior P(fake) (default prior_fake)."""
        prior = self.prior_fake if prior_fake is None else prior_fake
        return sigmoid(np.log(prior) - np.log1p(-prior) - self.llr(scores))

    def score_at_llr(self, llr: float) -> float | None:
        """The raw score whose LLR is `llr`: clips at or above it have lower LLRs.
        None when a >= 0 (the scores do not rise with fakeness on validation)."""
        if self.a >= 0:
            return None
        return float(sigmoid((llr - self.b) / self.a))


def fit(labels: np.ndarray, scores: np.ndarray, source: str = "validation") -> Calibration:
    """Calibration, thresholds and validation metrics from one split's labels and raw scores."""
    labels, scores = metrics.check_scores(labels, scores)
    cal = Calibration(*fit_platt(labels, scores), fitted_on=source)
    eer, eer_threshold = metrics.compute_eer(labels, scores)
    bayes = cal.score_at_llr(metrics.bayes_llr_threshold())
    cal.thresholds = {
        "eer": {"score": eer_threshold,
                "source": f"the EER threshold on {source}, where the EER was {100 * eer:.2f}%"},
        "asvspoof5": {"score": bayes,
                      "source": f"Bayes threshold of ASVspoof 5's costs (P_spoof "
                                f"{metrics.P_SPOOF}, C_miss {metrics.C_MISS:g}, C_fa "
                                f"{metrics.C_FA:g}) for the LLRs of the calibration fitted on "
                                f"{source}"},
    }
    llrs = cal.llr(scores)
    cal.validation = {
        "n_real": int(np.sum(labels == 0)), "n_fake": int(np.sum(labels == 1)), "eer": eer,
        "cllr_uncalibrated": metrics.cllr(labels, metrics.raw_llr(scores)),
        "cllr": metrics.cllr(labels, llrs), "min_cllr": metrics.min_cllr(labels, scores),
        "act_dcf": metrics.act_dcf(labels, llrs), "min_dcf": metrics.min_dcf(labels, scores)[0],
    }
    return cal


def save(cal: Calibration, run_dir: str | Path) -> Path:
    path = Path(run_dir) / runs.CALIBRATION
    runs.write_json(path, {
        "method": "Platt: llr = a * logit(score) + b",
        "llr": "natural log, bona fide vs spoof: ln p(score|bona fide) / p(score|spoof)",
        "score": "raw model output, higher = more fake",
        **asdict(cal)})
    return path


def load(run_dir: str | Path) -> Calibration | None:
    """The run's calibration, or None for a run trained before calibration existed."""
    path = Path(run_dir) / runs.CALIBRATION
    if not path.exists():
        return None
    data = runs.read_json_object(path, "calibration")
    if not all(isinstance(data.get(k), int | float) and not isinstance(data.get(k), bool)
               for k in ("a", "b")):
        raise runs.RunError(f"{path}: damaged calibration (needs numbers a and b); delete it "
                            f"and it is fitted again from {runs.VALIDATION_SCORES}")
    known = Calibration.__dataclass_fields__
    return Calibration(**{k: v for k, v in data.items() if k in known})


def read_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = fake) and raw scores of a scores-<split>.tsv (column `score`, or `p_fake`
    in runs written before the column was renamed)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "label" not in rows[0]:
        raise runs.RunError(f"{path}: no labelled scores")
    column = "score" if "score" in rows[0] else "p_fake"
    return (np.array([r["label"] == "fake" for r in rows], dtype=int),
            np.array([float(r[column]) for r in rows]))


def calibrate_run(run_dir: str | Path, save_it: bool = True) -> Calibration:
    """Fit the calibration and thresholds on the run's validation scores (those of the best
    epoch, written by train) and store them in <run_dir>/calibration.json (unless not save_it)."""
    run_dir = Path(run_dir)
    path = run_dir / runs.VALIDATION_SCORES
    if not path.exists():
        raise runs.RunError(f"{run_dir}: no {runs.VALIDATION_SCORES} to calibrate on; "
                            "has training finished at least one epoch?")
    best = runs.best_epoch(run_dir)
    cal = fit(*read_scores(path), source=f"validation (best epoch {best})" if best else
              "validation")
    cal.best_epoch = best
    if save_it:
        save(cal, run_dir)
    return cal


def decision_threshold(cal: Calibration | None, given: float | None = None) -> tuple[float, str]:
    """The raw-score threshold to decide with, and where it comes from: the one given, else
    the validation EER threshold stored with the run, else 0.5 (chosen on nothing)."""
    if given is not None:
        return given, "given with --threshold"
    if cal is not None:
        return cal.thresholds["eer"]["score"], cal.thresholds["eer"]["source"]
    return 0.5, "0.5, not chosen on any data (the run has no calibration)"


def for_run(run_dir: str | Path) -> tuple[Calibration | None, str]:
    """The run's calibration and a note for the user. A run trained before calibration existed
    is calibrated now from its validation scores, and so is one whose calibration.json was
    fitted on an earlier best epoch (by predict or evaluate while training ran, which then
    stopped before it could refit); without those scores it has none (None)."""
    run_dir = Path(run_dir)
    cal = load(run_dir)
    best = runs.best_epoch(run_dir)
    if cal is not None and (cal.best_epoch is None or best is None or cal.best_epoch == best):
        return cal, ""
    if (run_dir / runs.VALIDATION_SCORES).exists():
        note = (f"{run_dir} had no {runs.CALIBRATION}" if cal is None else
                f"{run_dir / runs.CALIBRATION} was fitted on best epoch {cal.best_epoch}, the "
                f"run's best is now epoch {best}")
        note += f"; fitted it now on {runs.VALIDATION_SCORES}"
        try:
            return calibrate_run(run_dir), note
        except OSError as e:  # a read-only run folder: use it without saving
            return calibrate_run(run_dir, save_it=False), f"{note} (not saved: {e.strerror})"
    return None, (f"{run_dir} has no {runs.CALIBRATION} and no {runs.VALIDATION_SCORES}: raw "
                  "scores only, no calibrated probability, and no threshold chosen on validation")


@dataclass
class Fusion:
    """Score-level fusion of several runs: LLR = sum_k w_k * logit(s_k) + b, fitted on their
    validation scores. Systems that hear different artefacts add their evidence."""

    runs: list[str]
    weights: list[float]
    b: float

    def llr(self, scores: list[np.ndarray]) -> np.ndarray:
        """Fused LLR (natural log, bona fide vs spoof) of each run's raw scores, in `runs` order."""
        return np.column_stack([logit(s) for s in scores]) @ np.array(self.weights) + self.b


def _scores_by_file(path: Path) -> dict[str, tuple[int, float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"file", "label", "score"} <= set(rows[0]):
        raise runs.RunError(f"{path}: no labelled scores (columns file, label, score)")
    return {r["file"]: (int(r["label"] == "fake"), float(r["score"])) for r in rows}


def _aligned(paths: list[Path]) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Files, labels and each run's scores of the files every score file has (first's order)."""
    tables = [_scores_by_file(p) for p in paths]
    files = [f for f in tables[0] if all(f in t for t in tables[1:])]
    if not files:
        raise runs.RunError(f"{', '.join(map(str, paths))}: no file scored in all of them; "
                            "fuse runs evaluated on the same split")
    labels = np.array([tables[0][f][0] for f in files])
    return files, labels, [np.array([t[f][1] for f in files]) for t in tables]


def fuse_runs(run_dirs: list[str | Path], split: str = "testing"
              ) -> tuple[Fusion, list[str], np.ndarray, np.ndarray]:
    """Fit a Fusion on the runs' validation scores (best epochs) and apply it to their
    scores-<split>.tsv (written by evaluate). Returns the fusion, files, labels and fused LLRs
    of the clips all runs scored."""
    dirs = [Path(d) for d in run_dirs]
    for d, name in ((d, n) for d in dirs for n in (runs.VALIDATION_SCORES, f"scores-{split}.tsv")):
        if not (d / name).exists():
            raise runs.RunError(f"{d}: no {name}; train and evaluate the run on {split} first")
    _, val_labels, val_scores = _aligned([d / runs.VALIDATION_SCORES for d in dirs])
    weights, b = fit_linear_llr(val_labels, np.column_stack([logit(s) for s in val_scores]))
    fusion = Fusion([str(d) for d in dirs], weights, b)
    files, labels, scores = _aligned([d / f"scores-{split}.tsv" for d in dirs])
    return fusion, files, labels, fusion.llr(scores)
