"""Command line: python -m lcnn {train,evaluate,predict,export,download} ...

Every mistake a user can make (missing folder, wrong layout, no model, bad flag) ends in one
line on stderr and a non-zero exit status, never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lcnn.config import Config
from lcnn.errors import LcnnError


def _config_from_args(args) -> Config:
    cfg = Config(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                 learning_rate=args.learning_rate, seed=args.seed, threads=args.threads,
                 patience=args.patience)
    if args.no_augment:
        cfg.augment_noise = cfg.augment_shift = cfg.augment_gain = False
    if args.noise:
        cfg.augment_noise = True
    return cfg


def cmd_train(args) -> int:
    from lcnn import runs
    from lcnn.train import train

    run_dir = Path(args.run_dir or f"runs/{args.model}")
    if args.resume:
        cfg = runs.load_config(run_dir)
        data_path = args.data_path or runs.data_path(run_dir)
    else:
        if not args.data_path:
            raise LcnnError("train: --data_path is required (or --resume with --run_dir)")
        cfg, data_path = _config_from_args(args), args.data_path
    state = train(data_path, run_dir, cfg, overwrite=args.overwrite, skip_bad=args.skip_bad,
                  cache_dir=args.cache_dir, verbose=0 if args.quiet else 1)
    speed = f", {state['clips_per_s']:.0f} clips/s" if state.get("clips_per_s") else ""
    print(f"run folder: {run_dir}  (best epoch {state['best_epoch']}, validation EER "
          f"{100 * state['best_eer']:.2f}%{speed})")
    print(f"next: python -m lcnn evaluate --run_dir {run_dir} --data_path {data_path}")
    return 0


def cmd_evaluate(args) -> int:
    from lcnn.evaluate import evaluate

    r = evaluate(args.run_dir, args.data_path, args.split, args.threshold, args.skip_bad,
                 args.cache_dir)
    if args.json:
        print(json.dumps(r))
        return 0
    c = r["confusion"]
    print(f"{r['split']}: {r['n_real']} real, {r['n_fake']} fake  (score = probability of fake)")
    print(f"  EER        {100 * r['eer']:6.2f}%  at threshold {r['eer_threshold']:.3f}")
    print(f"  ROC-AUC    {r['roc_auc']:.4f}")
    print(f"  at threshold {r['threshold']}: accuracy {r['accuracy']:.4f}, precision "
          f"{r['precision']:.4f}, recall {r['recall']:.4f}, F1 {r['f1']:.4f}")
    print(f"  confusion  real->real {c['tn']}, real->fake {c['fp']}, "
          f"fake->real {c['fn']}, fake->fake {c['tp']}")
    for attack, eer in r.get("eer_by_attack", {}).items():
        print(f"  EER {attack:<22} {100 * eer:6.2f}%")
    return 0


def cmd_predict(args) -> int:
    from lcnn import runs
    from lcnn.predict import keras_scorer, predict_paths

    cfg = runs.load_config(args.run_dir)
    if args.tflite:
        from lcnn.export import tflite_scorer

        scorer = tflite_scorer(args.tflite)
    else:
        scorer = keras_scorer(runs.load_model(args.run_dir))
    results = predict_paths(scorer, args.paths, cfg)
    for p in results:
        if args.json:
            print(json.dumps({"path": str(p.path), "score": p.score, "windows": p.windows,
                              "verdict": p.verdict(args.threshold), "error": p.error}))
        elif p.score is None:
            print(f"{p.path}\terror: {p.error}", file=sys.stderr)
        else:
            print(f"{p.path}\t{p.score:.4f}\t{p.verdict(args.threshold)}")
    return 0 if any(p.score is not None for p in results) else 1


def cmd_export(args) -> int:
    from lcnn.export import export_tflite

    path = export_tflite(args.run_dir, int8=args.int8, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


def cmd_download(args) -> int:
    from lcnn.download import download_dataset

    download_dataset(args.name, args.dest, url=args.url, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lcnn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on <data_path>/{training,validation}")
    t.add_argument("--data_path", help="folder with training/ and validation/ (real/, fake/)")
    t.add_argument("--run_dir", help="where the run is written (default runs/<model>)")
    t.add_argument("--model", default="lcnn", help="lcnn (default) or seed")
    t.add_argument("--epochs", type=int, default=Config.epochs)
    t.add_argument("--batch_size", type=int, default=64)
    t.add_argument("--learning_rate", type=float, default=Config.learning_rate)
    t.add_argument("--patience", type=int, default=Config.patience,
                   help="stop after this many epochs without a better validation EER")
    t.add_argument("--seed", type=int, default=Config.seed)
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    t.add_argument("--no_augment", action="store_true", help="switch off all augmentation")
    t.add_argument("--noise", action="store_true",
                   help="add white noise at 10-40 dB SNR when training (off by default)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --run_dir with its saved settings")
    t.add_argument("--overwrite", action="store_true", help="delete --run_dir and start over")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="EER and other metrics of a run on a split")
    e.add_argument("--run_dir", required=True)
    e.add_argument("--data_path", help="default: the run's training data")
    e.add_argument("--split", default="testing")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="score audio files and folders")
    r.add_argument("--run_dir", required=True)
    r.add_argument("paths", nargs="+", metavar="PATH")
    r.add_argument("--tflite", help="score with this exported .tflite model instead")
    r.add_argument("--json", action="store_true", help="one JSON object per file")
    r.set_defaults(func=cmd_predict)

    for q in (e, r):
        q.add_argument("--threshold", type=float, default=0.5,
                       help="call a clip fake when its score is at least this")
    for q in (t, e):
        q.add_argument("--skip_bad", action="store_true",
                       help="skip unreadable audio files instead of stopping")
        q.add_argument("--cache_dir", help="where decoded clips are cached")
    t.add_argument("--quiet", action="store_true")

    x = sub.add_parser("export", help="export a run's model to TensorFlow Lite")
    x.add_argument("--run_dir", required=True)
    x.add_argument("--int8", action="store_true", help="dynamic-range int8 quantisation")
    x.add_argument("--out", help="output file (default <run_dir>/model[-int8].tflite)")
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("download", help="download and extract a Fake-or-Real (FoR) version")
    d.add_argument("name", help="for-2sec, for-norm, for-rerec or for-original")
    d.add_argument("--dest", default="data", help="folder to download and extract into")
    d.add_argument("--url", help="another address for the archive (a mirror)")
    d.add_argument("--force", action="store_true",
                   help="download and extract again, replacing the existing copy")
    d.set_defaults(func=cmd_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LcnnError as e:
        print(f"lcnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lcnn {args.command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
