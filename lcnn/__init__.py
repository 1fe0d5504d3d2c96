"""lcnn: audio deepfake detection with a Light CNN on a learnable SincConv front end.

The model's raw score is a number in [0, 1], higher = more FAKE (spoofed); labels are 0 = real
(bona fide), 1 = fake. It is not a probability: lcnn.calibration maps it to a log-likelihood
ratio and a probability of fake. ASVspoof's score files use the opposite direction (higher =
more bona fide).
"""

__version__ = "0.1.0"

REAL, FAKE = 0, 1
LABELS = ("real", "fake")
