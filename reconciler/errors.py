"""Errors a user can act on. Each carries the exit code the CLI returns for it."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHANGES = 1  # `plan`: there is something to do (like `flux diff`)
EXIT_INVALID = 2  # the desired state does not validate
EXIT_REFUSED = 3  # the plan breaks a budget
EXIT_RUNTIME = 4  # observing or acting on the server failed
EXIT_USAGE = 64


class ReconcilerError(Exception):
    exit_code = EXIT_RUNTIME


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the desired state, where it was written and what to do."""

    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class InvalidDesiredState(ReconcilerError):
    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        body = "\n".join(str(p) for p in problems)
        super().__init__(f"desired state is invalid ({len(problems)} {noun}):\n{body}")


class PlanRefused(ReconcilerError):
    exit_code = EXIT_REFUSED


class ObservationFailed(ReconcilerError):
    exit_code = EXIT_RUNTIME
