"""Errors a user can act on. Each carries the exit code the CLI returns for it, and is one of
two kinds (kopf's): temporary, retried with backoff because the same commit may succeed later
(a network blip, a busy engine), or permanent, which no retry of the same commit can fix (a
missing secret, a taken port, an image no registry has): `serve` marks the commit Stalled with
the error's message, which says what to do, and tries again only on a new commit, a resync or
SIGHUP. The runner keeps the exception, so this kind is read from its type, never its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

EXIT_OK = 0
EXIT_CHANGES = 1  # `plan`: there is something to do (like `flux diff`)
EXIT_INVALID = 2  # the desired state does not validate
EXIT_REFUSED = 3  # the plan breaks a budget
EXIT_RUNTIME = 4  # observing or acting on the server failed


class ReconcilerError(Exception):
    """A failure with a message for the user. Concrete errors derive from TemporaryError or
    PermanentError; one that derives from neither is retried like a temporary one."""

    exit_code = EXIT_RUNTIME
    permanent: ClassVar[bool] = False
    retry_after: float | None = None  # a temporary error that knows when to come back


class TemporaryError(ReconcilerError):
    """Retry with backoff (or after `retry_after` seconds): the same commit may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ReconcilerError):
    """Retrying the same commit cannot help: Stalled until a new commit, or the fix the message
    names is made on the server (then a resync or SIGHUP picks it up)."""

    permanent = True


class Conflict(TemporaryError):
    """What an action was planned on changed before it ran (a container Kamal removed, a row
    deleted by hand): the reconcile observes again at once instead of failing."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=0.0)


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


class InvalidDesiredState(PermanentError):
    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        body = "\n".join(str(p) for p in problems)
        super().__init__(f"desired state is invalid ({len(problems)} {noun}):\n{body}")


class ObservationFailed(TemporaryError):
    """Docker, Ollama or the disk could not be read: nothing was changed, the next run retries."""

    exit_code = EXIT_RUNTIME


class ContainerNotReady(TemporaryError):
    """The Ollama container was (re)started but its API did not answer in time."""

    exit_code = EXIT_RUNTIME

    def __init__(self, name: str, url: str, timeout: float, logs: str) -> None:
        self.name = name
        self.logs = logs
        tail = "\n".join(f"    {line}" for line in logs.splitlines()) or "    (no output)"
        super().__init__(
            f"container {name} did not answer on {url} within {timeout:g} s. Check its logs "
            f"(`docker logs {name}`), the port binding and, with GPUs, the NVIDIA container "
            f"runtime (`docker info | grep -i nvidia`); the next run retries.\n"
            f"last log lines:\n{tail}"
        )


class ImageUnavailable(ReconcilerError):
    """The container image is neither on this machine nor pulled: `ImageNotInRegistry` when its
    registry answered that it has no such image (or refuses us), `RegistryUnreachable` when the
    registry did not answer."""

    exit_code = EXIT_RUNTIME

    def __init__(self, image: str, reason: str, hint: str) -> None:
        self.image = image
        super().__init__(f"image {image} is not on this machine and could not be pulled ({reason}). {hint}")


class ImageNotInRegistry(ImageUnavailable, PermanentError):
    def __init__(self, image: str, reason: str) -> None:
        super().__init__(
            image,
            reason,
            f"Pull or load it by hand (`docker pull {image}` / `docker load`), or pin an image "
            "that is present in ollama.yaml container.image.",
        )


class RegistryUnreachable(ImageUnavailable, TemporaryError):
    def __init__(self, image: str, reason: str) -> None:
        super().__init__(image, reason, "The next run pulls it again.")


class ContainerFailed(PermanentError):
    """The engine refused to create or start the container (a taken port, a missing GPU
    runtime…): the same spec is refused again until the server or the commit changes."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, engine_error: str = "") -> None:
        self.engine_error = engine_error or message
        super().__init__(message)


GPU_FIX = (
    "install the NVIDIA driver (`nvidia-smi` must work) and the NVIDIA Container Toolkit, then "
    "register it with Docker: `nvidia-ctk runtime configure --runtime=docker && systemctl restart "
    "docker` (or write a CDI spec: `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`); "
    "`docker info` then lists the nvidia runtime. To run Ollama on the CPU instead, set "
    "container.gpus: none in ollama.yaml"
)


class GpuPassthroughFailed(ContainerFailed):
    """No way of passing the GPU into the Ollama container works on this server."""

    def __init__(self, name: str, attempts: list[tuple[str, str]]) -> None:
        self.attempts = attempts
        tried = "\n".join(f"    {how}: {error}" for how, error in attempts)
        super().__init__(
            f"container {name} could not be given the GPU; every way was refused by the engine:\n"
            f"{tried}\nfix: {GPU_FIX}"
        )


class EngineBusy(TemporaryError):
    """The engine could not carry out a step this time (removing the old container)."""


class KamalMissing(PermanentError):
    """The kamal command is not installed where the reconciler runs."""


class KamalFailed(TemporaryError):
    """A kamal command failed. Carries Kamal's own last error lines."""

    exit_code = EXIT_RUNTIME

    def __init__(self, command: str, returncode: int | None, lines: list[str], hint: str = "") -> None:
        self.command = command
        self.returncode = returncode
        self.lines = lines
        tail = "\n".join(f"    {line}" for line in lines) or "    (no output)"
        status = f"exited {returncode}" if returncode is not None else "failed"
        extra = f" {hint}" if hint else ""
        super().__init__(f"`{command}` {status}.{extra}\nKamal said:\n{tail}")
