"""Detection metrics computed the way the anti-spoofing field does.

Score direction: the raw score of this project is the model's output for a clip, higher =
more FAKE (label 1); real (bona fide) clips are label 0. It comes out of a sigmoid but, trained
with focal loss, it is a score, not a probability (lcnn.detector.calibration turns it into one).
ASVspoof's tools use the opposite direction (higher = more bona fide); the EER and minDCF are
the same either way. Log-likelihood ratios (LLRs) follow ASVspoof: natural log, bona fide vs
spoof, ln p(score | bona fide) / p(score | spoof), so a positive LLR speaks for a real clip.

ASVspoof 5 (asvspoof-challenge/asvspoof5, evaluation-package/calculate_modules.py) ranks
systems by minDCF with P_spoof = 0.05, C_miss = 1 (a bona fide clip rejected), C_fa = 10 (a
spoof accepted), and reports EER, Cllr and actDCF next to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import isotonic_regression
from sklearn import metrics as skm

P_SPOOF, C_MISS, C_FA = 0.05, 1.0, 10.0  # ASVspoof 5's operating point


def check_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as ints (0 real, 1 fake) and scores as floats, both 1-D; ValueError if the sizes
    differ, a class is missing or a score is not finite."""
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if set(np.unique(labels)) != {0, 1}:
        raise ValueError("EER needs both real (0) and fake (1) examples")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    return labels, scores


def det_curve(labels: np.ndarray, scores: np.ndarray):
    """Miss and false-alarm rates at every threshold: each distinct score, then +inf.

    A fake is *missed* when its score is below the threshold; a real clip is a
    *false alarm* when its score is at or above it. Returns (false_alarm, miss, thresholds),
    thresholds from high to low: the points of scikit-learn's roc_curve with
    drop_intermediate=False, computed by sorting once (the bootstrap calls this thousands
    of times).
    """
    labels, scores = check_scores(labels, scores)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    real = np.sort(scores[labels == 0])
    fake = np.sort(scores[labels == 1])
    false_alarm = 1.0 - np.searchsorted(real, thresholds, "left") / real.size
    miss = np.searchsorted(fake, thresholds, "left") / fake.size
    return false_alarm, miss, thresholds


def compute_eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold, as in the ASVspoof evaluation packages.

    Sweep the threshold over all scores, take the point where the miss and false-alarm
    rates are closest, and report their mean. Returns (eer, threshold), eer in [0, 1].
    The threshold is chosen on the very scores it is measured on, so the EER is an
    optimistic error rate: a threshold fixed beforehand (e.g. on validation) does worse.
    """
    far, miss, thresholds = det_curve(labels, scores)
    i = int(np.nanargmin(np.abs(miss - far)))
    threshold = float(min(thresholds[i], 1.0)) if np.isfinite(thresholds[i]) else 1.0
    return float((miss[i] + far[i]) / 2), threshold


def dcf(rejected_real, accepted_fake, p_spoof: float = P_SPOOF, c_miss: float = C_MISS,
        c_fa: float = C_FA):
    """Normalised detection cost of error rates (real clips rejected, fakes accepted): 1.0 is
    the cost of the better of the two constant decisions."""
    cost = c_miss * (1 - p_spoof) * rejected_real + c_fa * p_spoof * accepted_fake
    return cost / min(c_miss * (1 - p_spoof), c_fa * p_spoof)


def min_dcf(labels: np.ndarray, scores: np.ndarray, p_spoof: float = P_SPOOF,
            c_miss: float = C_MISS, c_fa: float = C_FA) -> tuple[float, float]:
    """Minimum normalised DCF over all thresholds of the raw scores, and that threshold.

    A real clip scoring at or above the threshold is rejected (a miss, in ASVspoof's words:
    bona fide is the target class); a fake below it is accepted (a false alarm).
    """
    rejected_real, accepted_fake, thresholds = det_curve(labels, scores)
    cost = dcf(rejected_real, accepted_fake, p_spoof, c_miss, c_fa)
    i = int(np.argmin(cost))
    return float(cost[i]), float(thresholds[i])


def bayes_llr_threshold(p_spoof: float = P_SPOOF, c_miss: float = C_MISS,
                        c_fa: float = C_FA) -> float:
    """The LLR (bona fide vs spoof) below which a clip is called fake at minimum expected cost:
    -ln(beta), beta = C_miss (1 - P_spoof) / (C_fa P_spoof); -ln 1.9 = -0.642 for ASVspoof 5."""
    return float(-np.log(c_miss * (1 - p_spoof) / (c_fa * p_spoof)))


def act_dcf(labels: np.ndarray, llrs: np.ndarray, p_spoof: float = P_SPOOF,
            c_miss: float = C_MISS, c_fa: float = C_FA) -> float:
    """Actual normalised DCF: the LLRs (bona fide vs spoof) decide at the Bayes threshold.

    Only calibrated LLRs do well here; minDCF is what the same scores could reach with the
    best threshold, so act_dcf - min_dcf measures the cost of bad calibration.
    """
    labels, llrs = check_scores(labels, llrs)
    fake = llrs < bayes_llr_threshold(p_spoof, c_miss, c_fa)
    rejected_real = np.mean(fake[labels == 0])
    accepted_fake = np.mean(~fake[labels == 1])
    return float(dcf(rejected_real, accepted_fake, p_spoof, c_miss, c_fa))


def cllr(labels: np.ndarray, llrs: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits (Brümmer & du Preez 2006) of LLRs, bona fide vs spoof.

    0 is perfect, 1 is what a system that always says LLR = 0 costs; above 1 the LLRs
    mislead more than they help.
    """
    labels, llrs = check_scores(labels, llrs)
    real_cost = np.mean(np.logaddexp(0, -llrs[labels == 0]))  # ln(1 + e^-llr)
    fake_cost = np.mean(np.logaddexp(0, llrs[labels == 1]))
    return float((real_cost + fake_cost) / (2 * np.log(2)))


def pav_llrs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The best LLRs (bona fide vs spoof) any monotone (decreasing) map of the raw scores can
    give on these clips: pool-adjacent-violators on the labels, then the prior removed.

    Tied scores are pooled first, so a tie always gets one LLR. Values can be +-inf.
    """
    labels, scores = check_scores(labels, scores)
    uniq, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    real_share = np.bincount(inverse, weights=1.0 - labels) / counts
    # real share must fall as the score (evidence of fake) rises: fit the reversed sequence
    p_real = isotonic_regression(real_share[::-1], weights=counts[::-1]).x[::-1][inverse]
    n_real, n_fake = np.sum(labels == 0), np.sum(labels == 1)
    with np.errstate(divide="ignore"):
        return np.log(p_real) - np.log1p(-p_real) - np.log(n_real / n_fake)


def min_cllr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Cllr after the best monotone calibration (PAV): the discrimination part of Cllr."""
    return cllr(labels, np.clip(pav_llrs(labels, scores), -1e6, 1e6))


def raw_llr(scores: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The raw score read naively as a probability of fake at prior 0.5, as an LLR (bona fide vs
    spoof): ln((1 - s) / s). What a user who trusts the sigmoid output implicitly uses; the
    baseline that calibration is measured against."""
    s = np.clip(np.asarray(scores, dtype=np.float64), eps, 1 - eps)
    return np.log1p(-s) - np.log(s)


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """The EER alone (for bootstrap_ci and compare_systems)."""
    return compute_eer(labels, scores)[0]


def min_dcf_value(labels: np.ndarray, scores: np.ndarray) -> float:
    """ASVspoof 5's minDCF alone (for bootstrap_ci and compare_systems)."""
    return min_dcf(labels, scores)[0]


Metric = Callable[[np.ndarray, np.ndarray], float]


def _resamples(labels: np.ndarray, groups: np.ndarray | None, n_boot: int, seed: int):
    """Index arrays of bootstrap resamples that hold both classes.

    With groups (e.g. the prompt of each clip), whole groups are drawn with replacement: the
    clips of one prompt are not independent, and resampling them one by one would give too
    narrow an interval.
    """
    rng = np.random.default_rng(seed)
    members = None
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    drawn = tries = 0
    while drawn < n_boot:
        tries += 1
        if tries > 20 * n_boot:
            raise ValueError("bootstrap: too few groups hold both real and fake clips")
        if members is None:
            idx = rng.integers(0, labels.size, labels.size)
        else:
            idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if 0 < labels[idx].sum() < idx.size:
            drawn += 1
            yield idx


def bootstrap_ci(labels: np.ndarray, scores: np.ndarray, metric: Metric = eer,
                 groups: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a metric (by group when groups are given)."""
    labels, scores = check_scores(labels, scores)
    values = [metric(labels[i], scores[i]) for i in _resamples(labels, groups, n_boot, seed)]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def compare_systems(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                    metric: Metric = eer, groups: np.ndarray | None = None,
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """Do two systems differ on the same clips? A paired bootstrap test.

    Both systems are scored on the same resamples (by group when given), so what the clips
    have in common cancels. The p-value is two-sided, for the null hypothesis that the metric
    does not differ: the share of resampled differences at least as far from the observed one
    as the observed one is from zero (the resampled differences centred on the null).
    Returns the metric of each system, their difference a - b with its 95 % interval, p_value.
    """
    labels, scores_a = check_scores(labels, scores_a)
    _, scores_b = check_scores(labels, scores_b)
    observed = metric(labels, scores_a) - metric(labels, scores_b)
    diffs = np.array([metric(labels[i], scores_a[i]) - metric(labels[i], scores_b[i])
                      for i in _resamples(labels, groups, n_boot, seed)])
    extreme = np.abs(diffs - observed) >= abs(observed) - 1e-12
    return {
        "a": float(metric(labels, scores_a)), "b": float(metric(labels, scores_b)),
        "difference": float(observed),
        "difference_ci95": [float(q) for q in np.quantile(diffs, [0.025, 0.975])],
        "p_value": float((1 + extreme.sum()) / (1 + diffs.size)),
        "n_boot": int(diffs.size),
    }


def summarize(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5,
              llrs: np.ndarray | None = None, groups: np.ndarray | None = None,
              n_boot: int = 1000) -> dict:
    """All the numbers a report needs. Classification metrics treat FAKE as the positive class.

    A clip is called fake when its raw score is >= threshold. `llrs` are calibrated LLRs (bona
    fide vs spoof) for Cllr and actDCF; without them those two are computed from raw_llr, the
    raw score taken at face value. `groups` (e.g. prompt ids) make the bootstrap resample whole
    groups.
    """
    labels, scores = check_scores(labels, scores)
    eer_value, eer_threshold = compute_eer(labels, scores)
    min_cost, min_cost_threshold = min_dcf(labels, scores)
    uncalibrated = raw_llr(scores)
    llrs = uncalibrated if llrs is None else np.asarray(llrs, dtype=np.float64)
    pred = (scores >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, pred, labels=[0, 1]).ravel()
    return {
        "eer": eer_value,
        "eer_ci95": list(bootstrap_ci(labels, scores, eer, groups, n_boot)),
        "eer_threshold": eer_threshold,
        "min_dcf": min_cost,
        "min_dcf_ci95": list(bootstrap_ci(labels, scores, min_dcf_value, groups, n_boot)),
        "min_dcf_threshold": min_cost_threshold,
        "act_dcf": act_dcf(labels, llrs),
        "cllr": cllr(labels, llrs),
        "cllr_ci95": list(bootstrap_ci(labels, llrs, cllr, groups, n_boot)),
        "min_cllr": min_cllr(labels, scores),
        "act_dcf_uncalibrated": act_dcf(labels, uncalibrated),
        "cllr_uncalibrated": cllr(labels, uncalibrated),
        "cllr_uncalibrated_ci95": list(bootstrap_ci(labels, uncalibrated, cllr, groups, n_boot)),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(labels, pred)),
        "precision": float(skm.precision_score(labels, pred, zero_division=0)),
        "recall": float(skm.recall_score(labels, pred, zero_division=0)),
        "f1": float(skm.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, scores)),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
        "score": "raw model output, higher = more fake (not a probability)",
        "dcf_parameters": {"p_spoof": P_SPOOF, "c_miss": C_MISS, "c_fa": C_FA},
        "bootstrap": {"n_boot": n_boot, "by": "group" if groups is not None else "clip"},
    }


def eer_by_group(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """EER of each group of fakes (e.g. each attack) against all real clips, as ASVspoof does."""
    labels, scores = check_scores(labels, scores)
    groups = np.asarray(groups)
    real = labels == 0
    out = {}
    for g in sorted(set(groups[labels == 1])):
        keep = real | ((labels == 1) & (groups == g))
        out[str(g)] = compute_eer(labels[keep], scores[keep])[0]
    return out


def breakdown(labels: np.ndarray, scores: np.ndarray, values: np.ndarray,
              groups: np.ndarray | None = None, n_boot: int = 1000) -> dict[str, dict]:
    """EER with its 95 % interval for each value of a metadata column (attack, speaker, ...).

    A value that holds both real and fake clips (a language) is scored on its own clips; one
    that holds only fakes (an attack, a synthetic voice) against all real clips, as ASVspoof
    does per attack; one that holds only real clips (a speaker) against all fakes. A value
    whose clips are the whole set (e.g. attack "bonafide") adds nothing and is left out.
    """
    labels, scores = check_scores(labels, scores)
    values = np.asarray(values).astype(str)
    out = {}
    for v in sorted(set(values)):
        mine = values == v
        real = (labels == 0) & (mine if np.any(mine & (labels == 0)) else True)
        fake = (labels == 1) & (mine if np.any(mine & (labels == 1)) else True)
        keep = real | fake
        if keep.all():
            continue
        sub_groups = None if groups is None else np.asarray(groups)[keep]
        out[v] = {
            "eer": eer(labels[keep], scores[keep]),
            "eer_ci95": list(bootstrap_ci(labels[keep], scores[keep], eer, sub_groups, n_boot)),
            "n_real": int(np.sum(real)), "n_fake": int(np.sum(fake)),
        }
    return out
