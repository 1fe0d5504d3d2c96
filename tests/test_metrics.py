import numpy as np
import pytest

from lcnn.metrics import (
    act_dcf,
    bayes_llr_threshold,
    bootstrap_ci,
    breakdown,
    cllr,
    compare_systems,
    compute_eer,
    eer_by_group,
    min_cllr,
    min_dcf,
    raw_llr,
    summarize,
)


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
    s = summarize(labels, scores, threshold=0.5, n_boot=20)
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


# ------------------------------------------------ ASVspoof 5 metrics against plain computations


def gaussian_scores(seed: int, n_real: int = 80, n_fake: int = 70, gap: float = 1.5):
    """Raw scores in (0, 1), higher = more fake, from two overlapping Gaussians."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    z = np.r_[rng.normal(0, 1, n_real), rng.normal(gap, 1, n_fake)]
    return labels, 1 / (1 + np.exp(-z))


def brute_force_min_dcf(labels, scores, p_spoof=0.05, c_miss=1.0, c_fa=10.0):
    """ASVspoof 5's minDCF written out: bona fide is the target, scores flipped so higher =
    bona fide, every threshold tried, cost normalised by the cheaper constant decision."""
    bona, spoof = -scores[labels == 0], -scores[labels == 1]
    best = np.inf
    for t in np.concatenate([np.unique(np.r_[bona, spoof]), [np.inf]]):
        p_miss = np.mean(bona < t)  # bona fide rejected
        p_fa = np.mean(spoof >= t)  # spoof accepted
        best = min(best, c_miss * (1 - p_spoof) * p_miss + c_fa * p_spoof * p_fa)
    return best / min(c_miss * (1 - p_spoof), c_fa * p_spoof)


@pytest.mark.parametrize("seed", range(4))
def test_min_dcf_matches_brute_force(seed):
    labels, scores = gaussian_scores(seed)
    assert min_dcf(labels, scores)[0] == pytest.approx(brute_force_min_dcf(labels, scores))
    # another operating point goes through the same code
    assert min_dcf(labels, scores, p_spoof=0.5, c_fa=1)[0] == pytest.approx(
        brute_force_min_dcf(labels, scores, p_spoof=0.5, c_fa=1))


def test_min_dcf_of_perfect_and_useless_scores():
    labels = np.array([0, 0, 1, 1])
    assert min_dcf(labels, np.array([0.1, 0.2, 0.8, 0.9]))[0] == 0.0
    assert min_dcf(labels, np.array([0.9, 0.8, 0.2, 0.1]))[0] == 1.0  # the default decision


def test_act_dcf_thresholds_llrs_at_minus_log_beta():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    llrs = rng.normal(0, 2, 300) + np.where(labels == 0, 1.0, -1.0)
    beta = 1 * (1 - 0.05) / (10 * 0.05)
    real_called_fake = [llr < -np.log(beta) for llr in llrs[labels == 0]]
    fake_called_real = [llr >= -np.log(beta) for llr in llrs[labels == 1]]
    p_miss = sum(real_called_fake) / len(real_called_fake)
    p_fa = sum(fake_called_real) / len(fake_called_real)
    expected = (0.95 * p_miss + 10 * 0.05 * p_fa) / min(0.95, 0.5)
    assert act_dcf(labels, llrs) == pytest.approx(expected)
    assert bayes_llr_threshold() == pytest.approx(-np.log(1.9))


def test_cllr_textbook_formula():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    llrs = rng.normal(0, 3, 200)
    real, fake = llrs[labels == 0], llrs[labels == 1]
    expected = 0.5 * (np.mean(np.log2(1 + np.exp(-real))) + np.mean(np.log2(1 + np.exp(fake))))
    assert cllr(labels, llrs) == pytest.approx(expected)
    assert cllr(labels, np.zeros(200)) == pytest.approx(1.0)  # no information costs one bit


@pytest.mark.parametrize("seed", range(3))
def test_min_cllr_matches_sklearn_isotonic(seed):
    from sklearn.isotonic import IsotonicRegression

    labels, scores = gaussian_scores(seed)
    scores = np.round(scores, 2)  # ties must be pooled the same way
    p_real = IsotonicRegression(increasing=False).fit_transform(scores, labels == 0)
    prior_odds = np.sum(labels == 0) / np.sum(labels == 1)
    with np.errstate(divide="ignore"):
        llrs = np.log(p_real) - np.log(1 - p_real) - np.log(prior_odds)
    real, fake = llrs[labels == 0], llrs[labels == 1]
    expected = 0.5 * (np.mean(np.log2(1 + np.exp(-real))) + np.mean(np.log2(1 + np.exp(fake))))
    assert min_cllr(labels, scores) == pytest.approx(expected)
    # no monotone calibration beats PAV on its own data
    assert min_cllr(labels, scores) <= cllr(labels, raw_llr(scores))


def test_grouped_bootstrap_of_duplicated_clips_equals_clip_bootstrap():
    """Each clip copied 3 times and the copies grouped: resampling groups must give the same
    interval as resampling the original clips (clip-level resampling would be too narrow)."""
    labels, scores = gaussian_scores(2, 40, 40)
    ci = bootstrap_ci(labels, scores, n_boot=200)
    dup = np.repeat(np.arange(labels.size), 3)
    grouped = bootstrap_ci(labels[dup], scores[dup], groups=dup, n_boot=200)
    naive = bootstrap_ci(labels[dup], scores[dup], n_boot=200)
    assert grouped == pytest.approx(ci)
    assert ci[0] <= compute_eer(labels, scores)[0] <= ci[1]
    assert naive[1] - naive[0] < grouped[1] - grouped[0]


def test_compare_systems_paired_bootstrap():
    labels, good = gaussian_scores(3, 60, 60, gap=3.0)
    _, poor = gaussian_scores(4, 60, 60, gap=0.3)
    same = compare_systems(labels, good, good, n_boot=200)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    differ = compare_systems(labels, poor, good, n_boot=200)
    assert differ["difference"] > 0 and differ["p_value"] < 0.01
    assert differ["difference_ci95"][0] > 0
    swapped = compare_systems(labels, good, poor, n_boot=200)
    assert swapped["difference"] == -differ["difference"]
    assert swapped["p_value"] == differ["p_value"]


def test_breakdown_scores_each_value_against_the_right_clips():
    labels, scores = gaussian_scores(5, 40, 40)
    attack = np.where(labels == 0, "bonafide", np.where(np.arange(80) % 2, "a", "b"))
    lang = np.where(np.arange(80) % 4 == 0, "fr", "en")
    by_attack = breakdown(labels, scores, attack, n_boot=50)
    assert set(by_attack) == {"a", "b"}  # "bonafide" would only repeat the pooled EER
    assert by_attack["a"]["eer"] == eer_by_group(labels, scores, attack)["a"]
    assert by_attack["a"]["n_real"] == 40
    by_lang = breakdown(labels, scores, lang, n_boot=50)
    fr = lang == "fr"
    assert by_lang["fr"]["eer"] == pytest.approx(brute_force_eer(labels[fr], scores[fr]))
    low, high = by_lang["fr"]["eer_ci95"]
    assert low <= by_lang["fr"]["eer"] <= high


def test_summarize_reports_the_asvspoof5_metrics():
    labels, scores = gaussian_scores(6)
    s = summarize(labels, scores, n_boot=100)
    assert s["min_dcf"] == pytest.approx(brute_force_min_dcf(labels, scores))
    assert s["cllr"] == s["cllr_uncalibrated"] == cllr(labels, raw_llr(scores))
    assert s["eer_ci95"][0] <= s["eer"] <= s["eer_ci95"][1]
    assert s["min_cllr"] <= s["cllr"]
