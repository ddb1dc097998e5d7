"""Tasks' workspaces on a Dask cluster: the kernel keeps the agents, the workers hold their hands.

`connect.connection(setting)` turns `OSQR.cluster` into a client on the kernel's
loop; `host.ClusterHost` is the run's `WorkspaceHost` on it; `pool` picks each
task's worker and keeps the actors there between tasks; a task's files live in a
`worker_side.WorkspaceActor` (a worktree of the run's clone on that worker);
`bundles` carries commits both ways.
"""

from .connect import ClusterError, Connection, check, connection

__all__ = ["ClusterError", "ClusterHost", "Connection", "check", "connection"]


def __getattr__(name: str):
    if name == "ClusterHost":          # imported on use: the tools and git, not at package import
        from .host import ClusterHost
        return ClusterHost
    raise AttributeError(name)
