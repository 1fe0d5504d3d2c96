"""Command line: python -m lcnn {train,evaluate,predict,export,download} ...

Every mistake a user can make (missing folder, wrong layout, no model, bad flag) ends in one
line on stderr and a non-zero exit status, never a stack trace.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from lcnn.config import (
    MODELS,
    NO_CHANNEL_COPIES,
    RUNTIME_FIELDS,
    Config,
    canonical_model,
    parse_setting,
)
from lcnn.errors import ConfigError, LcnnError

# train flag -> Config field. The flags default to None ("not given"): the defaults live in
# Config only, and --resume can tell a flag that was given from one that was not.
SETTING_FLAGS = ("model", "epochs", "batch_size", "learning_rate", "patience", "seed", "threads")


def _given_settings(args) -> dict:
    """The Config fields set by the train flags the user gave."""
    given = {flag: getattr(args, flag) for flag in SETTING_FLAGS
             if getattr(args, flag) is not None}
    given.update(args.set or {})
    if args.no_augment:
        given.update(augment_noise=False, augment_shift=False, augment_gain=False,
                     augment_band_mask=0, **NO_CHANNEL_COPIES)
    if args.noise:
        given["augment_noise"] = True
    given.update(_channel_settings(args))
    if "model" in given:  # "seed" is the baseline: compared with a saved run as "baseline"
        given["model"] = canonical_model(given["model"])
    return given


def _config_from_args(args) -> Config:
    """The Config of a new run: Config's defaults with the given flags applied."""
    try:
        return Config(**_given_settings(args))
    except ConfigError as e:  # name the flag: --epochs, --rawboost, or --set duration=...
        flag = _flag_of(e.field)
        message = str(e).removeprefix(e.field) if flag == f"--{e.field}" else f" {e}"
        raise LcnnError(f"{flag}{message}") from None


def _resumed_config(args, run_dir: Path) -> Config:
    """The saved Config of the run in run_dir; flags that would change it are refused
    (--resume continues a run as it was), runtime options are taken."""
    from lcnn.detector import runs

    cfg = runs.load_config(run_dir)
    given = _given_settings(args)
    changed = {k: v for k, v in given.items() if k not in RUNTIME_FIELDS and getattr(cfg, k) != v}
    if changed:
        shown = ", ".join(f"--{k} {v} (saved: {getattr(cfg, k)})" for k, v in changed.items())
        raise LcnnError(f"--resume continues {run_dir} with its saved settings and does not "
                        f"apply {shown}; to train with them, start a new run (another "
                        "--run_dir, or --overwrite)")
    runtime = {k: v for k, v in given.items() if k in RUNTIME_FIELDS}
    return dataclasses.replace(cfg, **runtime) if runtime else cfg


# channel-augmentation flag -> Config field
CHANNEL_FLAGS = {"codec": "augment_codec", "reverb": "augment_reverb",
                 "telephone": "augment_telephone", "rawboost": "augment_rawboost",
                 "variants": "augment_variants"}


def _channel_settings(args) -> dict:
    """--[no-]codec, --[no-]reverb, --[no-]telephone, --rawboost, --variants as the Config
    fields they set (only those given; `--rawboost off` is ""; Config checks the values)."""
    given = {field: getattr(args, flag) for flag, field in CHANNEL_FLAGS.items()}
    if given["augment_rawboost"] == "off":
        given["augment_rawboost"] = ""
    return {field: value for field, value in given.items() if value is not None}


def _flag_of(field: str | None) -> str:
    """The train flag that sets a Config field: --epochs, --rawboost, or --set FIELD."""
    if field in SETTING_FLAGS:
        return f"--{field}"
    flag = next((f for f, name in CHANNEL_FLAGS.items() if name == field), None)
    return f"--{flag}:" if flag else "--set"


# the flags that name a dataset by its ASVspoof protocol files (train has all four)
PROTOCOL_FLAGS = ("protocol", "val_protocol", "audio_dir", "val_audio_dir")


def _data_of(args, splits: tuple[str, ...]) -> str | dict | None:
    """The dataset the flags name: --data_path, or a spec of the protocol files for `splits`
    (train: training and validation; evaluate: --split); None when no data flag is given."""
    given = [f"--{flag}" for flag in PROTOCOL_FLAGS if getattr(args, flag, None)]
    if not given:
        return args.data_path
    if args.data_path:
        raise LcnnError(f"--data_path and {given[0]} name two datasets; pass one of them")
    if not args.protocol:
        raise LcnnError(f"{given[0]} needs --protocol FILE (the protocol of the "
                        f"{splits[0]} split)")
    if not args.audio_dir:
        raise LcnnError("--protocol needs --audio_dir DIR (the folder of the files it lists)")
    protocols = {splits[0]: args.protocol}
    audio_dirs = {splits[0]: args.audio_dir}
    if len(splits) > 1:
        if not args.val_protocol:
            raise LcnnError("--protocol needs --val_protocol FILE: training stops early on the "
                            "validation EER (ASVspoof's development protocol)")
        protocols[splits[1]] = args.val_protocol
        audio_dirs[splits[1]] = args.val_audio_dir or args.audio_dir
    return {"format": "asvspoof", "protocols": protocols, "audio_dirs": audio_dirs}


def cmd_train(args) -> int:
    from lcnn.detector import runs

    # the name as given: `--model seed` still finds the runs/seed its run was saved in
    run_dir = Path(args.run_dir or f"runs/{args.model or Config.model}")
    if args.resume and args.overwrite:
        raise LcnnError("--resume and --overwrite contradict each other; pass one")
    data = _data_of(args, ("training", "validation"))
    if args.resume:
        cfg = _resumed_config(args, run_dir)
        data = data or runs.data_spec(run_dir)
    else:
        if not data:
            raise LcnnError("--data_path (or --protocol, --val_protocol and --audio_dir) is "
                            "required, or --resume with --run_dir")
        cfg = _config_from_args(args)
    from lcnn.detector.train import train

    state = train(data, run_dir, cfg, overwrite=args.overwrite, skip_bad=args.skip_bad,
                  cache_dir=args.cache_dir, verbose=0 if args.quiet else 1,
                  strategy=args.strategy)
    speed = f", {state['clips_per_s']:.0f} clips/s" if state.get("clips_per_s") else ""
    replicas = state.get("replicas") or 1
    speed += f", {replicas} replicas" if replicas > 1 else ""
    print(f"run folder: {run_dir}  (best epoch {state['best_epoch']}, validation EER "
          f"{100 * state['best_eer']:.2f}%{speed})")
    # a folder or a CSV list holds its testing split, which evaluate finds in the run folder;
    # protocols name one split each, and train was not told the testing one
    protocols = isinstance(data, dict) and data.get("format") == "asvspoof"
    test = " --protocol EVAL_PROTOCOL --audio_dir EVAL_AUDIO_DIR --by attack" if protocols else ""
    print(f"next: python -m lcnn evaluate --run_dir {run_dir}{test}")
    return 0


def cmd_robustness(args) -> int:
    from lcnn.detector.evaluate import robustness

    table = robustness(args.run_dir, _data_of(args, (args.split,)), args.split, seed=args.seed,
                       windows=args.windows, threshold=args.threshold,
                       skip_bad=args.skip_bad, cache_dir=args.cache_dir)
    if args.json:
        print(json.dumps(table))
        return 0
    clean = table["clean"]
    print(f"{args.split}: {clean['n_real']} real, {clean['n_fake']} fake, each through one "
          f"channel (seed {args.seed}){'; whole files in windows' if args.windows else ''}")
    print(f"  {'condition':<12} {'EER':>7}  {'95% CI':<15}  {'ROC-AUC':>7}  {'EER - clean':>11}")
    for name, r in table.items():
        ci = r.get("eer_ci95")  # bootstrap interval, when lcnn.metrics.summarize gives one
        ci = f"{100 * ci[0]:5.1f}-{100 * ci[1]:5.1f}%" if ci else "-"
        print(f"  {name:<12} {100 * r['eer']:6.2f}%  {ci:<15}  {r['roc_auc']:7.4f}  "
              f"{100 * (r['eer'] - clean['eer']):+10.2f}")
    return 0


def cmd_evaluate(args) -> int:
    from lcnn.detector.evaluate import evaluate

    if args.condition == "all":
        return cmd_robustness(args)
    by = tuple(c for c in (args.by or "").split(",") if c)
    r = evaluate(args.run_dir, _data_of(args, (args.split,)), args.split, args.threshold,
                 args.skip_bad, args.cache_dir, by=by, score_file=args.score_file,
                 condition=args.condition, windows=args.windows, seed=args.seed)
    if r["calibration_note"]:
        print(f"lcnn evaluate: note: {r['calibration_note']}", file=sys.stderr)
    if args.json:
        print(json_line(r))
        return 0
    c = r["confusion"]

    def ci(key: str, scale: float = 100) -> str:
        low, high = r[key + "_ci95"]
        return f"(95% CI {scale * low:.2f}-{scale * high:.2f}, bootstrap by {r['bootstrap']['by']})"

    print(f"{r['split']}: {r['n_real']} real, {r['n_fake']} fake  (raw score: higher = more fake)")
    if args.condition != "clean" or args.windows:
        print(f"  condition  {args.condition}{', whole files in windows' if args.windows else ''}")
    print(f"  EER        {100 * r['eer']:6.2f}%  {ci('eer')}, at threshold "
          f"{r['eer_threshold']:.3f} chosen on these scores (optimistic)")
    print(f"  minDCF     {r['min_dcf']:6.3f}   {ci('min_dcf', 1)}  (ASVspoof 5 costs)")
    calibrated = "calibrated" if r["calibration"] else "uncalibrated"
    print(f"  actDCF     {r['act_dcf']:6.3f}   Cllr {r['cllr']:.3f} bits ({calibrated} LLRs), "
          f"minCllr {r['min_cllr']:.3f}")
    print(f"  ROC-AUC    {r['roc_auc']:.4f}")
    print(f"  at threshold {r['threshold']:.3f} ({r['threshold_source']}): accuracy "
          f"{r['accuracy']:.4f}, precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
          f"F1 {r['f1']:.4f}")
    print(f"  confusion  real->real {c['tn']}, real->fake {c['fp']}, "
          f"fake->real {c['fn']}, fake->fake {c['tp']}")
    for column, rows in r["by"].items():
        for value, row in rows.items():
            low, high = row["eer_ci95"]
            print(f"  EER {column} {value:<22} {100 * row['eer']:6.2f}% "
                  f"(95% CI {100 * low:.1f}-{100 * high:.1f}; {row['n_real']} real, "
                  f"{row['n_fake']} fake)")
    if not r["by"]:
        for attack, eer in r.get("eer_by_attack", {}).items():
            print(f"  EER {attack:<22} {100 * eer:6.2f}%")
    if r["saved"]:
        print(f"  saved      {', '.join(r['saved'])}")
    return 0


def json_line(obj: dict) -> str:
    """One line of strict JSON: NaN and infinities (not JSON) become null."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), allow_nan=False)


def _prediction_line(p, threshold: float, as_json: bool, cal=None, source: str = "") -> str:
    """One file's result as predict prints it (a JSON object or a tab-separated line): raw
    score, and with a calibration the LLR (bona fide vs spoof) and P(fake) at its prior."""
    from lcnn.detector.runs import tsv_field

    llr = p_fake = None
    if cal is not None and p.score is not None:
        llr, p_fake = float(cal.llr(p.score)), float(cal.p_fake(p.score))
    if as_json:
        name = os.fsencode(p.path).decode("utf-8", "backslashreplace")
        return json_line({"path": name, "score": p.score, "llr": llr, "p_fake": p_fake,
                          "prior_fake": None if cal is None else cal.prior_fake,
                          "windows": p.windows, "verdict": p.verdict(threshold),
                          "threshold": threshold, "threshold_source": source,
                          "error": p.error})
    if p.score is None:
        return f"{tsv_field(p.path)}\terror: {p.error}"
    calibrated = "-\t-" if llr is None else f"{llr:.3f}\t{p_fake:.4f}"
    return f"{tsv_field(p.path)}\t{p.score:.4f}\t{calibrated}\t{p.verdict(threshold)}"


def cmd_predict(args) -> int:
    from lcnn.detector import calibration, runs
    from lcnn.detector.predict import iter_predictions, keras_scorer

    cfg = runs.load_config(args.run_dir)
    if args.tflite:
        from lcnn.detector.export import tflite_scorer

        scorer = tflite_scorer(args.tflite)
    else:
        scorer = keras_scorer(runs.load_model(args.run_dir))
    # the model loaded: from here on only per-file errors go to stderr
    cal, note = calibration.for_run(args.run_dir)
    threshold, source = calibration.decision_threshold(cal, args.threshold)
    if cal is not None and args.threshold is None:
        source += f"; stored in {Path(args.run_dir) / runs.CALIBRATION}"
    if not args.json:  # each JSON object carries the threshold and its source instead
        prior = cal.prior_fake if cal is not None else None
        print(f"# threshold {threshold:.4f} on the raw score ({source})"
              + (f"; {note}" if note else "")
              + "\n# path\traw score (higher = more fake)\tLLR (bona fide vs spoof)\t"
              f"P(fake) at prior {prior}\tverdict", flush=True)
    scored = 0
    for p in iter_predictions(scorer, args.paths, cfg):  # each file as soon as it is scored
        line = _prediction_line(p, threshold, args.json, cal, source)
        print(line, file=sys.stderr if p.score is None and not args.json else sys.stdout,
              flush=True)
        scored += p.score is not None
    return 0 if scored else 1


def cmd_export(args) -> int:
    from lcnn.detector.export import export_tflite

    path = export_tflite(args.run_dir, int8=args.int8, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


def cmd_download(args) -> int:
    from lcnn.app.download import download_dataset

    download_dataset(args.name, args.dest, url=args.url, force=args.force)
    return 0


def _conditions() -> list[str]:
    from lcnn.channels import CONDITIONS

    return list(CONDITIONS)


def _setting(text: str) -> dict:
    """argparse type of --set: KEY=VALUE as lcnn.config.parse_setting reads it."""
    try:
        key, value = parse_setting(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return {key: value}


class _Merge(argparse.Action):
    """Collect --set KEY=VALUE [KEY=VALUE ...], given once or repeated, into one dict."""

    def __call__(self, parser, namespace, values, option_string=None):
        merged = dict(getattr(namespace, self.dest) or {})
        for setting in values:
            merged.update(setting)
        setattr(namespace, self.dest, merged)


def _finite(text: str) -> float:
    """argparse type: a finite number (float() also accepts nan and inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (`lcnn train: error: ...`) instead of usage + error."""

    def error(self, message: str):
        name = self.prog.replace("python -m ", "")
        self.exit(2, f"{name}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lcnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on <data_path>/{training,validation}")
    train.add_argument("--data_path",
                       help="folder with training/ and validation/ (real/, fake/), or a CSV "
                            "list of files (path,label,split[,attack,speaker,...])")
    train.add_argument("--protocol", metavar="FILE",
                       help="instead of --data_path: an ASVspoof 2019/2021/5 protocol file of "
                            "the training split (needs --val_protocol and --audio_dir)")
    train.add_argument("--val_protocol", metavar="FILE",
                       help="the protocol file of the validation split (ASVspoof's dev)")
    train.add_argument("--audio_dir", metavar="DIR",
                       help="the folder of the audio files --protocol lists")
    train.add_argument("--val_audio_dir", metavar="DIR",
                       help="the folder of the audio files --val_protocol lists (default: "
                            "--audio_dir)")
    train.add_argument("--run_dir", help="where the run is written (default runs/<model>)")
    train.add_argument("--model", help=f"{' or '.join(MODELS)} (default {Config.model}; "
                       "seed, its old name, means baseline)")
    train.add_argument("--epochs", type=int, help=f"default {Config.epochs}")
    train.add_argument("--batch_size", type=int, help=f"default {Config.batch_size}")
    train.add_argument("--learning_rate", type=float, help=f"default {Config.learning_rate}")
    train.add_argument("--patience", type=int,
                       help="stop after this many epochs without a better validation EER; 0 stops "
                            f"at the first epoch that is not better (default {Config.patience}); "
                            "--set min_epochs=N never stops before epoch N; --set "
                            "cllr_resets_patience=true|false: whether a validation Cllr lower "
                            "than any before counts as progress too (default "
                            f"{str(Config.cllr_resets_patience).lower()})")
    train.add_argument("--seed", type=int, help=f"random seed (default {Config.seed})")
    train.add_argument("--threads", type=int,
                       help=f"CPU threads, 0 = all cores (default {Config.threads}); may change "
                            "when resuming")
    train.add_argument("--strategy", default="auto", choices=("auto", "mirrored", "multiworker"),
                       help="auto: one device (default); mirrored: "
                            "tf.distribute.MirroredStrategy over all local GPUs (or the logical "
                            "CPU devices LCNN_CPU_DEVICES=N makes); multiworker: "
                            "MultiWorkerMirroredStrategy over the machines in TF_CONFIG (run "
                            "the same command on each; only the chief writes --run_dir). "
                            "--batch_size is the global batch; may change when resuming")
    train.add_argument("--set", type=_setting, action=_Merge, nargs="+", metavar="KEY=VALUE",
                       help="any other setting of lcnn.config.Config, e.g. --set duration=1.0 "
                            "epochs=40 (several at once, or repeated)")
    train.add_argument("--no_augment", action="store_true",
                       help="switch off all augmentation, channel copies included")
    train.add_argument("--noise", action="store_true",
                       help="add white noise at 10-40 dB SNR when training (off by default)")
    on_off = argparse.BooleanOptionalAction

    def default(field: str) -> str:
        return "on" if getattr(Config, field) else "off"
    train.add_argument("--codec", action=on_off,
                       help="train on cached codec round trips too (MP3, Opus, AMR-NB, "
                            f"G.711, G.722; {default('augment_codec')} by default)")
    train.add_argument("--reverb", action=on_off,
                       help="train on cached copies in synthetic rooms too (RT60 0.2-1.0 s; "
                            f"{default('augment_reverb')} by default)")
    train.add_argument("--telephone", action=on_off,
                       help="train on cached telephone-band (300-3,400 Hz) copies too "
                            f"({default('augment_telephone')} by default)")
    train.add_argument("--rawboost", metavar="ALGOS",
                       help="train on cached RawBoost copies too: algorithms 1-3 in series, "
                            "e.g. 12, or series for the copies in turn, e.g. 12,3 (default "
                            f"{Config.augment_rawboost or 'off'}); off for none")
    train.add_argument("--variants", type=int,
                       help="cached augmented copies per training clip")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --run_dir with its saved settings")
    train.add_argument("--overwrite", action="store_true", help="delete --run_dir and start over")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="EER and other metrics of a run on a split")
    evaluate.add_argument("--run_dir", required=True)
    evaluate.add_argument("--data_path",
                          help="default: the run's training data; a FoR folder, a CSV list of "
                               "files, or a folder holding In-the-Wild's meta.csv")
    evaluate.add_argument("--protocol", metavar="FILE",
                          help="instead of --data_path: an ASVspoof protocol file, read as "
                               "--split")
    evaluate.add_argument("--audio_dir", metavar="DIR",
                          help="the folder of the audio files --protocol lists")
    evaluate.add_argument("--split", default="testing")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--condition", default="clean", metavar="NAME",
                          help="pass every clip through a channel first: all (a table) or one of "
                               + ", ".join(_conditions()))
    evaluate.add_argument("--windows", action="store_true",
                          help="score whole files in windows, as predict does (for long files)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the --condition channel")
    evaluate.add_argument("--by", help="EER with 95%% CI per value of these metadata.csv "
                          "columns, comma-separated, e.g. attack,speaker,lang,gender")
    evaluate.add_argument("--score_file", help="also write an ASVspoof-convention score file "
                          "here (filename, attack, bonafide/spoof, LLR; higher = more bona fide)")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="score audio files and folders")
    predict.add_argument("--run_dir", required=True)
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--tflite", help="score with this exported .tflite model instead")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    predict.set_defaults(func=cmd_predict)

    for scoring in (evaluate, predict):
        scoring.add_argument("--threshold", type=_finite, default=None,
                             help="call a clip fake when its raw score is at least this "
                                  "(default: the validation EER threshold stored in the run's "
                                  "calibration.json)")
    for reading in (train, evaluate):
        reading.add_argument("--skip_bad", action="store_true",
                             help="skip unreadable audio files instead of stopping")
        reading.add_argument("--cache_dir", help="where decoded clips are cached")
    train.add_argument("--quiet", action="store_true")

    export = sub.add_parser("export", help="export a run's model to TensorFlow Lite")
    export.add_argument("--run_dir", required=True)
    export.add_argument("--int8", action="store_true", help="dynamic-range int8 quantisation")
    export.add_argument("--out", help="output file (default <run_dir>/model[-int8].tflite)")
    export.set_defaults(func=cmd_export)

    download = sub.add_parser("download",
                              help="download and extract a Fake-or-Real (FoR) version")
    download.add_argument("name", help="for-2sec, for-norm, for-rerec or for-original")
    download.add_argument("--dest", default="data", help="folder to download and extract into")
    download.add_argument("--url", help="another address for the archive (a mirror)")
    download.add_argument("--force", action="store_true",
                          help="download and extract again, replacing the existing copy")
    download.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LcnnError as e:
        return _fail(args.command, str(e))
    except BrokenPipeError:  # e.g. `predict ... | head -1`: the reader has all it wants
        _silence_stdout()
        return 141  # what the shell reports for a command ended by SIGPIPE
    except OSError as e:  # a path the checks above did not foresee: still one line
        where = f"{e.filename}: " if e.filename else ""
        return _fail(args.command, f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print(f"lcnn {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _resume_hint(args) -> str:
    """How to go on after Ctrl-C: only train and download resume, and the same train command
    with --overwrite would delete what the interrupted run saved."""
    if args.command == "train" and args.overwrite:
        return "; run the same command without --overwrite to resume"
    if args.command in ("train", "download"):
        return "; run the same command again to resume"
    return ""


def _fail(command: str, message: str) -> int:
    """Print an error as `lcnn <command>: error: ...` on stderr; return the exit status."""
    print(f"lcnn {command}: error: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit flush cannot raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (e.g. captured by a test)
