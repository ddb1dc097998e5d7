"""Settings, as a traitlets Configurable: `%config OSQR.tier = 3` or ipython_config.py."""

from __future__ import annotations

from typing import Any

from traitlets import Any as AnyTrait, Bool, Dict, Float, Int, List, TraitError, Unicode, Union, default, observe, validate
from traitlets.config import SingletonConfigurable

from .autonomy.policy import AutonomyPolicy, Thresholds

MASK = "***"
_SECRET_SETTINGS = ("key", "token", "secret", "password", "pass")


class Masked(dict):
    """A settings dict (OSQR.providers, OSQR.command_env) whose repr masks keys, tokens and passwords.

    `%config OSQR` prints each trait's repr and `%config OSQR.providers` displays the
    value itself, both into the notebook (which gets saved, shared, committed).
    """

    def __repr__(self) -> str:
        return repr(_masked(self))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Token(str):
    """A secret setting (OSQR.gpkv_token) that shows as *** when printed or displayed."""

    def __repr__(self) -> str:
        return repr(MASK) if self else "''"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and any(w in k.lower() for w in _SECRET_SETTINGS) and v
                else _masked(v) for k, v in value.items()}
    return value


class OSQR(SingletonConfigurable):
    """osqr-nb settings used when a %%osqr cell does not say otherwise."""

    tier = Int(2, help="Autonomy tier: 1 supervised, 2 balanced, 3 autonomous, 4 full auto.").tag(config=True)
    max_parallel = Int(4, help="How many agents may run at once.").tag(config=True)
    scripted_delay = Float(0.3, help="Seconds the scripted offline model takes per reply, so that "
                           "the demo can be watched; 0 for tests.").tag(config=True)

    thresholds = Dict(
        {}, help="Tier 2 confidence thresholds [ask_below, proceed_above] per decision category; "
        "'default' for the rest. E.g. {'auth': [0.8, 0.95], 'default': [0.7, 0.9]}.").tag(config=True)
    tier_by_kind = Dict({}, help="Tier per task kind, e.g. {'docs': 4}.").tag(config=True)
    critical_paths = List(Unicode(), ["**/migrations/**"],
                          help="Globs of files that tier 2 always asks before changing.").tag(config=True)
    rewrite_share = Float(0.5, help="Tier 2 asks before a change that removes or replaces more than "
                          "this share of an existing file's lines.").tag(config=True)
    checkpoint_timeout = Float(0.0, help="Seconds a decision checkpoint waits before taking the agent's "
                               "proposal (logged as a timeout); 0 waits for ever.").tag(config=True)

    keep_worktrees = Bool(False, help="Keep the worktrees of finished tasks after a run (their work "
                          "is on their branches either way; unfinished tasks' worktrees are always kept).").tag(config=True)

    routes = Dict({}, help="Routes per task kind, overriding the seed's table: an ordered list of model "
                  "names per kind, e.g. {'docs': ['gpt-4o', 'claude-sonnet']}.").tag(config=True)
    providers = Dict({}, help="Per provider settings: {'anthropic': {'api_key': ..., 'base_url': ...}, "
                     "'openai': {...}, 'compatible': {'base_url': ..., 'api_key': ..., 'models': [...]}}. "
                     "Keys default to ANTHROPIC_API_KEY / OPENAI_API_KEY.").tag(config=True)
    unsandboxed_commands = Bool(False, help="Where no sandbox is usable (bubblewrap on Linux: `apt-get "
                                "install bubblewrap`), let agents' commands run unconfined, with the "
                                "kernel user's access to the disk; tiers 1-2 ask before each. Off: "
                                "run_command refuses.").tag(config=True)
    command_env = Union([List(Unicode()), Dict()], default_value=[],
                        help="Environment variables agents' commands get beyond PATH, LANG, LC_ALL, TERM, "
                        "VIRTUAL_ENV and a throwaway HOME/TMPDIR: a list of names copied from the "
                        "kernel's environment, e.g. ['PYTHONPATH'], or a dict of name -> value, e.g. "
                        "{'DJANGO_SETTINGS_MODULE': 'app.settings'}.").tag(config=True)
    model = Unicode("", help="Force one model for every task (a route name or model id).").tag(config=True)
    budget = Float(0.0, help="US dollars a run may spend (0: no budget); --budget per cell.").tag(config=True)
    task_budget = Float(0.0, help="US dollars one task may spend (0: no cap).").tag(config=True)
    human_rate = Float(75.0, help="US dollars per hour of a person's time, for the cost report's "
                       "human-equivalent estimate.").tag(config=True)

    check = Unicode("", help="A verification command run on the integration branch after merging, "
                    "e.g. 'pytest -q'; a failure names the merge after which it first failed.").tag(config=True)
    learn_thresholds = Bool(True, help="Use the thresholds learned from your past decisions (the personal "
                            "store) where there is enough evidence; OSQR.thresholds still wins.").tag(config=True)
    target_wrong_rate = Float(0.05, help="Learned thresholds keep wrong auto-proceeds under this share.").tag(config=True)
    learn_routes = Bool(True, help="Re-rank each kind's route by past outcomes (success, cost).").tag(config=True)
    gpkv_url = Unicode("", help="The global aggregate service (osqr-gpkv) for `%osqr share` and "
                       "global priors; empty: nothing is ever shared.").tag(config=True)
    gpkv_token = Unicode("", help="Its token (better: the OSQR_GPKV_TOKEN environment variable).").tag(config=True)
    offline = Unicode("direct", help="With no provider configured, the scripted model answers: 'direct' "
                      "in-process, or 'wire' through the real anthropic SDK and a loopback server that "
                      "speaks its protocol.").tag(config=True)
    cluster = AnyTrait(None, allow_none=True, help="Where tasks' workspaces live: None on this machine; "
                       "'local:N' a Dask LocalCluster of N worker processes started for this kernel; a "
                       "scheduler address ('tcp://host:8786'); or a distributed.Client you made. Models, "
                       "keys and the event log stay in the kernel.").tag(config=True)
    checkpoint_cells = Bool(True, help="In JupyterLab with the OSQR Agents sidebar, put each new checkpoint "
                            "in a cell of its own (%osqr checkpoint <id>) below the one you work in.").tag(config=True)

    def router(self, forced: str | None = None):
        from .routing import Router
        router = Router(self.routes, self.providers, forced or self.model or None, self.scripted_delay,
                        offline=self.offline)
        if self.learn_routes and not self.routes:
            from .learning.wiring import learned_routes
            router.routes, router.learned, router.escalations = learned_routes(router.routes,
                                                                                reachable=router.reachable())
        return router

    def policy(self, tier: int | None = None) -> AutonomyPolicy:
        """The autonomy policy these settings describe (checked: a bad value is a clear error)."""
        by_category = dict(self.thresholds)
        default = by_category.pop("default", None)
        policy = AutonomyPolicy(tier=self.tier if tier is None else tier,
                                thresholds=Thresholds.parse(default, "OSQR.thresholds['default']")
                                if default is not None else Thresholds(),
                                by_category={}, tier_by_kind=dict(self.tier_by_kind),
                                critical_paths=list(self.critical_paths), rewrite_share=self.rewrite_share)
        if self.learn_thresholds:
            from .learning.wiring import learn_into
            learn_into(policy, self.target_wrong_rate)
        explicit = AutonomyPolicy(by_category=by_category).by_category      # checked, then laid on top
        policy.by_category.update(explicit)
        for category in explicit:
            policy.reasons.pop(category, None)
        return policy

    @default("providers")
    def _no_providers(self) -> Masked:
        return Masked()

    @validate("providers")
    def _mask_providers(self, proposal) -> Masked:
        return Masked(proposal["value"])

    @validate("gpkv_token")
    def _mask_token(self, proposal) -> Token:
        return Token(proposal["value"])

    @validate("command_env")
    def _check_command_env(self, proposal):
        value = proposal["value"]
        for name in value:
            if not isinstance(name, str) or not name.isidentifier() or name in ("HOME", "TMPDIR"):
                raise TraitError(f"OSQR.command_env: {name!r} is not a variable a command may be given "
                                 "(names only; HOME and TMPDIR are the sandbox's own)")
        if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            raise TraitError("OSQR.command_env: the values of a dict must be strings")
        return Masked(value) if isinstance(value, dict) else value

    @observe("gpkv_url")
    def _fetch_priors(self, change) -> None:
        """A service just configured: fetch its priors now, in the background, for the next run."""
        prefetch_priors()

    @validate("cluster")
    def _check_cluster(self, proposal):
        from .cluster.connect import ClusterError, check
        try:
            return check(proposal["value"])
        except ClusterError as exc:
            raise TraitError(f"OSQR.cluster: {exc}") from None

    @validate("tier")
    def _check_tier(self, proposal):
        if proposal["value"] not in (1, 2, 3, 4):
            raise TraitError(f"OSQR.tier must be 1-4, got {proposal['value']}")
        return proposal["value"]

    @validate("max_parallel")
    def _check_parallel(self, proposal):
        if proposal["value"] < 1:
            raise TraitError(f"OSQR.max_parallel must be at least 1, got {proposal['value']}")
        return proposal["value"]


def settings() -> OSQR:
    return OSQR.instance()


def prefetch_priors() -> None:
    """Start fetching the global priors if a service is configured (never waits)."""
    from .learning.pkv import PKV
    from .learning.wiring import refresh_priors
    try:
        refresh_priors(PKV())
    except (OSError, ValueError):
        pass                       # no personal store yet, or a bad URL: the run says so later
