"""lcnn.detector.train's loss: Config's focal_alpha / focal_gamma as the loss Keras minimises,
checked against the focal loss written out in numpy (Lin et al., 2017)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lcnn.config import Config
from lcnn.detector.train import focal_loss

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
