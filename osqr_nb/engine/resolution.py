"""Bringing task branches together: resolving what git could not merge, and verifying the result.

Resolvers in order of preference: the semantic merge (Python, no model), the
merge agent (the model routed for review; its proposal checked, then approved by
the policy or the person), and the person's card ([Use A] [Use B], a manual
merge that must pass the same checks, or [Ask <model> to merge]). Nothing drops
a side's change unless the person or the policy says so, and every resolution
is an event. `verify` runs `--check` on the merged result.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

from ..agents.tools import ToolError, Workspace
from ..autonomy.checkpoints import CONFLICT, ERRORS
from ..models.base import ModelClient
from ..models.catalog import describe_client
from ..workspace import git
from ..workspace.merge import REVIEW, Conflict
from ..workspace.merge_agent import propose_merge
from ..workspace.semantic import PYTHON_SUFFIXES, semantic_merge
from .report import model_call_fields
from .supervisor import unified_diff

if TYPE_CHECKING:
    from .run import Run


class MergeResolution:
    """The resolvers of one run's integration (a `Resolve` for the Integrator)."""

    def __init__(self, run: "Run") -> None:
        self.run = run
        self._last_decider = "auto"

    async def resolve(self, conflict: Conflict) -> str | None:
        """Semantic merge, then the merge agent, then the person; None leaves it reported.
        A conflict settled before a restart (the same file, task and three sides) is settled
        the same way again, without asking twice."""
        key = _key_of(conflict)
        self.run.emit("conflict_found", conflict.task, file=conflict.file, lines=conflict.lines,
                       others=conflict.other_tasks, reason=conflict.reason, key=key)
        earlier = next((e.data for e in self.run.log.read(self.run.id)
                        if e.type == "conflict_resolved" and e.data.get("key") == key), None)
        if earlier is not None:
            text = self.run.log.get_blob(earlier["result"])
            return self._resolved(conflict, text, earlier["resolver"], earlier["decided_by"],
                                  "settled the same way before a restart", earlier.get("dropped"))
        if conflict.reason == REVIEW:
            return await self._review(conflict)
        tried = []
        # the semantic merge sees one file: it can settle what git or the file's own check found,
        # not an import another file broke, nor markers a task committed
        if conflict.file.endswith(PYTHON_SUFFIXES) and conflict.found_by in ("git", "check"):
            result = await asyncio.to_thread(semantic_merge, conflict.base, conflict.ours, conflict.theirs,
                                             conflict.file)
            if result.clean:
                return self._resolved(conflict, result.merged, "semantic", "auto", result.reason)
            tried.append(f"semantic merge: {result.reason}")
        merger = self._merge_model()
        if merger is not None:
            try:
                proposal, why = await propose_merge(merger[1], conflict, on_reply=self._priced(conflict, merger[1]))
            except Exception as exc:         # a failing merge agent hands over; it never fails the run
                proposal, why = None, f"failed: {type(exc).__name__}: {exc}"
            if proposal is not None:
                if await self._accept_proposal(conflict, proposal, merger[0]):
                    return self._resolved(conflict, proposal.text, f"merge agent ({merger[0]})",
                                          self._last_decider, proposal.explanation)
                tried.append("merge agent: proposal rejected")
            else:
                tried.append(f"merge agent: {why}")
        if self.run.policy.tier == 4:
            self.run.emit("conflict_unresolved", conflict.task, file=conflict.file, tried=tried)
            return None
        return await self._ask_person(conflict, tried)

    async def _review(self, conflict: Conflict) -> str | None:
        """A clean merge of a pair let run in parallel: the person looks at it (tiers 3-4: accepted)."""
        if self.run.policy.tier >= 3:
            return self._resolved(conflict, conflict.marked, "merge review", "auto", "accepted by policy")
        titles = [self.run.plan[t].title for t in [*conflict.other_tasks, conflict.task]]
        answer = await self.run.ask(conflict.task, kind=CONFLICT, attempt=0,
                                     options=["Accept the merge", f"Use {titles[0]}", f"Use {titles[-1]}"],
                                     question=f"Review the merge of {conflict.file}: {' and '.join(titles)} both changed it",
                                     proposed="Accept the merge", category="merge", free_text=False,
                                     reason="you chose to let these tasks run in parallel and review the merge",
                                     details={"diff": unified_diff(conflict.file, conflict.ours, conflict.marked)})
        by = self._decider_of(conflict.task)
        if answer == "Accept the merge":
            return self._resolved(conflict, conflict.marked, "merge review", by, answer)
        if answer == f"Use {titles[0]}":
            return self._resolved(conflict, conflict.ours, "merge review", by, answer, dropped=[conflict.task])
        return self._resolved(conflict, conflict.theirs, "merge review", by, answer, dropped=conflict.other_tasks)

    def _resolved(self, conflict: Conflict, text: str, resolver: str, decided_by: str, note: str,
                  dropped: list[str] | None = None) -> str:
        self.run.emit("conflict_resolved", conflict.task, file=conflict.file, resolver=resolver,
                       decided_by=decided_by, note=note, dropped=dropped or [],
                       result=self.run.log.put_blob(text), key=_key_of(conflict))
        return text

    def _merge_model(self) -> tuple[str, ModelClient] | None:
        """The model routed for review, unless that is the scripted demo (it cannot merge)."""
        if self.run.model is not None:
            info = describe_client(self.run.model)
            return None if info.provider == "scripted" else (info.name, self.run.model)
        route = self.run.router.route("review")
        return None if route.reason == "offline" else (route.model.name, self.run.router.client(route.model))

    async def _accept_proposal(self, conflict: Conflict, proposal: Any, model: str) -> bool:
        limits = self.run.policy.thresholds_for("merge")
        tier = self.run.policy.tier
        if tier == 4 or (tier == 3 and proposal.confidence > limits.proceed_above):
            self._last_decider = "auto"
            return True
        answer = await self.run.ask(conflict.task, kind=CONFLICT, attempt=0, options=["Accept merge", "Reject"],
                                     question=f"{model} proposes a merge of {conflict.file} "
                                              f"(confidence {proposal.confidence:.2f}): {proposal.explanation}",
                                     proposed="Accept merge", confidence=proposal.confidence, category="merge",
                                     free_text=False, reason=f"tier {tier} approves merges by a model",
                                     details={"diff": unified_diff(conflict.file, conflict.ours, proposal.text)})
        self._last_decider = self._decider_of(conflict.task)
        return answer == "Accept merge"

    async def _ask_person(self, conflict: Conflict, tried: list[str]) -> str | None:
        titles = [self.run.plan[t].title for t in conflict.other_tasks] or ["the earlier merges"]
        ours_label = f"Use {' + '.join(titles)}"
        theirs_label = f"Use {self.run.plan[conflict.task].title}"
        merger = self._merge_model()
        ask_label = f"Ask {merger[0]} to merge" if merger else None
        spans = ", ".join(f"{a}-{b}" for a, b in conflict.lines) or "(whole file)"
        lines = [f"{self.run.plan[t].title}: {i.get('description', '')}" for t, i in conflict.intents.items()]
        while True:
            answer = await self.run.ask(
                    conflict.task, kind=CONFLICT, attempt=0,
                    options=[ours_label, theirs_label] + ([ask_label] if ask_label else []),
                    question=f"Conflict in {conflict.file} lines {spans}: " + "; ".join(lines)
                             + (f" (after {len(tried)} tries)" if len(tried) > 1 else ""),
                    proposed=None, category="merge", free_text=True, reason=conflict.reason,
                    details={"marked": conflict.marked or conflict.theirs, "errors": list(tried), "file": conflict.file,
                             "base": conflict.base, "ours": conflict.ours, "theirs": conflict.theirs})
            by = self._decider_of(conflict.task)
            if answer == ours_label:
                return self._resolved(conflict, conflict.ours, "person: kept the earlier side", by, answer,
                                      dropped=[conflict.task])
            if answer == theirs_label:
                return self._resolved(conflict, conflict.theirs, f"person: kept {conflict.task}", by, answer,
                                      dropped=conflict.other_tasks)
            if answer != ask_label:
                return self._resolved(conflict, answer, "person: manual merge", by, "edited by hand")
            try:
                proposal, why = await propose_merge(merger[1], conflict,
                                                    on_reply=self._priced(conflict, merger[1]))
            except Exception as exc:
                proposal, why = None, f"failed: {type(exc).__name__}: {exc}"
            if proposal is not None:            # asked for by the person, and checked like every result
                return self._resolved(conflict, proposal.text, f"merge agent ({merger[0]}), asked by the person",
                                      by, proposal.explanation)
            tried.append(f"merge agent, asked again: {why}")

    def _priced(self, conflict: Conflict, model: ModelClient):
        """Each merge-agent reply as a `model_call` event (purpose 'merge'), with its usage and price."""
        return lambda reply, latency: self.run.emit("model_call", conflict.task, file=conflict.file,
                                                    **model_call_fields("merge", model, reply, latency))

    def _decider_of(self, task_id: str) -> str:
        answered = [d for d in self.run.state.decisions if d["task_id"] == task_id and d.get("checkpoint_id")]
        return answered[-1]["decided_by"] if answered else "human"

    async def verify(self, result: Any) -> str | None:
        """Run the check (e.g. `pytest -q`) on the integration branch; when it fails, find the
        merge after which it first failed and ask about it. Returns why the run failed, or None."""
        worktree = Workspace(self.run.worktree("_integration"))
        try:
            outcome = await worktree.run_command(self.run.check, timeout=600)
        except ToolError as exc:            # no sandbox here, and unsandboxed commands not allowed
            self.run.emit("check_ran", head=result.head, error=str(exc))
            return f"`{self.run.check}` could not run: {exc}"
        self.run.emit("check_ran", head=result.head, **outcome.summary())
        if outcome.ok:
            return None
        culprit, output = await self._first_failing_merge(worktree, outcome.text())
        title = self.run.plan[culprit].title if culprit else "the run's base"
        why = f"`{self.run.check}` fails after merging {title}"
        if self.run.policy.tier == 4 or culprit is None:
            return why
        answer = await self.run.ask(culprit, kind=ERRORS, attempt=0, question=f"{why}.",
                                     options=["Accept the merge anyway", "Mark the run failed"],
                                     proposed="Mark the run failed", category="check", free_text=False,
                                     reason="the verification command failed on the integration branch",
                                     details={"errors": output.splitlines()[-12:]})
        return None if answer == "Accept the merge anyway" else why

    async def _first_failing_merge(self, worktree: Workspace, last_output: str) -> tuple[str | None, str]:
        """Walk the integration branch's merges in order; the first after which the check fails."""
        _, log = await git.git(worktree.root, "log", "--first-parent", "--reverse", "--format=%H %s",
                               f"{self.run.state.base}..HEAD")
        merges = [line.split(" ", 1) for line in log.splitlines() if " osqr: merge " in f" {line.split(' ', 1)[-1]}"]
        head = await git.head(worktree.root)
        found: tuple[str | None, str] = (None, last_output)
        try:
            for sha, subject in merges:
                await git.git(worktree.root, "checkout", "-q", "--detach", sha)
                outcome = await worktree.run_command(self.run.check, timeout=600)
                if not outcome.ok:
                    found = (subject.removeprefix("osqr: merge ").strip(), outcome.text())
                    break
        finally:
            await git.git(worktree.root, "checkout", "-q", "--detach", head)
        return found


def _key_of(conflict: Conflict) -> str:
    """Which conflict this is, whichever process meets it: the task, the file and its three sides."""
    digest = hashlib.sha256()
    for part in (conflict.task, conflict.file, conflict.reason, conflict.base, conflict.ours, conflict.theirs):
        digest.update(part.encode(errors="replace") + b"\0")
    return digest.hexdigest()[:24]
