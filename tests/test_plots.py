"""The figures module: each plot draws the expected axes and lines and saves a real PNG."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.stats import norm

from lcnn.course import plots
from lcnn.detector.layers import SincConv1D
from lcnn.metrics import compute_eer


@pytest.fixture(scope="module")
def labels_scores():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0, 1)
    return labels, scores


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, labels_scores):
    fig = plots.roc_curve(*labels_scores)
    out = plots.save(fig, tmp_path / "sub" / "roc.png")
    assert _is_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["roc.png"]


def test_learning_curves_marks_best_epoch(tmp_path):
    rows = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + 0.1 * e, "val_eer": eer}
            for e, eer in zip([1, 2, 3], [0.4, 0.2, 0.3], strict=True)]
    fig = plots.learning_curves(rows, tmp_path / "lc.png")
    assert _is_png(tmp_path / "lc.png")
    ax_loss, ax_eer = fig.axes[:2]
    assert list(ax_loss.get_lines()[0].get_ydata()) == [1.0, 0.5, pytest.approx(1 / 3)]
    best = [line for line in ax_eer.get_lines() if "best" in line.get_label()][0]
    assert best.get_xdata()[0] == 2 and best.get_ydata()[0] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="empty"):
        plots.learning_curves([])


def test_roc_and_pr_curves_use_the_data(tmp_path, labels_scores):
    labels, scores = labels_scores
    roc = plots.roc_curve(labels, scores, tmp_path / "roc.png")
    model_line = roc.axes[0].get_lines()[0]
    assert model_line.get_xdata()[0] == 0 and model_line.get_xdata()[-1] == 1
    assert f"{np.mean(scores[labels == 1][:, None] > scores[labels == 0]):.3f}" in \
        model_line.get_label()  # AUC = P(fake scores above real), no ties here
    pr = plots.pr_curve(labels, scores, tmp_path / "pr.png")
    assert "AP = " in pr.axes[0].get_lines()[0].get_label()
    assert _is_png(tmp_path / "roc.png") and _is_png(tmp_path / "pr.png")


def test_plot_det_uses_normal_deviates_and_marks_eer(tmp_path, labels_scores):
    labels, scores = labels_scores
    fig = plots.plot_det(labels, scores, tmp_path / "det.png")
    ax = fig.axes[0]
    eer, _ = compute_eer(labels, scores)
    point = [line for line in ax.get_lines() if line.get_label().startswith("EER")][0]
    assert point.get_xdata()[0] == pytest.approx(norm.ppf(eer))
    assert f"{100 * eer:.2f}%" in point.get_label()
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["0.1%", "1%", "5%"]
    assert ax.get_xticks()[1] == pytest.approx(norm.ppf(0.01))
    # the curve is finite even where a rate is 0 or 1
    assert np.all(np.isfinite(ax.get_lines()[0].get_xydata()))
    assert _is_png(tmp_path / "det.png")


def test_confusion_matrix_counts(tmp_path):
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.9, 0.8, 0.4])
    fig = plots.confusion_matrix(labels, scores, threshold=0.5, path=tmp_path / "cm.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    # rows true real / fake, columns predicted real / fake
    assert texts == ["2\n66.7%", "1\n33.3%", "1\n50.0%", "1\n50.0%"]
    assert _is_png(tmp_path / "cm.png")


def test_score_distributions_per_class_and_per_group(tmp_path, labels_scores):
    labels, scores = labels_scores
    fig = plots.score_distributions(labels, scores, threshold=0.4, path=tmp_path / "d.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == plots.SCORE_LABEL == "raw score (higher = more fake)"
    assert ax.get_lines()[0].get_xdata()[0] == 0.4  # the threshold
    assert sum(p.get_height() for p in ax.patches) == len(scores)
    groups = np.where(labels == 0, "bonafide", np.where(np.arange(100) % 2, "tts", "vocoder"))
    fig = plots.score_distributions(labels, scores, groups=groups, path=tmp_path / "g.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bonafide", "tts", "vocoder"]
    assert [len(c.get_offsets()) for c in ax.collections] == [50, 25, 25]
    assert _is_png(tmp_path / "d.png") and _is_png(tmp_path / "g.png")
    with pytest.raises(ValueError, match="groups"):
        plots.score_distributions(labels, scores, groups=groups[:10])


def test_filter_plots_from_a_sinc_layer(tmp_path):
    layer = SincConv1D(8, 129, sample_rate=16000)
    layer.build((None, 400, 1))
    low, high = layer.cutoffs_hz()
    fig = plots.plot_filter_bank(low, high, low, high * 1.1, sample_rate=16000,
                                 path=tmp_path / "bands.png")
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # initial and learned bands
    assert ax.get_xlim() == (0, 8000)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["initial (mel-spaced)",
                                                                   "learned"]
    alone = plots.plot_filter_bank(low, high).axes[0]  # the bank before training: not "learned"
    assert [t.get_text() for t in alone.get_legend().get_texts()] == ["pass-band"]
    assert "learned" not in alone.get_ylabel()
    fig = plots.filter_responses(layer.filter_bank(), 16000, init_taps=layer.filter_bank(),
                                 max_filters=4, path=tmp_path / "resp.png")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 8  # 4 filters, learned and initial
    # a band-pass is loudest inside its band: check the last drawn filter (the widest)
    freq, gain = lines[-2].get_xdata(), lines[-2].get_ydata()
    assert low[-1] <= freq[np.argmax(gain)] <= high[-1]
    assert _is_png(tmp_path / "bands.png") and _is_png(tmp_path / "resp.png")


def test_plot_det_marks_the_operating_point_of_a_threshold(labels_scores):
    labels, scores = labels_scores
    fig = plots.plot_det(labels, scores, threshold=0.5)
    point = [line for line in fig.axes[0].get_lines()
             if line.get_label().startswith("threshold")][0]
    false_alarm = np.sum((scores >= 0.5) & (labels == 0)) / np.sum(labels == 0)
    miss = np.sum((scores < 0.5) & (labels == 1)) / np.sum(labels == 1)
    assert point.get_xdata()[0] == pytest.approx(norm.ppf(false_alarm))
    assert point.get_ydata()[0] == pytest.approx(norm.ppf(miss))


def test_reliability_diagram_bins_stated_against_observed(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    stated = np.array([0.05, 0.08, 0.02, 0.55, 0.58, 0.52, 0.95, 0.91])
    fig = plots.reliability_diagram(labels, {"system": stated}, n_bins=10,
                                    path=tmp_path / "rel.png")
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "system"][0]
    # bins [0, 0.1), [0.5, 0.6), [0.9, 1]: mean stated vs share of fakes, written out
    np.testing.assert_allclose(line.get_xdata(), [0.05, 0.55, 0.93])
    np.testing.assert_allclose(line.get_ydata(), [1 / 3, 2 / 3, 1.0])
    assert _is_png(tmp_path / "rel.png")


def test_eer_breakdown_draws_each_group_with_its_interval():
    table = {"a": {"eer": 0.3, "eer_ci95": [0.1, 0.5], "n_real": 10, "n_fake": 5},
             "b": {"eer": 0.1, "eer_ci95": [0.0, 0.2], "n_real": 10, "n_fake": 5}}
    fig = plots.eer_breakdown(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b (10 real, 5 fake)",
                                                            "a (10 real, 5 fake)"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [10, 30])
