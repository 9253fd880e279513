"""Run a plan's actions in order; report each; remember what was done.

The runner decides nothing: it hands each action to its executor (apply/table.py). A failed
action blocks only the actions that need what it provides (the same model; everything that
talks to Ollama after a failed container action), never unrelated ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from reconciler.apply.context import ExecContext, ExecutorUnavailable
from reconciler.apply.table import execute
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, Plan

A = TypeVar("A", bound=Action)


@dataclass
class RunHooks:
    """How `serve` follows a run: journal each action, preempt between actions."""

    before: Callable[[Action], None] = lambda _: None
    after: Callable[[Action], None] = lambda _: None
    should_stop: Callable[[], bool] = lambda: False


class Failure(NamedTuple):
    """An action that failed, with the exception itself: its type says whether a retry can help."""

    action: str  # its title
    error: ReconcilerError


ResultKind = Literal["done", "failed", "blocked", "unsupported"]


@dataclass(frozen=True)
class ActionResult:
    """What became of one action: the action itself (typed, never found again by its title)."""

    action: Action
    result: ResultKind
    error: ReconcilerError | None = None


@dataclass
class Outcome:
    """`done`, `failed`… hold titles for people; what code decides on reads `results`."""

    done: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    unsupported: list[Failure] = field(default_factory=list)
    preempted: bool = False
    results: list[ActionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.preempted

    def of(self, kind: type[A], result: ResultKind) -> list[tuple[A, ReconcilerError | None]]:
        """The actions of type `kind` that ended as `result`, with their errors."""
        return [
            (r.action, r.error) for r in self.results if isinstance(r.action, kind) and r.result == result
        ]


class Runner:
    def __init__(self, ctx: ExecContext, hooks: RunHooks | None = None) -> None:
        self.ctx = ctx
        self.hooks = hooks or RunHooks()

    def run(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        broken: set[str] = set()
        events = self.ctx.events
        for index, action in enumerate(plan.actions, 1):
            title = action.title()
            if self.hooks.should_stop():
                outcome.preempted = True
                events.emit("reconcile.preempted", before=title)
                break
            if action.needs() & broken:
                outcome.blocked.append(title)
                outcome.results.append(ActionResult(action, "blocked"))
                broken |= action.provides()
                events.emit("action.blocked", action=title, reason="an earlier action it depends on failed")
                continue
            events.emit("action.start", action=title, reason=action.reason, step=index, of=len(plan.actions))
            failure = self._run(action, title)
            if failure is None:
                outcome.done.append(title)
                outcome.results.append(ActionResult(action, "done"))
                events.emit("action.done", action=title)
            elif isinstance(failure.error, ExecutorUnavailable):
                outcome.unsupported.append(failure)
                outcome.results.append(ActionResult(action, "unsupported", failure.error))
                events.emit("action.unsupported", action=title, reason=str(failure.error))
            else:
                outcome.failed.append(failure)
                outcome.results.append(ActionResult(action, "failed", failure.error))
                broken |= action.provides()
                events.emit("action.failed", action=title, error=str(failure.error))
        return outcome

    def _run(self, action: Action, title: str) -> Failure | None:
        self.hooks.before(action)
        try:
            execute(action, self.ctx)
        except ReconcilerError as exc:
            return Failure(title, exc)
        finally:
            self.hooks.after(action)
        return None
