"""The detector: layers, model, input pipeline, training, evaluation, scoring and export.

Everything here works on the pieces in the package root (config, dataset, audio, metrics,
errors, io, runtime) and never imports from lcnn.app or lcnn.course.
"""
