"""lcnn: audio deepfake detection with a Light CNN on a learnable SincConv front end.

Three layers, each importing only from the ones below it:

- ``lcnn.course``   the notebooks' helpers: paths, widgets, plots;
- ``lcnn.app``      the command line and the dataset downloader;
- ``lcnn.detector`` layers, model, input pipeline, training, evaluation, scoring, export;
- the package root: ``config``, ``dataset`` (which files and labels a dataset has), ``audio``,
  ``metrics``, ``augment`` and ``channels`` (signal processing), ``errors``, ``io`` (atomic
  writes) and ``runtime`` (TensorFlow threads).

The model's raw score is a number in [0, 1], higher = more FAKE (spoofed); labels are 0 = real
(bona fide), 1 = fake. It is not a probability: lcnn.detector.calibration maps it to a
log-likelihood ratio and a probability of fake. ASVspoof's score files use the opposite
direction (higher = more bona fide).
"""

from lcnn.runtime import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow: no C++ log lines (lcnn/runtime.py)

__version__ = "0.1.0"

REAL, FAKE = 0, 1
LABELS = ("real", "fake")
