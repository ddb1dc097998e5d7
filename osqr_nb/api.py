"""The functions behind the magics, for code outside them."""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path

import pandas as pd

from .autonomy.policy import check_tier
from .config import settings
from .engine.run import Run
from .engine.state import RunState
from .models.base import ModelClient
from .cluster.connect import check as check_cluster, connection
from .engine.budget import check_budget
from .models.errors import KEY_VARIABLES
from .plan.decompose import ModelPlanner, OfflinePlanner
from .plan.explicit import MAX_PLAN_CHARS, looks_like_plan, parse_plan
from .plan.task import Plan, PlanError
from .store.events import log_path, open_log
from .store.frames import costs_frame, events_frame, history_frame
from .workspace import git

_live: dict[str, Run] = {}
_last_repo: Path | None = None


class OsqrWarning(UserWarning):
    pass


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("osqr_nb runs agents on a running asyncio event loop: call it from a "
                           "Jupyter/IPython kernel cell, or inside `asyncio.run(...)`") from None


def _check_parallel(max_parallel: object) -> int | None:
    if max_parallel is None:
        return None
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValueError(f"max_parallel must be a whole number of at least 1, got {max_parallel!r}")
    return max_parallel


def start(request: str | None = None, *, repo: str | os.PathLike = ".", tier: int = 2,
          max_parallel: int | None = 4, plan: Plan | None = None,
          model: str | ModelClient | None = None, budget: float | None = None,
          check: str | None = None, cluster: object = None) -> Run:
    """Plan the request and start its agents in the background; returns the `Run` at once.

    `model` forces one model for every task (a name, or a ModelClient); by default
    each task is routed by its kind. `budget` is in US dollars for the whole run.
    `cluster` puts the tasks' workspaces on a Dask cluster ("local:N", a scheduler
    address, a distributed.Client; "none": this machine); default OSQR.cluster.
    """
    global _last_repo
    check_tier(tier)
    config = settings()
    policy = config.policy(tier)
    max_parallel = _check_parallel(max_parallel)
    budget = check_budget(config.budget if budget is None else budget)
    task_budget = check_budget(config.task_budget, "OSQR.task_budget")
    router = config.router(model if isinstance(model, str) else None)
    cluster = check_cluster(config.cluster if cluster is None else cluster)
    if isinstance(model, str) and not router.available(router.forced):
        variable = KEY_VARIABLES.get(router.forced.provider, "a base URL in OSQR.providers")
        raise ValueError(f"model {model!r} needs {variable}: set it (or OSQR.providers), "
                         "or leave the model out to run offline with the scripted model")
    info = git.inspect_repo(repo)
    planner = None
    if plan is None:
        given = model is not None and not isinstance(model, str)      # a client handed over: no routing
        planner = None if given else model_planner(router, request or "")
        if planner is None:
            plan = plan_request(request or "", info.root)
    elif not isinstance(plan, Plan):
        raise TypeError(f"plan= takes an osqr_nb.Plan, got {type(plan).__name__}")
    _running_loop()
    git.exclude_osqr_dir(info.root)
    common = dict(policy=policy, max_parallel=max_parallel, model=None if isinstance(model, str) else model,
                  budget=budget, task_budget=task_budget, checkpoint_timeout=config.checkpoint_timeout or None)
    if planner is not None:
        run = Run.planning(request, planner, info, open_log(info.root), router, **common)
    else:
        run = Run.create(plan, info, open_log(info.root), router, **common)
    if info.warning:
        run.warnings.append(info.warning)
        warnings.warn(info.warning, OsqrWarning, stacklevel=2)
    _place_workspaces(run, cluster)
    run.check = (check if check is not None else config.check) or None
    if run.check:
        run.emit("check_configured", command=run.check)
    _live[run.id] = run
    _last_repo = info.root
    return run.start(keep_worktrees=settings().keep_worktrees)


def _place_workspaces(run: Run, cluster: object) -> None:
    """Tasks' workspaces on the cluster's workers (see osqr_nb/cluster/), or left local."""
    if cluster is not None:
        from .cluster.host import ClusterHost
        run.workspaces = ClusterHost(connection(cluster), run.root, run.id,
                                     last_worker=lambda task_id: run.state.tasks[task_id].worker)


def model_planner(router, request: str):
    """The model planner on the model routed for architecture, when one is reachable (else None:
    the offline heuristic plans). Explicit plans and empty requests never go to a model."""
    if not request.strip() or looks_like_plan(request):
        return None
    route = router.route("architecture")
    if route.reason == "offline":
        return None
    return ModelPlanner(router.client(route.model))


def plan_request(request: str, repo: str | os.PathLike | None = None) -> Plan:
    """The cell body as a plan: written out as one (a Markdown list with [ids], or YAML),
    or a request in words, split by the offline planner."""
    if isinstance(request, str) and len(request) > MAX_PLAN_CHARS:
        raise PlanError(f"the request is {len(request):,} characters long; at most {MAX_PLAN_CHARS:,} "
                        "are read: split the work into several runs")
    if looks_like_plan(request or ""):
        return parse_plan(request)
    return OfflinePlanner().plan(request or "", str(repo) if repo else None)


def _alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _run_ids(log) -> list[str]:
    """Ids of real runs (the log also holds records such as what was shared)."""
    from .sharing import SHARE_RUN
    return [r for r in log.run_ids() if r != SHARE_RUN]


def resume(run_id: str | None = None, *, repo: str | os.PathLike | None = None,
           model: ModelClient | None = None, force: bool = False, cluster: object = None) -> Run:
    """Carry on a run from its event log (after a kernel restart), or the last unfinished one.

    `cluster` as for `start` (default OSQR.cluster): a run that ran on a cluster carries on
    there, each unfinished task on the worker that held it when that worker still has it.
    """
    global _last_repo
    if run_id in _live and not _live[run_id].done:
        return _live[run_id]
    info = git.inspect_repo(repo if repo is not None else (_last_repo or "."))
    if not log_path(info.root).exists():
        raise ValueError(f"no osqr runs in {info.root} (no .osqr/osqr.db); nothing to resume")
    log = open_log(info.root)
    if run_id is None:
        states = [RunState.fold(r, log.read(r)) for r in _run_ids(log)]
        unfinished = [s for s in states if not s.finished and s.run_id not in _live]
        if not unfinished:
            raise ValueError(f"every run in {info.root} has finished; give a run id to look at one")
        state = unfinished[-1]
    else:
        if run_id not in _run_ids(log):
            known = ", ".join(_run_ids(log)[-5:]) or "none"
            raise ValueError(f"no run {run_id!r} in {info.root} (latest runs: {known})")
        state = RunState.fold(run_id, log.read(run_id))
    if state.finished:
        raise ValueError(f"run {state.run_id} already finished ({state.status}); nothing to resume")
    if _alive(state.owner_pid) and not force:
        raise ValueError(f"run {state.run_id} is still being run by process {state.owner_pid}; "
                         "resume it there, stop that kernel, or pass force=True")
    _running_loop()
    cluster = check_cluster(settings().cluster if cluster is None else cluster)
    run = Run.reopen(state, info.root, log, settings().router(), model)
    _place_workspaces(run, cluster)
    run.start(keep_worktrees=settings().keep_worktrees)
    _live[run.id] = run
    _last_repo = info.root
    return run


def live_runs() -> list[Run]:
    """The runs started or resumed in this kernel, oldest first."""
    return list(_live.values())


def last_run() -> Run | None:
    """The run started most recently in this kernel."""
    return next(reversed(_live.values()), None)


def get_run(run_id: str) -> Run:
    try:
        return _live[run_id]
    except KeyError:
        raise KeyError(f"no run {run_id!r} in this kernel (runs here: {', '.join(_live) or 'none'}); "
                       "use resume() for a run from an earlier kernel") from None


def _log_of(repo: str | os.PathLike | None):
    root = Path(repo) if repo is not None else (_last_repo or Path("."))
    try:
        root = git.inspect_repo(root).root
    except git.RepoError:
        pass
    return open_log(root) if log_path(root).exists() else None


def history(repo: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every decision in the repository's log, one row each."""
    log = _log_of(repo)
    return history_frame(log.read() if log else [])


def costs(repo: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every model call of the repository's runs: run, task, model, tokens, dollars (NaN: unknown)."""
    log = _log_of(repo)
    return costs_frame(log.read() if log else [])


def events(repo: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every event in the repository's log."""
    log = _log_of(repo)
    return events_frame(log.read() if log else [])
