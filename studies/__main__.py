"""Command line: `python -m studies list | run NAME | status NAME`; NAME may be a study file's path (`my_study.py`).

    python -m studies list [path/to/my_study.py ...]
    python -m studies run flooding --budget local [--results DIR|s3://bucket/prefix] [--address auto] [--force]
    python -m studies check-cluster [cluster.yaml] [--results s3://bucket/prefix]
    python -m studies run all --budget smoke [--gpus-per-trial 0.125]
    python -m studies status flooding [--budget local] [--results DIR]
    python -m studies run path/to/my_study.py --budget smoke --results DIR   # a study outside the package

Bad input prints one line `studies: error: …` and exits 2; a run always keeps what it already recorded.
"""

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from analysis.claims import is_study_file
from analysis.store import ResultsError, check_reachable, exit_now_if_a_probe_hangs, first_line, join, results_location
from studies import BUDGETS, StudyError, discover, load


def gpu_share(text: str) -> float:
    """`--gpus-per-trial`: a share of one GPU in (0, 1], or a whole number of GPUs (Ray's rule for fractions)."""
    try:
        share = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < share <= 1 or (share > 1 and share.is_integer())):
        raise argparse.ArgumentTypeError(f"{text!r}: give a share of one GPU in (0, 1] (e.g. 0.125) or a whole number")
    return share


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"studies: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m studies", description="Run claimbench studies and show their state.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    listing = sub.add_parser("list", help="studies, claims, budgets and estimated cost")
    listing.add_argument("paths", nargs="*", help="study files to list instead of the built-in studies")
    run = sub.add_parser("run", help="run a study (skips finished trials)")
    run.add_argument("name", help="a study, a study file (path/to/my_study.py), or 'all' (the built-in studies)")
    run.add_argument("--budget", default="smoke", help="smoke | local | full (default smoke)")
    run.add_argument("--results", type=results_location, default=Path("results"),
                     help="results root: a folder or a URI such as s3://bucket/prefix (default ./results)")  # fmt: skip
    run.add_argument("--address", default=None, help="Ray address; 'auto' joins a running cluster (default: embedded Ray)")
    run.add_argument("--force", action="store_true", help="re-run trials that already finished")
    run.add_argument(
        "--no-fuse",
        action="store_true",
        help="run every trial in its own Ray trial (default: a study's fusable trials train in bundles)",
    )
    run.add_argument(
        "--gpus-per-trial",
        type=gpu_share,
        default=None,
        metavar="F",
        help="give every trial of the smoke or local budget F GPUs (e.g. 0.125: eight trials share a GPU); "
        "refused where there is no GPU. The full budget keeps the resources each study declares",
    )
    status = sub.add_parser("status", help="trials done/planned and verdicts so far")
    status.add_argument("name", help="a study or a study file")
    status.add_argument("--budget", default=None, help="one budget (default: every budget with results)")
    status.add_argument("--results", type=results_location, default=Path("results"))
    check = sub.add_parser("check-cluster", help="validate a Ray cluster file offline (Ray's schema and our needs)")
    check.add_argument("path", nargs="?", type=Path, default=Path("cluster.yaml"))
    check.add_argument("--results", default=None, help="where studies will write (a URI such as s3://bucket/prefix)")
    return p


def cmd_list(paths: list[str] = ()) -> None:
    from studies._plan import trial_count

    def build(name: str, budget: str):
        return load(name, budget) if paths else modules[name].get_study(budget)

    modules = {} if paths else discover()
    for name in paths or modules:
        smoke = build(name, "smoke")
        print(f"{name}: {smoke.article}" if not paths else f"{smoke.name} ({smoke.file}): {smoke.article}")
        print(f"  claims: {' '.join(c.id for c in smoke.claims)}")
        for budget in BUDGETS:
            study = build(name, budget)
            print(f"  {budget:5s} {trial_count(study):5d} trials  {study.cost}")


def cmd_run(args) -> None:
    from studies._runner import run

    names = list(discover()) if args.name == "all" else [args.name]
    chosen = [load(name, args.budget) for name in names]  # every study validates before any runs
    if args.gpus_per_trial is not None:
        check_gpu_share(args)
        chosen = [dataclasses.replace(s, resources={**s.resources, "gpu": args.gpus_per_trial}) for s in chosen]
    command = "python -m studies " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for study in chosen:
        summary = run(study, args.results, address=args.address, force=args.force, command=command, fuse=not args.no_fuse)
        print(
            f"[{study.name}/{study.budget}] planned {summary['planned']}, skipped {summary['skipped']} finished, "
            f"ran {summary['ok']} ok, {summary['diverged']} diverged, {summary['failed']} failed, "
            f"{summary['retried']} retried after a lost worker, {summary['bundles']} fused bundles; "
            f"results in {join(args.results, study.name)}"
        )


def check_gpu_share(args) -> None:
    """Refuse `--gpus-per-trial` at the full budget, and on a machine without CUDA when Ray is embedded (a cluster's
    GPUs are checked against its nodes by the runner, before anything runs)."""
    if args.budget == "full":
        raise StudyError(
            "--gpus-per-trial is for the smoke and local budgets; the full budget keeps each study's own resources"
        )
    if args.address:
        return
    import torch

    if not torch.cuda.is_available():
        raise StudyError(
            f"--gpus-per-trial {args.gpus_per_trial:g}: this machine has no CUDA GPU (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}); drop the option to run on the CPU"
        )


def cmd_status(args) -> None:
    from analysis.load import lacking_metrics, tables_for
    from analysis.schema import describe_incomplete, read_json, read_trials
    from analysis.verdict import evaluate
    from studies._plan import plan
    from studies._tune import best_nuisance

    if is_study_file(args.name):
        name = load(args.name, args.budget or "smoke").name  # a bad file is one line before anything is read
    elif args.name not in discover():
        raise StudyError(f"unknown study {args.name!r} (known: {', '.join(discover())})")
    else:
        name = args.name
    study_dir = join(args.results, name)
    try:
        check_reachable(study_dir)  # a store that does not answer is named within 30 s; Ctrl-C works meanwhile
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read {study_dir}: {first_line(exc)}") from exc
    trials = read_trials(study_dir)
    budgets = [args.budget] if args.budget else [b for b in BUDGETS if (trials["budget"] == b).any()]
    if not budgets:
        print(f"{name}: no results in {study_dir}")
        return
    for budget in budgets:
        study = load(args.name, budget)
        tables = tables_for(study_dir, budget)  # read before printing: a damaged file is one line on stderr, alone
        incomplete = lacking_metrics(study_dir, trials, tables)
        if incomplete:  # verdicts would stand on part of the data: none are shown
            raise StudyError(describe_incomplete(study_dir, budget, incomplete))
        # The plan the latest run recorded (results from before plans were recorded: the grid with today's tuning).
        meta = read_json(join(study_dir, "metadata", f"{budget}.json"))
        planned = meta.get("main_trials", ...)
        if planned is ...:
            planned = [p.trial_id for p in plan(study, best_nuisance(study, study_dir))]
        counts = tables.trials["status"].value_counts().to_dict()
        of = "?" if planned is None else len(planned)
        print(
            f"{name}/{budget}: {len(tables.trials)}/{of} trials recorded "
            f"({counts.get('ok', 0)} ok, {counts.get('diverged', 0)} diverged, {counts.get('failed', 0)} failed)"
            + (f"; {tables.ignored} main row(s) outside the current plan ignored" if tables.ignored else "")
        )
        if tables.waiting:  # partial data decides nothing
            print(f"  no verdicts: {tables.waiting}; `python -m studies run {args.name} --budget {budget}` finishes it")
            continue
        for _, v in evaluate(study, tables).iterrows():
            print(f"  {v['claim_id']:6s} {v['verdict']:12s} {v['reason']}")


def cmd_check_cluster(args) -> None:
    from studies._cluster import check_cluster

    for line in check_cluster(args.path, args.results):
        print(line)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so the run stops the same way."""


_SIGTERM_RECEIVED = []


def _terminate(signum, frame) -> None:
    _SIGTERM_RECEIVED.append(signum)  # remembered: code on the way out may re-raise a plain KeyboardInterrupt
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C and SIGTERM stop a run at any phase: Ray Tune's own SIGINT handler (which ends the Tune run and lets the
    # program go on as if it had finished) is turned off, and SIGTERM becomes an exception in the main thread, instead
    # of the embedded Ray's C++ handler (a stack dump and exit -6).
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        {
            "list": lambda: cmd_list(args.paths),
            "run": lambda: cmd_run(args),
            "status": lambda: cmd_status(args),
            "check-cluster": lambda: cmd_check_cluster(args),
        }[args.cmd]()
    except (StudyError, ResultsError) as exc:  # ResultsError: a damaged or foreign table, named with what to do
        print(f"studies: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (SIGINT) or SIGTERM (`Terminated`), at any phase
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        name, code = ("SIGTERM", 143) if _SIGTERM_RECEIVED else ("SIGINT", 130)
        where = f" in {args.results}" if getattr(args, "results", None) is not None else ""
        again = "python -m studies " + shlex.join(sys.argv[1:] if argv is None else argv)
        print(f"studies: interrupted ({name}); finished trials are saved{where}; resume with: {again}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    code = main()
    exit_now_if_a_probe_hangs(code)  # a store that never answered would hold pyarrow's shutdown
    sys.exit(code)
