"""Training: focal loss, class weights, Adam with clipping and a cosine schedule, early stopping
on the validation EER, and a run folder that survives being killed (run the same command again
and training resumes after the last finished epoch)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lcnn.config import BEFORE_FIELD, Config, canonical_model
from lcnn.dataset import DataSource, data_spec, open_source
from lcnn.detector import distribute, runs
from lcnn.detector.calibration import calibrate_run
from lcnn.errors import DivergedError, LcnnError
from lcnn.io import clean_temporaries
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


def prepare_to_train(model, cfg: Config, steps_per_epoch: int, strategy) -> None:
    """Compile model (built in strategy's scope) as training does, create its optimizer's
    variables on every replica, and synchronise its BatchNorm over the replicas."""
    with strategy.scope():
        compile_model(model, cfg, steps_per_epoch)
        model.optimizer.build(model.trainable_variables)
        distribute.prepare_model(model, strategy)


def _end_epoch(run_dir: Path, model, score, val_ds, val_clips, state: dict, cfg: Config,
               epoch: int, logs: dict[str, float], seconds: float, strategy) -> float:
    """After each epoch: validation EER (returned), history, best and last model, early
    stopping.

    The best epoch has the lowest validation EER; among epochs of equal EER, the lowest
    validation Cllr of the raw scores (lcnn.metrics.raw_llr; a class-balanced cross-entropy).
    Small validation splits often reach an EER of 0 well before the scores stop improving, and
    the EER alone would then keep the first of those epochs. Early stopping counts the epochs
    since the best one (or, with cllr_resets_patience, since the best one or the lowest Cllr).

    The progress lives in state.json next to the checkpoints (not in memory, as Keras'
    EarlyStopping and ModelCheckpoint keep theirs), so a resumed run stops at the same point
    as an uninterrupted one. Under multiworker every worker scores the validation split itself
    and then takes the chief's verdict (diverged, EER, Cllr), so all of them stop at the same
    epoch.
    """
    from lcnn.metrics import cllr, compute_eer, raw_llr

    scores = score(val_ds)  # lcnn.detector.loop.scorer
    finite = bool(np.all(np.isfinite(scores)))
    eer, val_cllr = ((compute_eer(val_clips.labels, scores)[0],
                      cllr(val_clips.labels, raw_llr(scores))) if finite else (np.nan, np.nan))
    diverged, eer, val_cllr = distribute.share_from_chief(
        strategy, np.array([not finite, eer, val_cllr]))
    if diverged:  # this epoch's weights are useless
        raise DivergedError(
            f"training diverged in epoch {epoch + 1} (the model's outputs are NaN or "
            f"inf); {run_dir} keeps the last good epoch: train again with a lower "
            "--learning_rate (--overwrite), or --resume to retry from that epoch")
    eer, val_cllr = float(eer), float(val_cllr)
    row = {"epoch": epoch + 1, **logs, "val_eer": eer, "val_cllr": val_cllr,
           "learning_rate": float(model.optimizer.learning_rate), "seconds": seconds}
    history = runs.read_history(run_dir / runs.HISTORY)
    history = [r for r in history if r["epoch"] < epoch + 1] + [row]
    runs.write_history(run_dir / runs.HISTORY, history)
    lowest = state.get("lowest_cllr")
    lower_cllr = lowest is None or val_cllr < lowest
    if lower_cllr:
        state["lowest_cllr"] = val_cllr
    if _better(eer, val_cllr, state):
        state.update(best_eer=eer, best_cllr=val_cllr, best_epoch=epoch + 1, wait=0)
        runs.atomic_save_model(model, runs.pending(run_dir, epoch + 1, runs.BEST))
        runs.write_scores(runs.pending(run_dir, epoch + 1, runs.VALIDATION_SCORES),
                          val_clips.files, scores, val_clips.labels)
    elif cfg.cllr_resets_patience and lower_cllr:
        state["wait"] = 0
    else:
        state["wait"] += 1
    runs.atomic_save_model(model, runs.pending(run_dir, epoch + 1, runs.LAST))
    state["epoch"] = epoch + 1
    state["seed_states"] = [np.asarray(v.numpy()).tolist() for v in _seed_states(model)]
    # patience 0: stop at the first epoch not better (once min_epochs are done)
    if state["wait"] >= max(cfg.patience, 1) and epoch + 1 >= cfg.min_epochs:
        state["stopped_early"] = True
    # state.json is the commit: killed before it, the epoch is redone from last.keras, which
    # still holds the epoch before (and best.keras the best epoch before); killed after it,
    # resuming moves this epoch's files into place
    runs.write_json(run_dir / runs.STATE, state)
    runs.settle_epoch(run_dir, epoch + 1)
    return eer


def _better(eer: float, val_cllr: float, state: dict) -> bool:
    """Whether an epoch's validation EER and Cllr beat the best so far (a run saved before
    best_cllr was kept has none: then an equal EER counts as better)."""
    best = state["best_eer"]
    best_cllr = state.get("best_cllr")
    return best is None or eer < best or (
        eer == best and (best_cllr is None or val_cllr < best_cllr))


NEW_STATE = {"epoch": 0, "best_eer": None, "best_cllr": None, "lowest_cllr": None,
             "best_epoch": 0, "wait": 0, "stopped_early": False, "finished": False}


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


def changed_settings(run_dir: str | Path, cfg: Config, data_path: str | Path | dict
                     ) -> list[str]:
    """The settings (and "data") in which the run saved in run_dir differs from cfg on
    data_path; [] when run_dir holds no run. What train() compares before it resumes."""
    path = Path(run_dir) / runs.CONFIG
    if not path.exists():
        return []
    saved = runs.read_json_object(path, "run settings")
    return _changed_settings(saved, cfg, data_spec(data_path))


def _saved_state(run_dir: Path, cfg: Config, data: dict) -> dict | None:
    """The progress of the same run in run_dir, or None when a new run may start there.

    Raises an LcnnError, touching nothing, if run_dir is not a folder, holds files lcnn did
    not write, or holds a run with other settings that has trained at least one epoch.
    """
    if not run_dir.exists():
        return None
    if not run_dir.is_dir():
        raise runs.RunError(f"{run_dir}: is a file, not a folder; --run_dir names a folder")
    has_config, has_state = (run_dir / runs.CONFIG).exists(), (run_dir / runs.STATE).exists()
    if (has_config or has_state) and not runs.is_marked(run_dir):
        raise runs.RunError(
            f"{run_dir}: holds a {runs.CONFIG} or {runs.STATE} that lcnn did not write (no "
            f"{runs.MARKER} marker, no lcnn settings); a new run needs a new or empty folder: "
            "pick another --run_dir")
    if not (has_config and has_state):
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
    clean_temporaries(run_dir)
    if overwrite:
        runs.clear_run(run_dir, keep=(runs.LOCK,))
    state = _saved_state(run_dir, cfg, data)
    if state is not None:
        runs.settle_epoch(run_dir, state["epoch"])
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


def _already_finished(run_dir: Path, state: dict | None, verbose: int) -> bool:
    if not (state is not None and state.get("finished") and state["best_eer"] is not None):
        return False
    if verbose:
        print(f"{run_dir}: training already finished (best epoch {state['best_epoch']}, "
              f"validation EER {100 * state['best_eer']:.2f}%); --overwrite starts over")
    return True


# state.json's progress, in the order share_from_chief sends it (None as NaN)
_PROGRESS = ("epoch", "best_eer", "best_cllr", "lowest_cllr", "best_epoch", "wait",
             "stopped_early", "finished")


def _chief_state(strategy, state: dict) -> dict:
    """The chief's progress on every worker (the others start from a fresh temporary folder)."""
    values = [np.nan if state.get(k) is None else float(state[k]) for k in _PROGRESS]
    shared = distribute.share_from_chief(strategy, np.array(values))
    progress = dict(zip(_PROGRESS, shared.tolist(), strict=True))
    for key in ("epoch", "best_epoch", "wait"):
        progress[key] = int(progress[key])
    for key in ("stopped_early", "finished"):
        progress[key] = bool(progress[key])
    for key in ("best_eer", "best_cllr", "lowest_cllr"):
        progress[key] = None if np.isnan(progress[key]) else progress[key]
    return {**state, **progress}


def train(data_path: str | Path | dict, run_dir: str | Path, cfg: Config, *,
          overwrite: bool = False, skip_bad: bool = False, cache_dir: str | Path | None = None,
          verbose: int = 1, strategy: str = "auto") -> dict:
    """Train cfg.model on the training split of data_path, validating on its validation split.

    data_path: a folder in the Fake-or-Real layout, a CSV list of files with a split column,
    or a dataset spec such as {"format": "asvspoof", "protocols": {...}, "audio_dirs": {...}}
    (see lcnn.dataset); config.json keeps it as lcnn.dataset.data_spec gives it.

    strategy: "auto", "mirrored" or "multiworker" (lcnn.detector.distribute); cfg.batch_size
    is the global batch. Under multiworker every worker runs train() with the same arguments
    (each reads the dataset from its own data_path); only the chief writes run_dir, the others
    write to a temporary folder they delete. Returns the final state: epochs done, best epoch,
    best validation EER, clips per second, and the number of replicas trained on.
    Running it again on an unfinished run folder resumes after the last finished epoch.
    Settings, model and data are checked before the run folder is written; `overwrite`
    starts over, but deletes only a folder that is recognisably an lcnn run folder.
    """
    run_dir = Path(run_dir)
    data = data_spec(data_path)  # what config.json stores and a resumed run is compared with
    distribute.check_strategy(strategy)
    chief = distribute.is_chief(strategy)
    verbose = verbose if chief else 0  # one voice per cluster
    if chief:
        runs.check_writable(run_dir)
        runs.check_unlocked(run_dir)
        if overwrite:
            runs.check_deletable(run_dir)
            state = None
        else:
            state = _saved_state(run_dir, cfg, data)
        # under multiworker the other workers wait for the chief: they return together below
        if strategy != "multiworker" and _already_finished(run_dir, state, verbose):
            return state
    source = open_source(data_path)  # a typo or a wrong layout fails before TensorFlow starts
    for split in ("training", "validation"):
        source.listing(split)
    set_threads(cfg.threads)
    dist = distribute.make_strategy(strategy)  # before anything runs: it may split the CPU
    import keras

    from lcnn.detector.model import build_model  # imports Keras: after the checks above

    keras.utils.set_random_seed(cfg.seed)  # the same seed, the same initial weights
    with dist.scope():  # variables are created on every replica (multiworker: the chief's)
        model = build_model(cfg)  # a setting the model cannot take fails before any decoding
    train_clips, val_clips = _load_clips(source, cfg, cache_dir, skip_bad, verbose)
    folder = run_dir if chief else Path(tempfile.mkdtemp(prefix="lcnn-worker-"))
    try:
        with runs.run_lock(folder):
            state = _chief_state(dist, _start_or_resume(folder, cfg, data, overwrite))
            state["replicas"] = dist.num_replicas_in_sync
            if _already_finished(run_dir, state, verbose):
                return state
            return _fit(model, folder, cfg, state, train_clips, val_clips, verbose, dist, chief)
    finally:
        if not chief:
            shutil.rmtree(folder, ignore_errors=True)


def _seed_states(model) -> list:
    """The model's variables that are not weights: the seed states of its random layers
    (Dropout's), which advance every step and which a .keras file does not keep."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _restore(model, resumed, strategy, seed_states: list | None) -> None:
    """Give model (built and compiled in strategy.scope()) the weights and optimizer state of
    `resumed` (last.keras, loaded by the chief; None on the other workers) and the seed states
    state.json saved with it (runs saved before it kept them start theirs afresh)."""
    own = list(model.weights) + list(model.optimizer.variables) + _seed_states(model)
    if resumed is not None:
        if seed_states is None:  # a run saved before state.json kept them: its fresh ones
            seed_states = [v.numpy() for v in _seed_states(model)]
        saved = [np.asarray(v.numpy()) for v in resumed.weights + resumed.optimizer.variables]
        saved += [np.asarray(s) for s in seed_states]
        if [v.shape for v in saved] != [tuple(v.shape) for v in own]:
            raise runs.RunError(f"{runs.LAST}: its model or optimizer does not fit this run's "
                                "settings; --overwrite starts the run over")
        # float64 holds the int64 seed states exactly (they stay far below 2**53)
        arrays = [np.asarray(v, dtype=np.float64).ravel() for v in saved]
    else:
        arrays = [np.zeros(int(np.prod(v.shape))) for v in own]
    flat = distribute.share_from_chief(strategy, np.concatenate(arrays))
    offset = 0
    for v in own:
        size = int(np.prod(v.shape))
        v.assign(flat[offset:offset + size].reshape(v.shape).astype(v.dtype))
        offset += size


def _train_epoch(step, batches, bar) -> float:
    """One pass over the distributed training batches; returns its seconds."""
    step.reset()
    start = time.perf_counter()
    for i, batch in enumerate(batches, start=1):
        step(batch)
        if bar is not None and bar.verbose == 1:
            bar.update(i, list(step.results().items()), finalize=False)
    return time.perf_counter() - start


def _fit(model, run_dir: Path, cfg: Config, state: dict, train_clips, val_clips,
         verbose: int, strategy, chief: bool = True) -> dict:
    """Train from state["epoch"] to cfg.epochs (or early stopping), keeping the run folder:
    lcnn's own loop around lcnn.detector.loop.TrainStep, the same for every strategy."""
    import keras

    from lcnn.detector import data, loop

    steps = int(np.ceil(len(train_clips.labels) / cfg.batch_size))
    start = state["epoch"]
    # the chief's last.keras: weights, optimizer state and the schedule's position
    resumed = runs.load_model(run_dir, runs.LAST) if start > 0 and chief else None
    prepare_to_train(model, cfg, steps, strategy)
    if start > 0:
        _restore(model, resumed, strategy, state.get("seed_states"))
        if verbose:
            print(f"{run_dir}: resuming after epoch {start} of {cfg.epochs}")

    weights = data.class_weights(train_clips.labels) if cfg.class_weights else None
    step = loop.TrainStep(model, strategy, focal_loss(cfg), weights)
    val_ds = data.make_dataset(val_clips, cfg, training=False)
    score = loop.scorer(model)
    # TensorFlow derives the shuffle's and crops' seeds from its global seed and
    # make_dataset's, so a resumed run sets the same global seed as the run it continues
    keras.utils.set_random_seed(cfg.seed)
    for epoch in range(start, cfg.epochs):
        if state.get("stopped_early"):
            break
        # each epoch's shuffle and crops follow from the seed and the epoch alone, so a
        # resumed run sees the batches an uninterrupted one would have
        train_ds = data.make_dataset(train_clips, cfg, training=True, seed=cfg.seed + epoch)
        bar = None
        if verbose:
            print(f"Epoch {epoch + 1}/{cfg.epochs}")
            bar = keras.utils.Progbar(steps, verbose=verbose)
        seconds = _train_epoch(step, loop.distributed(strategy, train_ds), bar)
        logs = step.results()
        eer = _end_epoch(run_dir, model, score, val_ds, val_clips, state, cfg, epoch, logs,
                         seconds, strategy)
        if bar is not None:
            bar.update(steps, [*logs.items(), ("val_eer", eer)], finalize=True)
    if verbose and state.get("stopped_early"):
        what = " nor lower Cllr" if cfg.cllr_resets_patience else ""
        print(f"stopped early after epoch {state['epoch']}: no better validation EER{what} "
              f"for {state['wait']} epoch(s) (--patience {cfg.patience})")
    state["finished"] = True
    # throughput of the training passes only (validation excluded), over this session's epochs
    seconds = sum(r["seconds"] for r in runs.read_history(run_dir / runs.HISTORY)
                  if r["epoch"] > start)
    done = state["epoch"] - start
    state["clips_per_s"] = done * len(train_clips.labels) / seconds if done else None
    if chief:  # calibration and thresholds from the best epoch's validation scores
        calibrate_run(run_dir)
    runs.write_json(run_dir / runs.STATE, state)
    # the best model is what evaluate/predict use; last.keras is only for resuming
    (run_dir / runs.LAST).unlink(missing_ok=True)
    return state
