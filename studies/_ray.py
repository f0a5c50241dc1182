"""Ray glue: joining or starting Ray, resource checks and bundle sizes, and one Ray Tune run with the recorder as
its callback.

Ray starts inside this process unless an address is given (`auto` joins a running cluster). The embedded Ray
listens on 127.0.0.1 only. Exceptions of a trainable end the trial normally with an `ERROR` report (recorded
failed); Ray retries (`RETRIES`) only what the infrastructure lost.
"""

import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

from analysis.claims import STUDY_MODULE_PREFIX
from studies import Study, StudyError
from studies._plan import Planned
from studies._record import ERROR, MEMBERS, Recorder

RETRIES = 3
"""Ray restarts a trial whose worker died (its node was lost or preempted, the process was killed) this many times
(`ray.tune.FailureConfig(max_failures=…)`). Exceptions raised by the trainable are caught in the trial (`ERROR`)
and diverged trials end normally, so neither is ever retried: only infrastructure failures are."""


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join a cluster (`address`) or start Ray inside this process, bound to 127.0.0.1.

    Args:
        address (str | None):
            `None` for the embedded default, `auto` or `ray://…`/`host:port` for a running cluster.
        num_cpus (int | None):
            CPUs of the embedded Ray (default: all).
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keeps GCS and raylet on 127.0.0.1
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import logging

    import ray

    if ray.is_initialized():
        return
    ours = signal.getsignal(signal.SIGTERM)  # ray.init replaces a SIGTERM handler with its own sys.exit(15)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        # "local" always starts a new instance: with None, Ray joins any other Ray already running on the machine.
        ray.init(
            address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
    if callable(ours) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, ours)  # the command line's: SIGTERM stops a run like Ctrl-C (studies.__main__)


def connect(address: str, timeout: float = 3.0) -> None:
    """Join the Ray cluster at `address` before anything is written, or fail fast with a one-line `StudyError`.

    A `host:port` (or `ray://host:port`) address is first probed with a plain TCP connection, so an unreachable
    head is reported within `timeout` seconds instead of after Ray's own retries.

    Args:
        address (str):
            `auto`, `host:port` or `ray://host:port`.
        timeout (float):
            Seconds to wait for the TCP probe.
    """
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise StudyError(f"--address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StudyError(f"cannot reach Ray at {address} ({reason}); is the cluster up (ray up cluster.yaml)?") from exc
    try:
        init_ray(address)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot join Ray at {address}: {first}") from exc


def slots_and_memory(study: Study, address: str | None) -> tuple[int, float]:
    """Trials the connected Ray can run at once for this study, and the host memory (bytes) each may use.

    Slots: the cluster's CPUs (or GPUs, for GPU trials) over a trial's request, capped by `max_concurrent`.
    Memory: Ray's `memory` resource (what it leaves for tasks, not the object store) shared by the slots, halved
    as a margin for the data and the framework.
    """
    import ray

    init_ray(address)
    have = ray.cluster_resources()
    cpu, gpu = float(study.resources.get("cpu", 1)), float(study.resources.get("gpu", 0))
    slots = int(have.get("GPU", 0) // gpu) if gpu else int(have.get("CPU", 1) // cpu)
    slots = max(1, min(slots, study.max_concurrent or slots))
    return slots, 0.5 * float(have.get("memory", 8 * 2**30)) / slots


def gpu_share_bytes(study: Study) -> float | None:
    """GPU memory (bytes) one trial of the study may use: half its share of its GPU's memory, or `None` if unknown.

    Asked of the GPU itself by a task with the trial's GPU share (the driver may have none, e.g. a cluster's head);
    half, as for host memory, leaves room for the data, the framework and the CUDA context. A logical GPU without
    CUDA behind it (a test cluster) gives `None`.
    """
    import ray

    def total() -> int | None:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None

    share = float(study.resources["gpu"])
    probe = ray.remote(num_cpus=0, num_gpus=min(share, 1.0))(total).remote()
    ready, _ = ray.wait([probe], timeout=120)
    if not ready:
        ray.cancel(probe, force=True)
        return None  # no GPU came free in time: size bundles as on CPU
    memory = ray.get(probe)
    return None if memory is None else 0.5 * memory * min(share, 1.0)  # a bundle trains on one device


def largest_node(address: str | None) -> dict[str, float]:
    """CPUs and GPUs of the largest node the Ray we are connected to has, or can add (`{}`: unknown).

    The embedded Ray is this machine: its live node is all there is. A cluster's live nodes come from `ray.nodes()`;
    node types an autoscaler may still start come from the cluster config it publishes in the GCS, if it does
    (`ray._private.state.state.get_cluster_config`). A cluster-launcher autoscaler that does not publish it, whose GPU
    workers may not have started yet, gives `{}`: it is told apart from a fixed cluster (`ray start` by hand, or
    `ray.cluster_utils.Cluster`) by its node-type names, which Ray's read-only provider sets to `node_<id>`. Both
    are private APIs of the Ray version the project pins.
    """
    import json

    import ray
    from ray._private import ray_constants
    from ray._private.state import state
    from ray.experimental import internal_kv

    shapes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if address:
        config = state.get_cluster_config()
        if config is not None:
            shapes += [dict(g.resources) for g in config.node_group_configs]
        else:
            status = json.loads(internal_kv._internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS) or "{}")
            types = (status.get("autoscaler_report") or {}).get("node_type_mapping") or {}
            if any(not str(t).startswith("node_") for t in types.values()):
                return {}  # an autoscaler with named node types that keeps their shapes to itself
    return {k: max((float(sh.get(k, 0)) for sh in shapes), default=0.0) for k in ("CPU", "GPU")}


def check_resources(study: Study, address: str | None) -> None:
    """Refuse, in one line, a study whose trial asks for more CPUs or GPUs than any node has (Ray would wait forever)."""
    need = {"CPU": float(study.resources.get("cpu", 1)), "GPU": float(study.resources.get("gpu", 0))}
    if not address and need["GPU"] == 0:
        return  # the embedded Ray has this machine's CPUs; nothing to start Ray early for
    init_ray(address)
    have = largest_node(address)
    if not have:
        note = f"the autoscaler's node types are unknown here; trials wait for a node with {need['GPU']:g} GPU"
        print(f"[{study.name}/{study.budget}] {note} (`python -m studies check-cluster` checks them)", file=sys.stderr)
        return
    short = [k for k in ("GPU", "CPU") if need[k] > have[k]]
    if short:
        where = f"Ray at {address}" if address else "the embedded Ray (this machine)"
        k = short[0]
        raise StudyError(
            f"study {study.name!r} at budget {study.budget!r} asks for {need[k]:g} {k} a trial, but no node of {where} "
            f"has more than {have[k]:g}"
        )


def bundles(study: Study, pending: list[Planned], address: str | None) -> list[list[Planned]]:
    """Group fusable pending trials into bundles; the rest run alone.

    Trials go in one group when their configs agree outside `Fusion.keys`. A group is cut into equal bundles of at
    most what a slot's memory holds (`Fusion.member_bytes`): on CPU host memory and at most `max_members` members, on
    a GPU the trial's share of GPU memory (`gpu_share_bytes`) with no other cap. It is also cut into at least as many
    bundles as there are slots (a multiple of them when it has more), so that every slot works.

    Returns:
        list[list[Planned]]: units in grid order of their first member; a unit of one runs unfused.
    """
    fusion = study.fusion
    slots, memory = slots_and_memory(study, address)
    gpu = float(study.resources.get("gpu", 0)) > 0
    device_memory = gpu_share_bytes(study) if gpu else None
    groups: dict[str, list[Planned]] = {}
    units: list[list[Planned]] = []
    for p in pending:
        if not fusion.can_fuse(p.config, gpu):
            units.append([p])
            continue
        key = json.dumps({k: v for k, v in p.config.items() if k not in fusion.keys}, sort_keys=True, default=repr)
        groups.setdefault(key, []).append(p)
    for members in groups.values():
        each = max(1, fusion.member_bytes(members[0].config))
        if device_memory is not None:
            cap = max(1, int(device_memory // each))
        else:
            cap = max(1, min(fusion.max_members, int(memory // each)))
        count = math.ceil(len(members) / cap)
        count = min(len(members), slots * math.ceil(count / slots))
        cuts = [round(i * len(members) / count) for i in range(count + 1)]  # sizes differ by at most one
        units += [members[a:b] for a, b in itertools.pairwise(cuts)]
    order = {p.trial_id: i for i, p in enumerate(pending)}
    return sorted(units, key=lambda u: order[u[0].trial_id])


def unit(members: list[Planned]) -> dict:
    """A Ray grid value: one trial, or a bundle named by a hash of its members' ids."""
    ids = [p.trial_id for p in members]
    bundle = None
    if len(members) > 1:
        bundle = f"bundle-{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:12]}"
    return {"ids": ids, "configs": [p.config for p in members], "bundle": bundle}


def fit(
    study: Study,
    space: dict,
    recorder: Recorder,
    identify,
    address: str | None,
    search=None,
    num_samples: int = 1,
    metric: str | None = None,
) -> None:
    """One Ray Tune run with the recorder as callback: `num_samples` trials of the searcher `search` over `space`
    (`in_order(units)` for planned trials; Optuna for tuning, whose `metric` a failed trial reports as NaN)."""
    init_ray(address)
    from ray import tune

    # Ray Tune's own CSV, JSON and TensorBoard loggers write every report again in this process; on 2 cores they
    # took ~20% of the trials' time (bench/README.md). The Parquet tables are the record; `=0` turns them back on.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Ray Tune still makes a folder per trial, and lists the experiment's whole folder when a run ends: in one
    # ~/ray_results/<name> shared by every run, that grew with every trial ever run (16,000 folders, 0.4 s a run,
    # after a few days here). Without the loggers nothing in it is read, so each run gets its own, removed after.
    loggers = os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "0"
    storage = None if loggers else tempfile.mkdtemp(prefix=f"claimbench-{study.name}-")
    # Without those files Ray's end-of-run result grid warns once per trial that it found none; it is not used.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    pickle_study_files_by_value()
    threads = max(1, int(study.resources.get("cpu", 1)))
    fused = study.fusion.trainable if study.fusion is not None else None
    trainable = tune.with_resources(_entry(study.trainable, threads, fused, metric), study.resources)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=num_samples, reuse_actors=True, max_concurrent_trials=study.max_concurrent
        ),
        run_config=tune.RunConfig(
            name=f"{study.name}-{study.budget}",  # with the loggers on, their files go to ~/ray_results/<name>
            storage_path=storage,
            callbacks=[_tune_callback(recorder, identify)],
            stop=_stopper(recorder),
            failure_config=tune.FailureConfig(max_failures=RETRIES),
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        recorder.close()  # every trial that finished is written: on a normal end, a failed write, Ctrl-C or SIGTERM
        if storage is not None:
            shutil.rmtree(storage, ignore_errors=True)
    if recorder.write_error is not None:
        done = recorder.written
        raise StudyError(
            f"cannot write results to {recorder.dir}: {recorder.write_error}; stopped at the first failed write, the "
            f"{done} trial(s) recorded before it in this run are kept; make room (or restore write access) and run "
            f"the same command again to resume"
        )


def pickle_study_files_by_value() -> None:
    """Ship the code of study files loaded from a path (`studies.load_file`) to Ray's workers by value.

    cloudpickle pickles a function by reference to its module, which a worker imports; a study file's private module
    (`analysis.claims.STUDY_MODULE_PREFIX`) exists only in the driver, so its functions and classes go by value instead
    (`ray.cloudpickle.register_pickle_by_value`); what they import from installed packages still goes by reference.
    """
    from ray import cloudpickle

    for name, module in list(sys.modules.items()):
        if name.startswith(STUDY_MODULE_PREFIX):
            cloudpickle.register_pickle_by_value(module)


def in_order(units: list[list[Planned]]):
    """A Ray Tune searcher that hands out the planned units (a trial, or a bundle's members) one by one, in order.

    Not a `grid_search` over the units: Ray Tune copies a grid's whole value list for every trial it makes, which is
    O(n) per trial and O(n²) per study (about 2 minutes of the driver's time at 2,000 trials). Run it with
    `num_samples=len(units)`.
    """
    from ray.tune.search import Searcher

    class InOrder(Searcher):
        def __init__(self, values: list[dict]):
            super().__init__()
            self.values, self.next = values, 0

        def suggest(self, trial_id: str):
            if self.next == len(self.values):
                return Searcher.FINISHED
            self.next += 1
            return {"__trial": self.values[self.next - 1]}

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
            pass  # nothing to learn: the plan is fixed

    return InOrder([unit(u) for u in units])


def _stopper(recorder: Recorder):
    """Ray Tune's stop rule: a trial whose loss is not finite stops; every trial stops once a write has failed."""
    from ray import tune

    class _Stop(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return _nonfinite_loss(trial_id, result)

        def stop_all(self) -> bool:
            return recorder.write_error is not None

    return _Stop()


def _tune_callback(recorder: Recorder, identify):
    """A Ray Tune callback feeding the recorder; `identify(ray_config) -> list[Planned]` names the trials a Ray trial
    runs: one, or the members of a bundle, whose reports arrive together under `MEMBERS`."""
    from ray import tune

    ids: dict[str, list[str]] = {}
    stopped: set[str] = set()

    def begin(trial) -> list[str]:
        ps = identify(trial.config)
        bundle = trial.config["__trial"].get("bundle") if "__trial" in trial.config else None
        ids[trial.trial_id] = [p.trial_id for p in ps]
        for p in ps:
            recorder.start(p, bundle, len(ps))
        return ids[trial.trial_id]

    class _Callback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            begin(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            members = result.get(MEMBERS)
            for trial_id in ids[trial.trial_id]:
                if members is None:
                    recorder.result(trial_id, result)
                elif trial_id in members and trial_id not in stopped:
                    recorder.result(trial_id, members[trial_id])
                    if _nonfinite_loss(trial_id, members[trial_id]):
                        stopped.add(trial_id)  # the stop rule, per member: later reports of a diverged member are dropped
            if members is not None:
                recorder.bundle_progress(trial.config["__trial"]["bundle"], len(ids[trial.trial_id]), members)

        def on_trial_complete(self, iteration, trials, trial, **info):
            for trial_id in ids[trial.trial_id]:
                recorder.finish(trial_id)

        def on_trial_recover(self, iteration, trials, trial, **info):
            for trial_id in ids[trial.trial_id]:
                recorder.retry(trial_id, _error_line(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            # one that failed before it started (e.g. no resources) is recorded all the same
            for trial_id in ids[trial.trial_id] if trial.trial_id in ids else begin(trial):
                recorder.finish(trial_id, error=_error_line(trial))

    return _Callback()


def _error_line(trial) -> str:
    """The last line of the trial's traceback (`ValueError: ...`), from the error file Ray writes."""
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
        return lines[-1] if lines else "unknown error"
    except (OSError, TypeError):
        return "unknown error (no error file)"


def _nonfinite_loss(trial_id: str, result: dict) -> bool:
    """Stop rule: any reported `*loss` metric is NaN or inf (the trial is then recorded as diverged)."""
    return any(k.endswith("loss") and isinstance(v, float) and not math.isfinite(v) for k, v in result.items())


def unwrap(config: dict) -> dict:
    """The study config inside a Ray config: a grid point (`__trial`), or an arm's fixed part plus sampled nuisance."""
    if "__trial" in config:
        return config["__trial"]["configs"][0]
    return {**config["__fixed"], **{k: v for k, v in config.items() if k != "__fixed"}}


def _entry(trainable, threads: int, fused=None, metric: str | None = None):
    """The function Ray runs: pin torch threads to the trial's CPUs, call the study's trainable (or, for a bundle,
    its fused trainable, whose per-member reports go out as one `MEMBERS` report a step), report what it raised.

    An exception of the trainable is reported as `ERROR` and the trial ends normally, so that Ray's retries
    (`RETRIES`) are left for failures of the infrastructure; the traceback goes to the trial's log. In a bundle
    that fails every member is recorded failed. A tuning trial's error report also carries its `metric` as NaN: the
    searcher requires the metric in every report, and takes NaN as a failed evaluation.
    """

    def run_trial(config: dict) -> None:
        import traceback

        from ray import tune

        torch = sys.modules.get("torch")  # a trainable that never imports torch does not pay for it (about 1 s)
        if torch is not None:
            torch.set_num_threads(threads)
        else:  # read by torch when the trainable imports it
            os.environ["OMP_NUM_THREADS"] = str(threads)
        run = config.get("__trial", {})
        try:
            if run.get("bundle"):
                ids = run["ids"]

                def report(out: list[dict | None]) -> None:
                    tune.report({MEMBERS: {i: m for i, m in zip(ids, out, strict=True) if m is not None}})

                fused(run["configs"], report)
            else:
                trainable(unwrap(config))
        except Exception as exc:  # noqa: BLE001 - the trial is recorded failed, the study goes on
            traceback.print_exc()
            tune.report({ERROR: f"{type(exc).__name__}: {exc}", **({metric: math.nan} if metric else {})})

    run_trial.__name__ = getattr(trainable, "__name__", "trial")
    return run_trial
