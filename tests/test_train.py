"""lcnn.detector.train's loss: Config's focal_alpha / focal_gamma as the loss Keras minimises,
checked against the focal loss written out in numpy (Lin et al., 2017)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

from lcnn.config import Config
from lcnn.detector.train import compile_model, focal_loss, train

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 2, (64, 1)).astype("float32")
P = RNG.uniform(0.02, 0.98, (64, 1)).astype("float32")


def reference(y: np.ndarray, p: np.ndarray, gamma: float, alpha: float | None) -> float:
    """Mean of -alpha_t (1 - p_t)^gamma log(p_t); alpha_t = alpha for fakes (y = 1), 1 - alpha
    for real clips, and 1 for both without alpha."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = 1.0 if alpha is None else np.where(y == 1, alpha, 1 - alpha)
    return float(np.mean(-alpha_t * (1 - p_t) ** gamma * np.log(p_t)))


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (2.0, 0.25), (0.5, 0.75), (0.0, 0.4)])
def test_focal_loss_is_the_formula(gamma, alpha):
    loss = focal_loss(Config(focal_gamma=gamma, focal_alpha=alpha))
    assert float(loss(Y, P)) == pytest.approx(reference(Y, P, gamma, alpha), rel=1e-5)


def test_gamma_0_without_alpha_is_plain_cross_entropy():
    loss = focal_loss(Config(focal_gamma=0.0, focal_alpha=None))
    bce = -np.mean(Y * np.log(P.astype(np.float64)) + (1 - Y) * np.log(1 - P.astype(np.float64)))
    assert float(loss(Y, P)) == pytest.approx(bce, rel=1e-5)
    assert float(loss(Y, P)) == pytest.approx(float(keras.losses.BinaryCrossentropy()(Y, P)),
                                              rel=1e-5)


def test_the_default_down_weights_easy_clips():
    """Config's default (gamma 2, no alpha): a confident right answer costs far less than under
    cross-entropy, a confident wrong one about as much."""
    loss, bce = focal_loss(Config()), keras.losses.BinaryCrossentropy()
    y = np.array([[1.0]], dtype="float32")
    easy, hard = np.array([[0.95]], dtype="float32"), np.array([[0.05]], dtype="float32")
    assert float(loss(y, easy)) == pytest.approx(0.05**2 * float(bce(y, easy)), rel=1e-4)
    assert float(loss(y, hard)) == pytest.approx(0.95**2 * float(bce(y, hard)), rel=1e-4)


# ---------------------------------------------------------------- the training loop


def tiny_list(root: Path, n_train: int = 16, n_fake: int = 10) -> Path:
    """A CSV list of 0.5-s clips: n_train training clips (n_fake of them fake: tones; the rest
    real: noise), so the class weights are not 1, and 8 validation clips."""
    rows = ["path,label,split"]
    for split, n, fakes in (("train", n_train, n_fake), ("dev", 8, 4)):
        for i in range(n):
            fake = i < fakes
            rng = np.random.default_rng([i, n])
            x = (np.sin(np.linspace(0, 200 + 30 * i, 8000)) + 0.1 * rng.standard_normal(8000)
                 if fake else rng.standard_normal(8000))
            path = root / split / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.3 * x / np.abs(x).max(), 16000)
            rows.append(f"{split}/{i}.wav,{'fake' if fake else 'real'},{split}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


# Small enough for seconds per epoch; batch 6 over 16 clips leaves a last batch of 4; clipnorm
# 0.05 clips every weight's gradient (their norms start at 0.07 to 8); a learning rate low
# enough that the loss stays far from 0 (where float error is large relative to it); no
# dropout or augmentation, so the reference sees the very same network and batches.
TINY = Config(duration=0.5, sinc_filters=16, epochs=3, batch_size=6, threads=1, dropout=0.0,
              augment_shift=False, augment_gain=False, patience=5, clipnorm=0.05,
              learning_rate=1e-4)


def fit_reference(data_path: Path, cfg: Config) -> list[dict]:
    """What train() did before it had its own loop: the same model (cfg.seed), compiled by
    compile_model, trained by Keras' model.fit on the batches make_dataset gives for each
    epoch (seed cfg.seed + epoch), with class weights. Per epoch: metrics, weights, scores."""
    from lcnn.detector import data
    from lcnn.detector.model import build_model

    clips = {split: data.load_split(data_path, split, cfg, progress=False)
             for split in ("training", "validation")}
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg)
    steps = int(np.ceil(len(clips["training"]) / cfg.batch_size))
    compile_model(model, cfg, steps)
    weights = data.class_weights(clips["training"].labels)
    val_ds = data.make_dataset(clips["validation"], cfg, training=False)
    epochs = []
    for epoch in range(cfg.epochs):
        ds = data.make_dataset(clips["training"], cfg, training=True, seed=cfg.seed + epoch)
        logs = model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, class_weight=weights,
                         shuffle=False, verbose=0).history
        epochs.append({"logs": {k: v[0] for k, v in logs.items()},
                       "weights": model.get_weights(),
                       "scores": model.predict(val_ds, verbose=0).reshape(-1)})
    return epochs


def history(run: Path) -> list[dict]:
    from lcnn.detector import runs

    return runs.read_history(run / runs.HISTORY)


def test_the_training_loop_trains_as_model_fit(tmp_path):
    """strategy auto: lcnn's own step gives model.fit's losses, metrics, weights and scores."""
    from lcnn.detector import runs

    data_path = tiny_list(tmp_path / "data")
    reference = fit_reference(data_path, TINY)
    state = train(data_path, tmp_path / "run", TINY, verbose=0)
    rows = history(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, ref in zip(rows, reference, strict=True):
        for name in ("loss", "accuracy", "auc"):
            assert row[name] == pytest.approx(ref["logs"][name], rel=1e-4, abs=1e-6), name
    best = reference[state["best_epoch"] - 1]
    model = runs.load_model(tmp_path / "run")
    for ours, theirs in zip(model.get_weights(), best["weights"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)
    scores = np.loadtxt(tmp_path / "run" / "scores-validation.tsv", skiprows=1, usecols=1,
                        dtype=float, delimiter="\t")
    np.testing.assert_allclose(scores, best["scores"], rtol=1e-3, atol=1e-5)
