"""Training: focal loss, class weights, Adam with clipping and a cosine schedule, early stopping
on the validation EER, and a run folder that survives being killed (run the same command again
and training resumes after the last finished epoch)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from lcnn.config import BEFORE_FIELD, Config, canonical_model
from lcnn.dataset import DataSource, data_spec, open_source
from lcnn.detector import distribute, runs
from lcnn.detector.calibration import calibrate_run
from lcnn.detector.predict import predict_scores
from lcnn.errors import DivergedError, LcnnError
from lcnn.runtime import set_threads


def focal_loss(cfg: Config):
    """Binary focal loss (Lin et al., 2017) from Keras: FL = -alpha_t (1 - p_t)^gamma log(p_t)."""
    import keras

    return keras.losses.BinaryFocalCrossentropy(
        gamma=cfg.focal_gamma,
        apply_class_balancing=cfg.focal_alpha is not None,
        alpha=cfg.focal_alpha if cfg.focal_alpha is not None else 0.25,
    )


def compile_model(model, cfg: Config, steps_per_epoch: int) -> None:
    """Adam with gradient-norm clipping and a cosine-decaying learning rate."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=max(1, cfg.epochs * steps_per_epoch), alpha=0.05
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=cfg.clipnorm),
        loss=focal_loss(cfg),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )


def _make_keeper(run_dir: Path, val_ds, val_clips, state: dict, patience: int):
    import keras

    from lcnn.metrics import compute_eer

    class RunKeeper(keras.callbacks.Callback):
        """After each epoch: validation EER, history, best and last model, early stopping.

        Keras' own EarlyStopping and ModelCheckpoint keep their state in memory only; this
        keeps it in state.json next to the checkpoints, so a resumed run stops at the same
        point as an uninterrupted one.
        """

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            seconds = time.perf_counter() - self._t0
            scores = predict_scores(self.model, val_ds)
            if not np.all(np.isfinite(scores)):  # diverged: this epoch's weights are useless
                raise DivergedError(
                    f"training diverged in epoch {epoch + 1} (the model's outputs are NaN or "
                    f"inf); {run_dir} keeps the last good epoch: train again with a lower "
                    "--learning_rate (--overwrite), or --resume to retry from that epoch")
            eer, _ = compute_eer(val_clips.labels, scores)
            logs["val_eer"] = eer
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                   "learning_rate": float(self.model.optimizer.learning_rate),
                   "seconds": seconds}
            history = runs.read_history(run_dir / runs.HISTORY)
            history = [r for r in history if r["epoch"] < epoch + 1] + [row]
            runs.write_history(run_dir / runs.HISTORY, history)
            if state["best_eer"] is None or eer < state["best_eer"]:
                state.update(best_eer=eer, best_epoch=epoch + 1, wait=0)
                runs.atomic_save_model(self.model, run_dir / runs.BEST)
                runs.write_scores(run_dir / "scores-validation.tsv", val_clips.files, scores,
                                  val_clips.labels)
            else:
                state["wait"] += 1
            runs.atomic_save_model(self.model, run_dir / runs.LAST)
            state["epoch"] = epoch + 1
            if state["wait"] >= max(patience, 1):  # 0: stop at the first epoch not better
                state["stopped_early"] = True
                self.model.stop_training = True
            # state.json last: if we die before this line, the epoch is simply redone
            runs.write_json(run_dir / runs.STATE, state)

    return RunKeeper()


NEW_STATE = {"epoch": 0, "best_eer": None, "best_epoch": 0, "wait": 0, "stopped_early": False,
             "finished": False}


def _changed_settings(saved: dict, cfg: Config, data: dict) -> list[str]:
    """Settings of a saved run (config.json) that differ from cfg and the dataset `data` (a
    data_spec). Runtime options (threads) may differ; datasets are compared as data_spec
    describes them (absolute paths), so an older run's data_path string compares too; an old
    model name is read as the one it stands for (lcnn.config.MODEL_ALIASES), and a field the
    run predates as lcnn.config.BEFORE_FIELD gives it."""
    saved = {**BEFORE_FIELD, **saved, "model": canonical_model(saved.get("model"))}
    changed = [k for k, v in cfg.identity().items() if saved.get(k) != v]
    try:
        same_data = runs.saved_data(saved, Path(runs.CONFIG)) == data
    except runs.RunError:
        same_data = False
    if not same_data:
        changed.append("data")
    return sorted(changed)


def _saved_state(run_dir: Path, cfg: Config, data: dict) -> dict | None:
    """The progress of the same run in run_dir, or None when a new run may start there.

    Raises an LcnnError, touching nothing, if run_dir is not a folder, holds files lcnn did
    not write, or holds a run with other settings that has trained at least one epoch.
    """
    if not run_dir.exists():
        return None
    if not run_dir.is_dir():
        raise runs.RunError(f"{run_dir}: is a file, not a folder; --run_dir names a folder")
    if not ((run_dir / runs.CONFIG).exists() and (run_dir / runs.STATE).exists()):
        foreign = runs.foreign_entries(run_dir)
        if foreign:
            raise runs.RunError(
                f"{run_dir}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}"
                ", which lcnn did not write; a new run needs a new or empty folder: "
                "pick another --run_dir")
        return None
    saved = runs.read_json_object(run_dir / runs.CONFIG, "run settings")
    state = runs.load_state(run_dir)
    changed = _changed_settings(saved, cfg, data)
    if not changed:
        return state
    if state["epoch"] == 0:  # nothing trained yet (e.g. killed in its first epoch): start anew
        return None
    raise LcnnError(
        f"{run_dir} holds a run with other settings ({', '.join(changed)} differ); "
        "use another --run_dir, --resume to continue it as it was, "
        "or --overwrite to start over")


def _start_or_resume(run_dir: Path, cfg: Config, data: str | Path | dict,
                     overwrite: bool) -> dict:
    """Prepare the run folder (under its lock); return the saved state (empty progress for a
    new run). `data`: what train takes, or its data_spec. --overwrite deletes only an lcnn run
    folder's files."""
    data = data_spec(data)
    runs.clean_temporaries(run_dir)
    if overwrite:
        runs.clear_run(run_dir, keep=(runs.LOCK,))
    state = _saved_state(run_dir, cfg, data)
    if state is not None:
        return state
    runs.mark_run_folder(run_dir)
    runs.write_json(run_dir / runs.CONFIG, {**dataclasses.asdict(cfg), runs.DATA: data})
    runs.write_json(run_dir / runs.STATE, dict(NEW_STATE))
    return dict(NEW_STATE)


def _load_clips(source: DataSource, cfg: Config, cache_dir, skip_bad: bool, verbose: int):
    """The decoded training and validation splits, each with both classes."""
    from lcnn.detector import data

    splits = []
    for split in ("training", "validation"):
        clips = data.load_split(source, split, cfg, cache_dir=cache_dir, skip_bad=skip_bad,
                                progress=bool(verbose))
        data.check_both_classes(clips, f"{source} ({split})")
        splits.append(clips)
    return splits


def train(data_path: str | Path | dict, run_dir: str | Path, cfg: Config, *,
          overwrite: bool = False, skip_bad: bool = False, cache_dir: str | Path | None = None,
          verbose: int = 1, strategy: str = "auto") -> dict:
    """Train cfg.model on the training split of data_path, validating on its validation split.

    data_path: a folder in the Fake-or-Real layout, a CSV list of files with a split column,
    or a dataset spec such as {"format": "asvspoof", "protocols": {...}, "audio_dirs": {...}}
    (see lcnn.dataset); config.json keeps it as lcnn.dataset.data_spec gives it.

    strategy: "auto" or "mirrored" (lcnn.detector.distribute); cfg.batch_size is the global
    batch. Returns the final state: epochs done, best epoch, best validation EER, clips per
    second, and the number of replicas trained on.
    Running it again on an unfinished run folder resumes after the last finished epoch.
    Settings, model and data are checked before the run folder is written; `overwrite`
    starts over, but deletes only a folder that is recognisably an lcnn run folder.
    """
    run_dir = Path(run_dir)
    data = data_spec(data_path)  # what config.json stores and a resumed run is compared with
    distribute.check_strategy(strategy)
    runs.check_writable(run_dir)
    runs.check_unlocked(run_dir)
    if overwrite:
        runs.check_deletable(run_dir)
        state = None
    else:
        state = _saved_state(run_dir, cfg, data)
    if state is not None and state.get("finished") and state["best_eer"] is not None:
        if verbose:
            print(f"{run_dir}: training already finished (best epoch {state['best_epoch']}, "
                  f"validation EER {100 * state['best_eer']:.2f}%); --overwrite starts over")
        return state
    source = open_source(data_path)  # a typo or a wrong layout fails before TensorFlow starts
    for split in ("training", "validation"):
        source.listing(split)
    set_threads(cfg.threads)
    dist = distribute.make_strategy(strategy)  # before anything runs: it may split the CPU
    from lcnn.detector.model import build_model  # imports Keras: after the checks above

    with dist.scope():  # variables are created on every replica
        model = build_model(cfg)  # a setting the model cannot take fails before any decoding
    train_clips, val_clips = _load_clips(source, cfg, cache_dir, skip_bad, verbose)
    with runs.run_lock(run_dir):
        state = _start_or_resume(run_dir, cfg, data, overwrite)
        state["replicas"] = dist.num_replicas_in_sync
        with dist.scope():
            return _fit(model, run_dir, cfg, state, train_clips, val_clips, verbose, dist)


def _fit(model, run_dir: Path, cfg: Config, state: dict, train_clips, val_clips,
         verbose: int, strategy) -> dict:
    """Train from state["epoch"] to cfg.epochs (or early stopping), keeping the run folder."""
    import keras

    from lcnn.detector import data

    keras.utils.set_random_seed(cfg.seed + state["epoch"])  # a resumed run reshuffles afresh
    train_ds = data.make_dataset(train_clips, cfg, training=True, seed=cfg.seed + state["epoch"])
    val_ds = data.make_dataset(val_clips, cfg, training=False)
    steps = int(np.ceil(len(train_clips.labels) / cfg.batch_size))

    if state["epoch"] > 0:
        model = runs.load_model(run_dir, runs.LAST)  # weights, optimizer and schedule position
        if verbose:
            print(f"{run_dir}: resuming after epoch {state['epoch']} of {cfg.epochs}")
    else:
        compile_model(model, cfg, steps)
    distribute.prepare_model(model, strategy)

    weights = data.class_weights(train_clips.labels) if cfg.class_weights else None
    keeper = _make_keeper(run_dir, val_ds, val_clips, state, cfg.patience)
    start = state["epoch"]
    if start < cfg.epochs and not state.get("stopped_early"):
        # shuffle=False: the dataset shuffles itself (Keras warns when asked to do it again)
        model.fit(train_ds, epochs=cfg.epochs, initial_epoch=start, class_weight=weights,
                  shuffle=False,
                  callbacks=[keeper], verbose=verbose)
    if verbose and state.get("stopped_early"):
        print(f"stopped early after epoch {state['epoch']}: no better validation EER for "
              f"{state['wait']} epoch(s) (--patience {cfg.patience})")
    state["finished"] = True
    # throughput of the training passes only (validation excluded), over this session's epochs
    seconds = sum(r["seconds"] for r in runs.read_history(run_dir / runs.HISTORY)
                  if r["epoch"] > start)
    done = state["epoch"] - start
    state["clips_per_s"] = done * len(train_clips.labels) / seconds if done else None
    calibrate_run(run_dir)  # calibration and thresholds from the best epoch's validation scores
    runs.write_json(run_dir / runs.STATE, state)
    # the best model is what evaluate/predict use; last.keras is only for resuming
    (run_dir / runs.LAST).unlink(missing_ok=True)
    return state
