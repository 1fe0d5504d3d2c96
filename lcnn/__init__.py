"""lcnn: audio deepfake detection with a Light CNN on a learnable SincConv front end.

Scores are the model's probability that a clip is FAKE (spoofed): 0 = real (bona fide),
1 = fake. Note that ASVspoof's score files use the opposite direction (higher = more bona fide).
"""

from lcnn.runtime import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow: no C++ log lines (lcnn/runtime.py)

__version__ = "0.1.0"

REAL, FAKE = 0, 1
LABELS = ("real", "fake")
