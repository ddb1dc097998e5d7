"""%%osqr and %osqr: parse, call the API, display. No logic lives here.

`parse_line` turns any line into checked options or a one-line `UsageError`
(an unbalanced quote, an unknown command, a bad value, an option that does not
apply to the command); `_usage_errors` does the same for the library's errors.
"""

from __future__ import annotations

import argparse
import math
import warnings
from contextlib import contextmanager
from html import escape
from typing import Iterator

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import HTML, display
import ipywidgets as widgets

from . import api
from .config import settings
from .engine.report import describe as describe_cost
from .routing import models_table
from .store.frames import for_people
from .ui import view
from .ui.checkpoint import card_for
from .ui.snapshot import shown_in_cells
from .ui.draft import PlanDraft
from .workspace.git import RepoError

LINE_COMMANDS = ("status", "pause", "resume", "history", "checkpoints", "checkpoint", "route", "models", "cost",
                 "go", "share")
CELL = "%%osqr"
# What each form takes; anything else given on its line is refused rather than ignored.
TAKES = {CELL: {"repo", "tier", "max_parallel", "model", "budget", "check", "dry_run", "cluster"},
         "status": {"run_id"}, "pause": {"run_id"}, "cost": {"run_id"}, "resume": {"run_id", "repo", "cluster"},
         "history": {"repo"}, "share": {"repo", "preview", "pull"},
         "checkpoints": set(), "checkpoint": {"run_id"}, "route": set(), "models": set(), "go": set()}


@magics_class
class OsqrMagics(Magics):
    @magic_arguments()
    @argument("command", nargs="?",
              help="line form only: status | pause | resume | history | checkpoints | checkpoint | route | "
                   "models | cost | go | share")
    @argument("run_id", nargs="?", help="the run to act on (default: the last one); with `checkpoint`, "
                                        "the checkpoint's id")
    @argument("--repo", default=None, help="the git repository the agents work on (default: .)")
    @argument("--tier", type=int, default=None,
              help="autonomy: 1 supervised, 2 balanced, 3 autonomous, 4 full auto")
    @argument("--max-parallel", type=int, default=None, help="agents running at once")
    @argument("--model", default=None, help="one model for every task (a route name or model id)")
    @argument("--budget", type=float, default=None, help="US dollars the run may spend")
    @argument("--check", default=None, help='a command that verifies the merged result, e.g. "pytest -q"')
    @argument("--cluster", default=None, help="tasks' workspaces on Dask: local:N, a scheduler address "
                                              "(tcp://host:8786), a variable holding a distributed.Client, "
                                              "or none (this machine); default OSQR.cluster")
    @argument("--dry-run", action="store_true", help="show the plan and its graph; run nothing")
    @argument("--preview", action="store_true", help="with `share`: show exactly what would be sent")
    @argument("--pull", action="store_true", help="with `share`: only fetch the global priors (no runs needed)")
    @line_cell_magic
    def osqr(self, line: str, cell: str | None = None):
        """Run a request with parallel agents (cell form) or manage runs (line form).

        %%osqr [--repo PATH] [--tier 1-4] [--max-parallel N] [--model NAME] [--budget USD] [--check CMD]
               [--cluster local:N|tcp://host:8786|CLIENT] [--dry-run]
        <request, e.g. Build the auth module, update the API docs, and refactor the database schema>

        %osqr status | pause | resume [RUN_ID] | history | checkpoints | route | models | cost [RUN_ID]
        %osqr resume [RUN_ID] [--repo PATH] [--cluster ...]   carry on a run after a kernel restart
        %osqr checkpoint ID   that checkpoint's card, here (the OSQR Agents sidebar inserts these)
        %osqr go      start the plan shown (and maybe edited) by the last %%osqr --dry-run
        %osqr share [--preview]   send (or show) the counts of your decisions to OSQR.gpkv_url
        %osqr share --pull        only fetch the global priors a new user starts from

        The cell body is a request in words, or a plan:
            - [db] DB Schema (refactor): Move users to UUID keys
            - [auth] Auth Module (code) after db: Sessions and password hashing
            - [docs] API Docs (docs) after auth: Document the endpoints
        """
        args = parse_line(line, cell=cell is not None)
        if cell is None:
            return self._line(args)
        options = run_options(args)
        if args.cluster:
            options["cluster"] = self._cluster(args)     # a Client the person made, by its name
        with _usage_errors():
            if args.dry_run:
                return self._dry_run(cell, options)
            with warnings.catch_warnings():      # shown once, below, not also as a Python warning
                warnings.simplefilter("ignore", api.OsqrWarning)
                run = api.start(cell, **options)
        for warning in run.warnings:
            display(HTML(f"<div style='color:#e65100'>⚠ {escape(warning)}</div>"))
        display(view(run))

    def _dry_run(self, request: str, options: dict) -> None:
        plan = api.plan_request(request, options["repo"])
        self._draft = PlanDraft(plan, options["repo"], lambda edited: api.start(plan=edited, **options))
        display(self._draft)
        self.shell.user_ns["osqr_plan"] = plan

    def _go(self) -> None:
        """Start the plan of the last `--dry-run`, as its text now reads."""
        draft = getattr(self, "_draft", None)
        if draft is None:
            raise UsageError("nothing to run: show a plan first with %%osqr --dry-run")
        if draft.go.disabled:
            raise UsageError("that plan has started already; show a new one with %%osqr --dry-run")
        plan = draft.current_plan()
        run = draft._start(plan)
        draft.go.disabled = True
        display(view(run))

    def _line(self, args):
        command = args.command
        with _usage_errors():
            if command == "history":
                return for_people(api.history(args.repo))
            if command == "resume":
                return self._resume(args)
            if command == "checkpoints":
                return self._checkpoints()
            if command == "checkpoint":
                return self._checkpoint(args.run_id)
            if command == "go":
                return self._go()
            if command == "share":
                return self._share(args)
            if command == "route":
                return self._route()
            if command == "models":
                return models_table(settings().router())
            run = api.get_run(args.run_id) if args.run_id else api.last_run()
        if run is None:
            raise UsageError("no run in this kernel yet; start one with %%osqr, or %osqr resume")
        if command == "pause":
            run.pause()
        if command == "cost":
            report = run.cost_report()
            display(HTML(f"<p>{escape(describe_cost(report))}</p>"))
            return for_people(report)
        display(view(run))

    def _checkpoints(self) -> None:
        """Every pending checkpoint of this kernel's runs, again: the same cards as under the runs."""
        pending = [c for run in api.live_runs() for c in run.checkpoints]
        if not pending:
            display(HTML("No pending checkpoints."))
            return
        display(widgets.VBox([card_for(c) for c in pending]))

    def _checkpoint(self, checkpoint_id: str | None) -> None:
        """One checkpoint's card where the person works (the same widgets as under the run)."""
        if not checkpoint_id:
            raise UsageError("%osqr checkpoint needs a checkpoint id (e.g. %osqr checkpoint <run-id>-cp1); "
                             "%osqr checkpoints shows every pending one")
        runs = api.live_runs()
        found = next((c for run in runs if (c := run.checkpoint(checkpoint_id or "")) is not None), None)
        if found is None:
            pending = ", ".join(c.id for run in runs for c in run.checkpoints) or "none"
            raise UsageError(f"no checkpoint {checkpoint_id!r} in this kernel's runs (pending: {pending}); "
                             "%osqr checkpoints shows them all")
        shown_in_cells.add(found.id)
        display(card_for(found))

    def _route(self):
        """The table as it routes now, and what past outcomes taught (learned against table order)."""
        router = settings().router()
        try:
            from .learning import PKV, route_report
            from .routing import DEFAULT_ROUTES
            learned = route_report(PKV().outcomes(), {**DEFAULT_ROUTES, **settings().routes})
            display(HTML("<b>Learned from past outcomes</b> (success, cost) against the table:"))
            display(learned)
        except (OSError, ValueError) as exc:
            display(HTML(f"No learned routes yet ({escape(str(exc))})."))
        return router.table()

    def _share(self, args):
        """Counts of decisions (never code, text or ids) to the GPKV service; --preview sends nothing."""
        import asyncio

        from . import sharing
        if args.pull:
            return self._pull()
        repo = api._log_of(args.repo)
        if repo is None:
            raise UsageError("no osqr runs here yet: nothing to share (%osqr share --pull fetches the priors)")
        history = api.history(args.repo)
        if args.preview:
            display(HTML(f"<p>This is exactly what <code>%osqr share</code> would send:</p>"
                         f"<pre>{escape(sharing.preview(history, repo))}</pre>"))
            return None
        sharing.service()                        # a clear error now if nothing is configured
        status = widgets.HTML("Sharing…")
        display(status)

        async def share_then_pull():
            answer = await sharing.share(history, repo)
            groups = await sharing.pull_priors()
            return f"{answer.get('status')}; {groups} global prior group(s) now guide new thresholds"
        task = asyncio.get_running_loop().create_task(share_then_pull())

        def done(task: asyncio.Task) -> None:   # on the loop: the kernel never waits for the network
            error = None if task.cancelled() else task.exception()
            status.value = escape(f"Not shared: {error}") if error else escape(f"Shared: {task.result()}")
        task.add_done_callback(done)

    def _pull(self) -> None:
        """The global priors, fetched on the loop: a new user's thresholds follow them from the first run."""
        import asyncio

        from . import sharing
        sharing.service()                        # a clear error now if nothing is configured
        status = widgets.HTML("Fetching the global priors…")
        display(status)
        task = asyncio.get_running_loop().create_task(sharing.pull_priors())

        def done(task: asyncio.Task) -> None:
            error = None if task.cancelled() else task.exception()
            status.value = escape(f"Not fetched: {error}") if error else \
                escape(f"{task.result()} global prior group(s) now guide new thresholds")
        task.add_done_callback(done)

    def _resume(self, args) -> None:
        live = api.get_run(args.run_id) if args.run_id in {r.id for r in api.live_runs()} else api.last_run()
        if live is not None and not live.done and live.state.paused and \
                (args.run_id is None or args.run_id == live.id):
            live.resume()
            run = live
        else:
            run = api.resume(args.run_id, repo=args.repo, cluster=self._cluster(args))
        display(view(run))

    def _cluster(self, args) -> object:
        """--cluster as given, or the Client held by the variable it names."""
        if args.cluster and args.cluster.isidentifier() and args.cluster in self.shell.user_ns:
            return self.shell.user_ns[args.cluster]
        return args.cluster


# --- reading the line -----------------------------------------------------------------------------

def parse_line(line: str, *, cell: bool) -> argparse.Namespace:
    """The checked options of a `%osqr` (cell=False) or `%%osqr` line, or a one-line UsageError.

    Pure (it runs nothing), so that every line can be tried without starting a run.
    `args.command` is "%%osqr" for the cell form, else the line command (status by default).
    """
    try:
        args = parse_argstring(OsqrMagics.osqr, line)
    except ValueError as exc:   # shlex: "No closing quotation", "No escaped character"
        raise UsageError(f"cannot split the %osqr line into options ({exc}); check its quotes "
                         "and backslashes") from None
    _check_command(args, cell)
    _check_applies(args)
    _check_values(args)
    return args


def _check_command(args: argparse.Namespace, cell: bool) -> None:
    if cell and args.command is not None:
        raise UsageError(f"%%osqr takes options only (got {args.command!r}); the request goes in the cell body")
    args.command = CELL if cell else args.command or "status"
    if not cell and args.command not in LINE_COMMANDS:
        raise UsageError(f"unknown %osqr command {args.command!r}; use one of {', '.join(LINE_COMMANDS)} "
                         "(or the cell form %%osqr for a request)")


def _given(args: argparse.Namespace) -> list[str]:
    """The options on the line (every option's default is None or False)."""
    return [name for name, value in vars(args).items()
            if name != "command" and value is not None and value is not False]


def _check_applies(args: argparse.Namespace) -> None:
    """Refuse an option the command would ignore: `%osqr models --tier 9` must not pass silently."""
    extra = [name for name in _given(args) if name not in TAKES[args.command]]
    if not extra:
        return
    form = args.command if args.command == CELL else f"%osqr {args.command}"
    if "run_id" in extra:
        raise UsageError(f"{form} takes no run id (got {args.run_id!r})")
    takes = ", ".join(_flag(name) for name in sorted(TAKES[args.command]) if name != "run_id")
    verb = "does" if len(extra) == 1 else "do"
    raise UsageError(f"{', '.join(map(_flag, extra))} {verb} not apply to {form}; "
                     f"it takes {takes or 'no options'}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_values(args: argparse.Namespace) -> None:
    """Ranges argparse cannot check: tier 1-4, at least one agent, a finite budget, no empty names."""
    if args.tier is not None and args.tier not in (1, 2, 3, 4):
        raise UsageError(f"--tier must be 1-4 (1 supervised, 2 balanced, 3 autonomous, 4 full auto), "
                         f"got {args.tier}")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UsageError(f"--max-parallel must be at least 1, got {args.max_parallel}")
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget >= 0):
        raise UsageError(f"--budget must be a number of US dollars (0 for no limit), got {args.budget}")
    for name in ("repo", "model", "cluster"):
        if getattr(args, name) is not None and not getattr(args, name).strip():
            raise UsageError(f"{_flag(name)} needs a value, got an empty string")
    if args.cluster is not None and not args.cluster.isidentifier():
        from .cluster.connect import ClusterError, check
        try:
            check(args.cluster)
        except ClusterError as exc:
            raise UsageError(f"--cluster: {exc}") from None


def run_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `api.start` for a checked cell line, settings filling the gaps."""
    tier = settings().tier if args.tier is None else args.tier
    parallel = settings().max_parallel if args.max_parallel is None else args.max_parallel
    if parallel < 1:
        raise UsageError(f"OSQR.max_parallel must be at least 1, got {parallel}; pass --max-parallel")
    return dict(repo=args.repo or ".", tier=tier, max_parallel=parallel, model=args.model,
                budget=args.budget, check=args.check.strip("\"'") if args.check else None,
                **({"cluster": args.cluster} if args.cluster else {}))


@contextmanager
def _usage_errors() -> Iterator[None]:
    """The library's errors as one-line UsageErrors: a bad repository, plan or option, a run id
    that is not here, or a `.osqr` that cannot hold the log (a file in its place, no permission)."""
    try:
        yield
    except (RepoError, ValueError, TypeError, KeyError, OSError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UsageError(str(text)) from None
