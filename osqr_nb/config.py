"""Settings, as a traitlets Configurable: `%config OSQR.tier = 3` or ipython_config.py."""

from __future__ import annotations

from traitlets import Float, Int, validate, TraitError
from traitlets.config import SingletonConfigurable


class OSQR(SingletonConfigurable):
    """osqr-nb settings used when a %%osqr cell does not say otherwise."""

    tier = Int(2, help="Autonomy tier: 1 supervised, 2 balanced, 3 autonomous, 4 full auto.").tag(config=True)
    max_parallel = Int(4, help="How many agents may run at once.").tag(config=True)
    scripted_delay = Float(0.3, help="Seconds the scripted offline model takes per reply, so that "
                           "the demo can be watched; 0 for tests.").tag(config=True)

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
