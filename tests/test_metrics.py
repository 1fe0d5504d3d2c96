import numpy as np
import pytest

from lcnn.metrics import compute_eer, eer_by_group, summarize


def brute_force_eer(labels, scores):
    """Try every score as a threshold; return the mean of miss and false alarm where closest."""
    best = None
    for t in np.concatenate([np.unique(scores), [np.inf]]):
        miss = np.mean(scores[labels == 1] < t)
        fa = np.mean(scores[labels == 0] >= t)
        gap = abs(miss - fa)
        if best is None or gap < best[0]:
            best = (gap, (miss + fa) / 2)
    return best[1]


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_real, n_fake = rng.integers(20, 200, size=2)
    labels = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    scores = np.r_[rng.normal(0, 1, n_real), rng.normal(1.0, 1, n_fake)]
    eer, _ = compute_eer(labels, scores)
    assert eer == pytest.approx(brute_force_eer(labels, scores), abs=1e-12)


def test_eer_extremes_and_threshold():
    labels = np.array([0, 0, 0, 1, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    eer, thr = compute_eer(labels, perfect)
    assert eer == 0.0
    assert 0.3 < thr <= 0.7
    assert compute_eer(labels, 1 - perfect)[0] == 1.0


def test_summarize_counts_fake_as_positive():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.2, 0.6, 0.4, 0.9])
    s = summarize(labels, scores, threshold=0.5)
    assert s["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert s["accuracy"] == 0.5 and s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["n_real"] == 2 and s["n_fake"] == 2
    assert s["roc_auc"] == 0.75


def test_eer_by_group_uses_all_reals():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.9, 0.05])
    groups = np.array(["bonafide", "bonafide", "easy", "hard"])
    out = eer_by_group(labels, scores, groups)
    assert out["easy"] == 0.0
    assert out["hard"] == 1.0  # every real scores above this fake


def test_rejects_single_class_and_nan():
    with pytest.raises(ValueError, match="both"):
        compute_eer(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        compute_eer(np.array([0, 1]), np.array([0.1, np.nan]))
