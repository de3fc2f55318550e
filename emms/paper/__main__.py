"""``python -m emms.paper run --task recognition --config params/paper/recognition.yaml
--data DIR --weights DIR [--device auto] [--out reports]``: the paper-scale run.

``python -m emms.paper finetune --task textqa|vqa|referring --data DIR --weights DIR --out
truth.csv``: the ground truth of a task without a published table (text QA: SQuAD
fine-tuning, :mod:`emms.paper.text_finetune`; VQA: answer classification,
:mod:`emms.paper.vqa_finetune`; referring: box selection,
:mod:`emms.paper.referring_finetune`), the table ``run --truth`` reads.

``python -m emms.paper pair --weights DIR [--pairs vit_bert,...]``: captioning pairs
built from their encoder's and decoder's folders (:func:`emms.paper.caption_extract.build_pair`;
new cross-attention, to be fine-tuned on captions before a run scores them).

Exit status 0 on success, 2 on any input problem (one line on stderr naming it and the
fix; nothing partial is left in the cache)."""

from __future__ import annotations

import argparse
import sys

from emms.cache import CacheError
from emms.datasets.paper import DatasetLayoutError
from emms.models.flabels import EncoderUnavailable
from emms.models.paper_zoo import PaperZooError

from .config import PaperRunError, load_run_config

INPUT_ERRORS = (PaperRunError, PaperZooError, DatasetLayoutError, EncoderUnavailable, CacheError)


def one_line(error: BaseException) -> str:
    """The error as one line (a DataLoader worker's re-raised message keeps its last)."""
    text = str(error)
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m emms.paper", description=__doc__)
    sub = main.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="features, F-labels, scores and report of one task")
    run.add_argument("--task", required=True)
    run.add_argument("--config", help="zoo + run block (default params/paper/TASK.yaml)")
    run.add_argument("--data", required=True, help="folder holding the datasets' layouts")
    run.add_argument("--weights", required=True, help="weights root: <weights>/<model name>/")
    run.add_argument(
        "--device", help="auto (cuda if available), cpu, cuda; default: run.device, else auto"
    )
    run.add_argument("--out", default="reports", help="report folder (default reports)")
    run.add_argument("--cache", default="cache", help="cache root (default cache)")
    run.add_argument("--truth", help="CSV dataset,model,seed,METRIC (tasks without a table)")
    run.add_argument("--datasets", help="comma-separated subset of the datasets")
    run.add_argument("--models", help="comma-separated subset of the zoo")
    run.add_argument("--batch-size", type=int)
    run.add_argument("--num-workers", type=int)
    run.add_argument("--max-samples", type=int)
    run.add_argument("--precision", choices=("float16", "bfloat16", "float32"))
    run.add_argument("--no-progress", action="store_true")
    tune = sub.add_parser("finetune", help="fine-tune the zoo: the truth table of a task")
    tune.add_argument("--task", required=True)
    tune.add_argument(
        "--config", help="zoo + run + finetune blocks (default params/paper/TASK.yaml)"
    )
    tune.add_argument("--data", required=True, help="folder holding the datasets' layouts")
    tune.add_argument("--weights", required=True, help="weights root: <weights>/<model name>/")
    tune.add_argument("--out", required=True, help="the truth CSV to write")
    tune.add_argument(
        "--device", help="auto (cuda if available), cpu, cuda; default: run.device, else auto"
    )
    tune.add_argument("--cache", default="cache", help="cache root (finished fine-tunes)")
    tune.add_argument("--datasets", help="comma-separated subset of the datasets")
    tune.add_argument("--models", help="comma-separated subset of the zoo")
    tune.add_argument("--batch-size", type=int, help="evaluation batch size")
    tune.add_argument("--precision", choices=("float16", "bfloat16", "float32"))
    tune.add_argument("--no-progress", action="store_true")
    pair = sub.add_parser("pair", help="captioning: build encoder/decoder pair folders")
    pair.add_argument("--config", default="params/paper/captioning.yaml", help="the captioning zoo")
    pair.add_argument("--weights", required=True, help="weights root: <weights>/<model name>/")
    pair.add_argument("--pairs", help="comma-separated pairs (default: every pair)")
    return main


def _build_pairs(args) -> int:
    from emms.models.paper_zoo import load_zoo

    from .caption_extract import build_pair

    zoo = load_zoo(args.config)
    for name in args.pairs.split(",") if args.pairs else list(zoo.pairs):
        print(f"pair: {build_pair(zoo, name, args.weights)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "pair":
        try:
            return _build_pairs(args)
        except INPUT_ERRORS as error:
            print(f"error: {one_line(error)}", file=sys.stderr)
            return 2
    try:
        from .run import run

        cfg = load_run_config(
            args.task,
            args.config or f"params/paper/{args.task}.yaml",
            args.data,
            args.weights,
            out=args.out if args.command == "run" else "reports",
            cache=args.cache,
            device=args.device,
            truth=getattr(args, "truth", None),
            datasets=args.datasets.split(",") if args.datasets else None,
            models=args.models.split(",") if args.models else None,
            overrides={
                "batch_size": args.batch_size,
                "num_workers": getattr(args, "num_workers", None),
                "max_samples": getattr(args, "max_samples", None),
                "precision": args.precision,
            },
            progress=not args.no_progress,
        )
        if args.command == "finetune":
            from .finetune import run_task_finetuning

            table = run_task_finetuning(cfg, args.out)
        else:
            result = run(cfg)
    except INPUT_ERRORS as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    if args.command == "finetune":
        print(f"truth: {args.out} ({len(table)} rows)")
        return 0
    print(f"report: {result.report}")
    print(f"computed {len(result.computed)} arrays, reused {len(result.reused)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
