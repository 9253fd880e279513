"""The exit code of `reconciler status`: scripts and monitors read readiness from it.

0 Ready · 1 not Ready yet (reconciling, or nothing reconciled) · 2 stalled on an invalid
commit · 3 stalled on a refused plan · 4 failing (serve retries, or a permanent failure waits
for the fix its message names) · 6 suspended, with drift.
"""

from __future__ import annotations

from reconciler.errors import EXIT_INVALID, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME
from reconciler.report.status import Status

EXIT_NOT_READY = 1
EXIT_SUSPENDED = 6  # as `reconciler wait`
CODES_HELP = (
    "Exit codes: 0 Ready, 1 not Ready yet (reconciling or nothing reconciled), 2 stalled on an "
    "invalid commit, 3 stalled on a refused plan, 4 failing (retried, or stalled until fixed), "
    "6 suspended with drift."
)


def status_exit_code(status: Status) -> int:
    ready, stalled = status.condition("Ready"), status.condition("Stalled")
    if ready is not None and ready.status:
        return EXIT_OK
    if status.suspended is not None:
        return EXIT_SUSPENDED
    if stalled is not None and stalled.status:
        by_reason = {"BudgetExceeded": EXIT_REFUSED, "InvalidDesiredState": EXIT_INVALID}
        return by_reason.get(stalled.reason, EXIT_RUNTIME)  # PermanentFailure: fix what it names
    if ready is not None and ready.reason == "ActionFailed":
        return EXIT_RUNTIME
    return EXIT_NOT_READY
