"""Platt calibration: fitted as a textbook logistic regression would be, better Cllr on held-out
clips, the same EER, and stored in (and read back from) the run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize

from lcnn import metrics
from lcnn.detector import calibration, runs
from lcnn.detector.train import NEW_STATE


def focal_like_scores(seed: int, n: int = 300):
    """Raw scores squeezed towards the middle and shifted, as focal loss leaves them: the
    ranking is good, the values are not probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    z = rng.normal(0, 1, n) + 2.0 * labels
    return labels, 1 / (1 + np.exp(-(0.4 * z + 0.5)))


def test_fit_platt_minimises_the_weighted_log_loss():
    labels, scores = focal_like_scores(0)
    real = labels == 0
    x = np.log(scores / (1 - scores))
    target = np.where(real, (real.sum() + 1) / (real.sum() + 2), 1 / ((~real).sum() + 2))
    weight = np.where(real, 0.5 / real.sum(), 0.5 / (~real).sum())

    def loss(ab):  # cross-entropy of P(real) = sigmoid(a x + b) against Platt's targets
        z = ab[0] * x + ab[1]
        return np.sum(weight * (target * np.logaddexp(0, -z) + (1 - target) * np.logaddexp(0, z)))

    expected = minimize(loss, [0.0, 0.0], method="BFGS").x
    np.testing.assert_allclose(calibration.fit_platt(labels, scores), expected, atol=1e-3)


def test_calibration_improves_cllr_on_held_out_clips_and_keeps_the_eer():
    val_labels, val_scores = focal_like_scores(1)
    test_labels, test_scores = focal_like_scores(2)
    cal = calibration.fit(val_labels, val_scores)
    assert cal.a < 0  # higher raw score = more fake = lower LLR (bona fide vs spoof)
    llrs = cal.llr(test_scores)
    before = metrics.cllr(test_labels, metrics.raw_llr(test_scores))
    after = metrics.cllr(test_labels, llrs)
    assert after < before - 0.05
    assert after >= metrics.min_cllr(test_labels, test_scores)
    # a monotone map changes no ranking: the same EER (LLRs point the other way)
    assert metrics.compute_eer(test_labels, -llrs)[0] == pytest.approx(
        metrics.compute_eer(test_labels, test_scores)[0])
    assert metrics.act_dcf(test_labels, llrs) <= metrics.act_dcf(
        test_labels, metrics.raw_llr(test_scores))


def test_probability_and_thresholds_follow_the_llr():
    labels, scores = focal_like_scores(3)
    cal = calibration.fit(labels, scores)
    llrs = cal.llr(scores)
    # Bayes' rule written out: posterior odds of fake = prior odds / likelihood ratio
    for prior in (0.5, 0.05):
        odds = prior / (1 - prior) * np.exp(-llrs)
        np.testing.assert_allclose(cal.p_fake(scores, prior), odds / (1 + odds))
    bayes = cal.thresholds["asvspoof5"]["score"]
    assert cal.llr(np.array([bayes]))[0] == pytest.approx(metrics.bayes_llr_threshold())
    # called fake at the stored threshold <=> the LLR is below the Bayes threshold
    np.testing.assert_array_equal(scores >= bayes, llrs < metrics.bayes_llr_threshold() + 1e-9)
    assert cal.thresholds["eer"]["score"] == metrics.compute_eer(labels, scores)[1]


def test_run_folder_round_trip_and_old_runs(tmp_path):
    labels, scores = focal_like_scores(4, 100)
    old = tmp_path / "old"
    old.mkdir()
    assert calibration.for_run(old)[0] is None  # nothing to calibrate on: a note, no error
    # a run written before the score column was renamed
    rows = ["file\tp_fake\tlabel"] + [f"c{i}.wav\t{s:.6f}\t{'fake' if y else 'real'}"
                                      for i, (s, y) in enumerate(zip(scores, labels, strict=True))]
    (old / runs.VALIDATION_SCORES).write_text("\n".join(rows) + "\n")
    cal, note = calibration.for_run(old)
    assert "fitted it now" in note
    stored = json.loads((old / runs.CALIBRATION).read_text())
    assert stored["a"] == cal.a and "bona fide vs spoof" in stored["llr"]
    again, note = calibration.for_run(old)
    assert note == "" and again == cal


def _write_validation_scores(run_dir, labels, scores) -> None:
    rows = ["file\tscore\tlabel"] + [f"c{i}.wav\t{s:.9g}\t{'fake' if y else 'real'}"
                                     for i, (s, y) in enumerate(zip(scores, labels, strict=True))]
    (run_dir / runs.VALIDATION_SCORES).write_text("\n".join(rows) + "\n")


def test_a_calibration_of_an_earlier_best_epoch_is_fitted_again(tmp_path):
    """predict calibrates a run while it trains (best epoch 3); training finds a better epoch
    (7), writes its scores, and is killed before it refits: the next reader refits."""
    labels, scores = focal_like_scores(7, 200)
    runs.write_json(tmp_path / runs.STATE, {**NEW_STATE, "epoch": 3, "best_epoch": 3})
    _write_validation_scores(tmp_path, labels, scores)
    early, note = calibration.for_run(tmp_path)
    assert early.best_epoch == 3 and "fitted it now" in note
    later = np.clip(scores ** 3, 1e-6, 1)  # another model's scores: another threshold
    _write_validation_scores(tmp_path, labels, later)
    runs.write_json(tmp_path / runs.STATE, {**NEW_STATE, "epoch": 7, "best_epoch": 7})
    cal, note = calibration.for_run(tmp_path)
    assert "fitted on best epoch 3, the run's best is now epoch 7" in note
    assert cal.best_epoch == 7 and cal.thresholds["eer"]["score"] == pytest.approx(
        metrics.compute_eer(labels, later)[1])
    assert calibration.for_run(tmp_path) == (cal, "")  # saved: read as it is from now on


def test_no_bayes_threshold_when_scores_do_not_rise_with_fakeness():
    labels, scores = focal_like_scores(5)
    cal = calibration.fit(labels, 1 - scores)  # a model that learned it backwards
    assert cal.a > 0 and cal.thresholds["asvspoof5"]["score"] is None
    assert calibration.decision_threshold(cal) == (cal.thresholds["eer"]["score"],
                                                   cal.thresholds["eer"]["source"])
    assert calibration.decision_threshold(None)[0] == 0.5
    assert calibration.decision_threshold(cal, 0.7)[0] == 0.7


def test_read_only_old_run_is_calibrated_without_saving(tmp_path, monkeypatch):
    labels, scores = focal_like_scores(6, 60)
    _write_validation_scores(tmp_path, labels, scores)

    def read_only(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(calibration, "save", read_only)
    cal, note = calibration.for_run(tmp_path)
    assert "not saved: Permission denied" in note
    assert not (tmp_path / runs.CALIBRATION).exists()
    assert cal.a == pytest.approx(calibration.fit_platt(labels, scores)[0])


def _gaussian_systems(rng, n: int, means: list[float]):
    """Labels and one raw score per system: logit(score) ~ N(+m, 1) for fakes, N(-m, 1) for
    real clips, independent given the class. The exact LLR (bona fide vs spoof) is then
    sum_k -2 m_k logit(s_k): the weights a fusion should find."""
    labels = rng.integers(0, 2, n)
    sign = 2 * labels - 1
    return labels, [1 / (1 + np.exp(-(m * sign + rng.normal(0, 1, n)))) for m in means]


def test_fusion_finds_the_exact_llr_of_independent_gaussian_systems():
    labels, scores = _gaussian_systems(np.random.default_rng(0), 40_000, [1.0, 0.5])
    x = np.column_stack([calibration.logit(s) for s in scores])
    weights, b = calibration.fit_linear_llr(labels, x)
    np.testing.assert_allclose(weights, [-2.0, -1.0], atol=0.05)
    assert abs(b) < 0.05
    # one system: the fusion is Platt scaling
    np.testing.assert_allclose(calibration.fit_linear_llr(labels, x[:, :1])[0][0],
                               calibration.fit_platt(labels, scores[0])[0])


def _write_scores(path, files, labels, scores):
    rows = ["file\tlabel\tscore"] + [f"{f}\t{'fake' if y else 'real'}\t{s}"
                                     for f, y, s in zip(files, labels, scores, strict=True)]
    path.write_text("\n".join(rows) + "\n")


def test_fuse_runs_aligns_files_and_beats_each_system(tmp_path):
    rng = np.random.default_rng(1)
    dirs = [tmp_path / "a", tmp_path / "b"]
    for split, n in (("validation", 400), ("testing", 600)):
        labels, scores = _gaussian_systems(rng, n, [0.8, 0.8])
        files = [f"clip{i}.flac" for i in range(n)]
        for d, s, order in zip(dirs, scores, (np.arange(n), rng.permutation(n)), strict=True):
            d.mkdir(exist_ok=True)
            _write_scores(d / f"scores-{split}.tsv", np.array(files)[order], labels[order],
                          s[order])
    fusion, files, labels, llr = calibration.fuse_runs(dirs)
    assert files == [f"clip{i}.flac" for i in range(600)]  # the first run's order, matched
    eers = [metrics.compute_eer(labels, s)[0] for s in scores]  # testing scores, file order
    assert metrics.compute_eer(labels, -llr)[0] < min(eers) - 0.03
    (dirs[1] / "scores-testing.tsv").unlink()
    with pytest.raises(calibration.runs.RunError, match="b: no scores-testing.tsv"):
        calibration.fuse_runs(dirs)


@pytest.mark.parametrize("text", ['{"a": 1', '{"a": -1.5}', '[1, 2]', '{"a": "x", "b": 0}'])
def test_a_damaged_calibration_file_is_one_error_naming_it(tmp_path, text):
    (tmp_path / runs.CALIBRATION).write_text(text)
    with pytest.raises(calibration.runs.RunError,
                       match=r"calibration\.json: damaged calibration"):
        calibration.load(tmp_path)
