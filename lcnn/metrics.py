"""Detection metrics computed the way the anti-spoofing field does.

Score direction: every score in this project is the model's probability that a clip is
FAKE (label 1); real (bona fide) clips are label 0. ASVspoof's tools use the opposite
direction (higher = more bona fide); the EER is the same either way.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    """Miss and false-alarm rates at every threshold (scikit-learn's ROC, all thresholds kept).

    A fake is *missed* when its score is below the threshold; a real clip is a
    *false alarm* when its score is at or above it. Returns (false_alarm, miss, thresholds).
    """
    labels, scores = _check(labels, scores)
    fpr, tpr, thresholds = skm.roc_curve(labels, scores, drop_intermediate=False)
    return fpr, 1.0 - tpr, thresholds


def compute_eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold, as in the ASVspoof evaluation packages.

    Sweep the threshold over all scores, take the point where the miss and false-alarm
    rates are closest, and report their mean. Returns (eer, threshold), eer in [0, 1].
    """
    far, miss, thresholds = det_curve(labels, scores)
    i = int(np.nanargmin(np.abs(miss - far)))
    threshold = float(min(thresholds[i], 1.0)) if np.isfinite(thresholds[i]) else 1.0
    return float((miss[i] + far[i]) / 2), threshold


def summarize(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """All the numbers a report needs. Classification metrics treat FAKE as the positive class.

    A clip is called fake when its score (probability of fake) is >= threshold.
    """
    labels, scores = _check(labels, scores)
    eer, eer_threshold = compute_eer(labels, scores)
    pred = (scores >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, pred, labels=[0, 1]).ravel()
    return {
        "eer": eer,
        "eer_threshold": eer_threshold,
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(labels, pred)),
        "precision": float(skm.precision_score(labels, pred, zero_division=0)),
        "recall": float(skm.recall_score(labels, pred, zero_division=0)),
        "f1": float(skm.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, scores)),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
        "score": "probability of fake",
    }


def eer_by_group(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """EER of each group of fakes (e.g. each attack) against all real clips, as ASVspoof does."""
    labels, scores = _check(labels, scores)
    groups = np.asarray(groups)
    real = labels == 0
    out = {}
    for g in sorted(set(groups[labels == 1])):
        keep = real | ((labels == 1) & (groups == g))
        out[str(g)] = compute_eer(labels[keep], scores[keep])[0]
    return out
