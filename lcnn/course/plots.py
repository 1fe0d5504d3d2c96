"""Figures for the course: learning curves, ROC / DET / PR curves, confusion matrix, score
distributions and the SincConv filter bank.

Every function takes plain data (numpy arrays, lists of dicts), returns a matplotlib Figure
and, given `path`, also saves it as a PNG. Figures are built with `matplotlib.figure.Figure`
rather than pyplot, so nothing is kept open behind the caller's back and the code runs the
same in a notebook, a test or a server. In a notebook, show a figure by making it the last
expression of a cell (or with `display(fig)`).

Scores are the model's raw output, higher = more FAKE (not a probability: see
lcnn.detector.calibration); the fake class is the positive one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import norm
from sklearn import metrics as skm

from lcnn import LABELS
from lcnn.io import atomic_path
from lcnn.metrics import compute_eer

SCORE_LABEL = "raw score (higher = more fake)"
DPI = 110
CLASS_COLORS = ("tab:blue", "tab:red")  # real, fake
# DET axes: rates from 0.1 % to 99.9 % on the normal-deviate scale, ticks in %
DET_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
DET_LIMITS = (0.001, 0.995)


def save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Save a figure as PNG atomically (temporary file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    return path


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        save(fig, path)
    return fig


def _as_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(labels).astype(int).ravel(), np.asarray(scores, dtype=float).ravel()


def _percent(x: float) -> str:
    return f"{100 * x:g}%"


# ------------------------------------------------------------------ training


def learning_curves(history_rows: Sequence[dict], path: str | Path | None = None) -> Figure:
    """Training loss and accuracy, and validation EER per epoch (best epoch marked).

    `history_rows` are the rows of a run's history.csv (`lcnn.detector.runs.read_history`): each has
    `epoch`, `loss` and `val_eer`, and usually `accuracy`.
    """
    if not history_rows:
        raise ValueError("learning_curves: the history is empty (no finished epoch)")
    epochs = [r["epoch"] for r in history_rows]
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_loss, ax_eer = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["loss"] for r in history_rows], "o-", label="training loss")
    ax_loss.set(xlabel="epoch", ylabel="focal loss", title="Training loss")
    if all("accuracy" in r for r in history_rows):
        ax_acc = ax_loss.twinx()
        ax_acc.plot(epochs, [r["accuracy"] for r in history_rows], "s--", color="tab:green",
                    label="training accuracy")
        ax_acc.set(ylabel="accuracy", ylim=(0, 1))
        lines = ax_loss.get_lines() + ax_acc.get_lines()
        ax_loss.legend(lines, [line.get_label() for line in lines], loc="center right")
    eer = [100 * r["val_eer"] for r in history_rows]
    best = int(np.argmin(eer))
    ax_eer.plot(epochs, eer, "o-", color="tab:red", label="validation EER")
    ax_eer.plot(epochs[best], eer[best], "*", color="k", markersize=14,
                label=f"best: epoch {epochs[best]:g}, {eer[best]:.1f}%")
    ax_eer.set(xlabel="epoch", ylabel="EER (%)", title="Validation EER (lower is better)",
               ylim=(0, max(55.0, max(eer) + 5)))
    ax_eer.axhline(50, color="grey", lw=0.8, ls=":")  # chance level
    ax_eer.legend(loc="best")
    for ax in (ax_loss, ax_eer):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, path)


# ------------------------------------------------------------------ detection curves


def roc_curve(labels, scores, path: str | Path | None = None) -> Figure:
    """ROC curve (scikit-learn) with its AUC: true-positive rate against false-positive rate,
    fake being the positive class."""
    labels, scores = _as_arrays(labels, scores)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    auc = skm.roc_auc_score(labels, scores)
    fig = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=2, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="chance (AUC = 0.5)")
    ax.set(xlabel="false-positive rate (real called fake)",
           ylabel="true-positive rate (fake caught)", title="ROC curve",
           xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def _deviate(p) -> np.ndarray:
    """Rates on the normal-deviate scale, clipped to the plotted range."""
    return norm.ppf(np.clip(p, *DET_LIMITS))


def plot_det(labels, scores, path: str | Path | None = None, threshold: float | None = None,
             ax=None) -> Figure:
    """DET curve as the field draws it: miss rate against false-alarm rate on normal-deviate
    axes (scipy's norm.ppf), ticks in %, the EER point marked, and the operating point of
    `threshold` when given. Draws into `ax` when given (e.g. one panel of a bigger figure).

    A miss is a fake scored below the threshold, a false alarm a real clip at or above it.
    Rates of 0 or 1 are drawn at the edge of the plotted range (0.1 % to 99.5 %).
    """
    labels, scores = _as_arrays(labels, scores)
    far, miss, _ = skm.det_curve(labels, scores)
    eer, eer_threshold = compute_eer(labels, scores)
    if ax is None:
        fig = Figure(figsize=(4.6, 4.4), layout="constrained")
        ax = fig.subplots()
    fig = ax.figure
    ax.plot(_deviate(far), _deviate(miss), lw=2, label="model")
    lims = _deviate(np.array(DET_LIMITS))
    ax.plot(lims, lims, ls=":", color="grey", lw=1, label="miss = false alarm")
    ax.plot(*_deviate([eer, eer]), "o", color="k",
            label=f"EER = {100 * eer:.2f}% (threshold {eer_threshold:.3f})")
    if threshold is not None:
        pred = scores >= threshold
        point = (np.mean(pred[labels == 0]), np.mean(~pred[labels == 1]))
        ax.plot(*_deviate(point), "s", color="tab:orange", ms=8,
                label=f"threshold {threshold:.3f}: FA {100 * point[0]:.1f}%, "
                      f"miss {100 * point[1]:.1f}%")
    ticks = _deviate(np.array(DET_TICKS))
    names = [_percent(t) for t in DET_TICKS]
    ax.set_xticks(ticks, names, rotation=45)
    ax.set_yticks(ticks, names)
    ax.set(xlim=lims, ylim=lims, aspect="equal", title="DET curve",
           xlabel="false-alarm rate (real called fake)", ylabel="miss rate (fake called real)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def pr_curve(labels, scores, path: str | Path | None = None) -> Figure:
    """Precision-recall curve for the fake class (scikit-learn) with its average precision."""
    labels, scores = _as_arrays(labels, scores)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    ap = skm.average_precision_score(labels, scores)
    prevalence = labels.mean()
    fig = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(recall, precision, lw=2, drawstyle="steps-post", label=f"model (AP = {ap:.3f})")
    ax.axhline(prevalence, ls="--", color="grey",
               label=f"chance (share of fakes = {prevalence:.2f})")
    ax.set(xlabel="recall (fakes caught)", ylabel="precision (flagged clips that are fake)",
           title="Precision-recall curve (fake = positive)", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def confusion_matrix(labels, scores, threshold: float = 0.5,
                     path: str | Path | None = None, ax=None) -> Figure:
    """Confusion matrix at a threshold (fake when score >= threshold): counts and % of the
    true class in each cell. Draws into `ax` when given."""
    labels, scores = _as_arrays(labels, scores)
    pred = (scores >= threshold).astype(int)
    counts = skm.confusion_matrix(labels, pred, labels=[0, 1])
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    if ax is None:
        fig = Figure(figsize=(4.4, 3.8), layout="constrained")
        ax = fig.subplots()
    fig = ax.figure
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{counts[i, j]}\n{100 * share[i, j]:.1f}%", ha="center",
                    va="center", fontsize=12, color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks([0, 1], list(LABELS))
    ax.set_yticks([0, 1], list(LABELS))
    ax.set(xlabel="predicted", ylabel="true",
           title=f"Confusion matrix (fake if score ≥ {threshold:.3g})")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _finish(fig, path)


# ------------------------------------------------------------------ scores


def score_distributions(labels, scores, threshold: float = 0.5, groups=None,
                        path: str | Path | None = None) -> Figure:
    """Where the scores fall, with the decision threshold marked.

    Without `groups`: a histogram per class (real, fake). With `groups` (one name per clip,
    e.g. the attack, "bonafide" for real clips): one row of dots per group, real first.
    """
    labels, scores = _as_arrays(labels, scores)
    if groups is None:
        fig = Figure(figsize=(6.4, 3.4), layout="constrained")
        ax = fig.subplots()
        bins = np.linspace(0, 1, 26)
        for cls, name in enumerate(LABELS):
            ax.hist(scores[labels == cls], bins=bins, alpha=0.6, color=CLASS_COLORS[cls],
                    label=f"{name} ({int((labels == cls).sum())} clips)")
        ax.set(ylabel="clips", title="Score distribution per class")
    else:
        groups = np.asarray(groups).astype(str).ravel()
        if groups.shape != scores.shape:
            raise ValueError(f"{groups.size} groups but {scores.size} scores")
        real_groups = sorted(set(groups[labels == 0]))
        names = real_groups + sorted(set(groups[labels == 1]) - set(real_groups))
        fig = Figure(figsize=(6.4, 0.9 + 0.42 * len(names)), layout="constrained")
        ax = fig.subplots()
        # a strip plot: one row of dots per group, jittered vertically so they do not hide
        # each other; coloured by the true class
        state = np.random.get_state()  # seaborn's jitter draws from numpy's global generator:
        np.random.seed(0)  # the same figure every time, and the caller's generator untouched
        try:
            sns.stripplot(x=scores, y=groups, hue=np.asarray(LABELS)[labels], order=names,
                          hue_order=list(LABELS), jitter=0.25, size=4, alpha=0.7, orient="h",
                          palette=dict(zip(LABELS, CLASS_COLORS, strict=True)), legend=False,
                          ax=ax)
        finally:
            np.random.set_state(state)
        ax.set(ylabel="", title="Scores per group (blue real, red fake)")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel=SCORE_LABEL, xlim=(-0.02, 1.02))
    ax.legend(loc="best")
    ax.grid(alpha=0.3, axis="x")
    return _finish(fig, path)


def reliability_diagram(labels, curves: dict[str, np.ndarray], n_bins: int = 10,
                        path: str | Path | None = None) -> Figure:
    """Reliability diagram: clips binned by the probability of fake a system states, against
    the share of fakes in each bin (marker area = clips in the bin). A calibrated system
    lies on the diagonal. `curves` maps a name to one stated probability per clip."""
    labels = np.asarray(labels).astype(int).ravel()
    edges = np.linspace(0, 1, n_bins + 1)
    fig = Figure(figsize=(4.8, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="calibrated")
    for name, probs in curves.items():
        probs = np.asarray(probs, dtype=float).ravel()
        bins = np.clip(np.digitize(probs, edges[1:-1]), 0, n_bins - 1)
        used = np.unique(bins)
        stated = np.array([probs[bins == b].mean() for b in used])
        observed = np.array([labels[bins == b].mean() for b in used])
        counts = np.array([np.sum(bins == b) for b in used])
        line, = ax.plot(stated, observed, "-", lw=1.5, label=name)
        ax.scatter(stated, observed, s=12 * counts, color=line.get_color(), alpha=0.6)
    ax.set(xlabel="stated probability of fake (bin mean)", ylabel="share of fakes in the bin",
           xlim=(0, 1), ylim=(-0.02, 1.02), aspect="equal", title="Reliability diagram")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def eer_breakdown(table: dict[str, dict], title: str = "EER per group",
                  path: str | Path | None = None) -> Figure:
    """EER of each group with its 95 % interval (the output of lcnn.metrics.breakdown), as
    horizontal error bars, best group at the top."""
    names = sorted(table, key=lambda k: table[k]["eer"])
    eer = np.array([100 * table[k]["eer"] for k in names])
    low = np.array([100 * table[k]["eer_ci95"][0] for k in names])
    high = np.array([100 * table[k]["eer_ci95"][1] for k in names])
    fig = Figure(figsize=(6.4, 0.9 + 0.36 * len(names)), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(names))
    ax.errorbar(eer, rows, xerr=[eer - low, high - eer], fmt="o", capsize=3)
    labels = [f"{k} ({table[k]['n_real']} real, {table[k]['n_fake']} fake)" for k in names]
    ax.set_yticks(rows, labels)
    ax.set(xlabel="EER % (95% bootstrap interval)", title=title, ylim=(len(names) - 0.5, -0.5),
           xlim=(-2, 102))
    ax.grid(alpha=0.3, axis="x")
    return _finish(fig, path)


# ------------------------------------------------------------------ SincConv front end


def plot_filter_bank(low_hz, high_hz, init_low_hz=None, init_high_hz=None,
                     sample_rate: int | None = None, path: str | Path | None = None) -> Figure:
    """The sinc filters as pass-bands, one row per filter sorted by centre frequency.

    Pass the initial cut-offs too to draw them underneath (grey) and see what training moved.
    """
    low, high = np.asarray(low_hz, float), np.asarray(high_hz, float)
    order = np.argsort((low + high) / 2)
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(low.size)
    compared = init_low_hz is not None and init_high_hz is not None
    if compared:
        i_low, i_high = np.asarray(init_low_hz, float), np.asarray(init_high_hz, float)
        # same row as the learned filter, so each band can be followed from start to end
        ax.hlines(rows, i_low[order], i_high[order], color="lightgrey", lw=4,
                  label="initial (mel-spaced)")
    # without initial cut-offs to compare with, these may be the initial ones themselves
    name = "learned" if compared else "pass-band"
    ax.hlines(rows, low[order], high[order], color="tab:purple", lw=1.6, label=name)
    top = sample_rate / 2 if sample_rate else max(high.max(), 1.0)
    ax.set(xlabel="frequency (Hz)",
           ylabel="filter (sorted by learned centre)" if compared else "filter (sorted by centre)",
           title="SincConv pass-bands", xlim=(0, top), ylim=(-1, low.size))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return _finish(fig, path)


def _gain_db(taps: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency response of one filter in dB relative to its peak."""
    from scipy.signal import freqz

    freq, response = freqz(taps, worN=1024, fs=sample_rate)
    gain = np.abs(response)
    return freq, 20 * np.log10(gain / gain.max() + 1e-9)


def filter_responses(taps, sample_rate: int, init_taps=None, max_filters: int = 8,
                     path: str | Path | None = None) -> Figure:
    """Magnitude responses of a few sinc filters, learned (solid) over initial (dashed).

    `taps` is `SincConv1D.filter_bank()`: [kernel_size, filters]. `max_filters` evenly spaced
    filters are drawn so the lines stay readable. Each response is shown relative to its own
    peak (0 dB): the shape and place of the pass-band matter here, not the gain.
    """
    taps = np.asarray(taps, float)
    picks = np.unique(np.linspace(0, taps.shape[1] - 1, min(max_filters, taps.shape[1]))
                      .round().astype(int))
    fig = Figure(figsize=(7.2, 3.6), layout="constrained")
    ax = fig.subplots()
    for i, k in enumerate(picks):
        color = f"C{i % 10}"
        ax.plot(*_gain_db(taps[:, k], sample_rate), color=color, lw=1.4, label=f"filter {k}")
        if init_taps is not None:
            ax.plot(*_gain_db(np.asarray(init_taps, float)[:, k], sample_rate), color=color,
                    lw=0.9, ls="--")
    title = "Sinc filter responses" + (" (dashed: initial)" if init_taps is not None else "")
    ax.set(xlabel="frequency (Hz)", ylabel="gain relative to peak (dB)",
           xlim=(0, sample_rate / 2), ylim=(-60, 3), title=title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    return _finish(fig, path)
