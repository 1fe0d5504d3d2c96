"""lcnn's training step: one step for every tf.distribute strategy (lcnn.detector.distribute).

Keras 3's `model.fit` cannot train under `MultiWorkerMirroredStrategy` (keras-team/keras#20585)
and, under `MirroredStrategy`, its optimizer clips each replica's gradient before the replicas'
gradients are summed. `TrainStep` does what `model.fit` does on one device, under any strategy:

- each replica computes the focal loss of its share of the global batch clip by clip, weights
  each clip by its class weight, and divides the sum by the size of the whole global batch
  (`tf.nn.compute_average_loss`): summed over the replicas, that is one device's mean;
- the replicas' gradients are summed (one all-reduce), and only then does the Keras optimizer
  of `compile_model` apply them, once, outside the replicas: its clipping (`clipnorm`, the
  norm of each weight's gradient) and its learning-rate schedule see the gradient of the
  global batch, as on one device;
- the training metrics are those `model.fit` reports: the loss (class-weighted, as minimised),
  accuracy and AUC (not weighted: compile_model passes them as `metrics`, not as
  `weighted_metrics`), computed on every replica's predictions gathered, so they describe
  the global batch.

With the default strategy (`auto`) a step is the one `model.fit` takes (tests/test_train.py
compares them).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SUM = tf.distribute.ReduceOp.SUM


class TrainStep:
    """One optimisation step on a global batch, under `strategy`; keeps the epoch's metrics.

    `model` was built and compiled (`lcnn.detector.train.compile_model`) in strategy.scope();
    `loss` is a Keras loss (built here without reduction: one value per clip); `class_weights`
    maps label -> weight, or None. Call it with an element of
    `strategy.experimental_distribute_dataset(...)`: a batch `(x [B, n], y [B])`.
    """

    def __init__(self, model, strategy, loss, class_weights: dict[int, float] | None):
        import keras

        self.model, self.strategy = model, strategy
        config = {**loss.get_config(), "reduction": None}
        self.loss = type(loss).from_config(config)
        self.weights = None if class_weights is None else tf.constant(
            [class_weights.get(label, 1.0) for label in (0, 1)], tf.float32)
        # made outside strategy.scope(): plain variables, updated with the gathered global
        # batch and read without collectives
        self.metrics = {"accuracy": keras.metrics.BinaryAccuracy(name="accuracy"),
                        "auc": keras.metrics.AUC(name="auc"),
                        "loss": keras.metrics.Mean(name="loss")}
        self._step = tf.function(self._global_step)

    def _weights_of(self, y: tf.Tensor) -> tf.Tensor:
        if self.weights is None:
            return tf.ones_like(y)
        return tf.gather(self.weights, tf.cast(y, tf.int32))

    def _replica_step(self, x: tf.Tensor, y: tf.Tensor):
        """A replica's share: its gradient summed with every other replica's, its loss share
        (sum over its clips / global batch size), its predictions and labels."""
        context = tf.distribute.get_replica_context()
        # the clips in this global batch: cfg.batch_size, except in an epoch's last batch
        clips = context.all_reduce(SUM, tf.shape(y, out_type=tf.int64)[0])
        weight = self._weights_of(y)
        with tf.GradientTape() as tape:
            p = self.model(x, training=True)
            per_clip = self.loss(y[:, None], p) * weight
            loss = tf.nn.compute_average_loss(per_clip, global_batch_size=clips)
            if self.model.losses:  # weight penalties, if a model has any: once per global batch
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        gradients = tape.gradient(loss, self.model.trainable_variables)
        return context.all_reduce(SUM, gradients), loss, p, y

    def _global_step(self, batch):
        gradients, loss, p, y = self.strategy.run(self._replica_step, args=batch)
        # every replica holds the same sum; the optimizer applies it once, to every copy
        gradients = self.strategy.experimental_local_results(gradients)[0]
        self.model.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables,
                                                 strict=True))
        loss = self.strategy.reduce(SUM, loss, axis=None)
        p, y = self.strategy.gather(p, axis=0), self.strategy.gather(y, axis=0)
        self.metrics["loss"].update_state(loss, sample_weight=tf.shape(y)[0])
        for name in ("accuracy", "auc"):
            self.metrics[name].update_state(y[:, None], p)
        return loss

    def __call__(self, batch) -> tf.Tensor:
        """Train on one distributed batch; returns the batch's loss."""
        return self._step(batch)

    def reset(self) -> None:
        """Start an epoch's metrics afresh."""
        for metric in self.metrics.values():
            metric.reset_state()

    def results(self) -> dict[str, float]:
        """The epoch's metrics so far: accuracy, auc, loss (the order history.csv keeps)."""
        return {name: float(metric.result()) for name, metric in self.metrics.items()}


def scorer(model):
    """A function: dataset -> raw scores of its clips (np.ndarray), computed on this worker
    alone, without collectives (under multiworker every worker scores the whole validation
    split with the same weights). Compiled once, reused every epoch."""
    score = tf.function(lambda x: model(x, training=False))
    return lambda dataset: np.concatenate(
        [np.asarray(score(x)).reshape(-1) for x, _ in dataset])


def distributed(strategy, dataset):
    """`dataset` split over the replicas (and workers) of strategy: each global batch is cut
    into one piece per replica; under multiworker each worker keeps its replicas' pieces."""
    options = tf.data.Options()
    # each worker reads the global batches in the same order and keeps its share: the union of
    # the workers' pieces is the batch one device would see
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
