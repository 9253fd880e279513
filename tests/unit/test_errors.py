"""Errors are temporary (retried with backoff) or permanent (Stalled with the fix), by type."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import docker.errors
import httpx
import ollama
import pytest
import requests

import reconciler
from reconciler.apply import container, models
from reconciler.errors import (
    ImageNotInRegistry,
    PermanentError,
    ReconcilerError,
    RegistryUnreachable,
    TemporaryError,
)
from reconciler.openwebui.client import (
    OpenWebUIGone,
    OpenWebUIRefused,
    OpenWebUIUnavailable,
    openwebui_error,
)

# Raised only as one of their two kinds (their subclasses), or caught where they are raised.
_SPLIT = {"ImageUnavailable", "ModelActionFailed", "OpenWebUIError", "ExecutorUnavailable"}


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    return found | {sub for child in found for sub in _all_subclasses(child)}


def test_every_error_is_temporary_or_permanent() -> None:
    for module in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        importlib.import_module(module.name)
    unkinded = [
        cls.__qualname__
        for cls in _all_subclasses(ReconcilerError)
        if not issubclass(cls, TemporaryError | PermanentError)
        and cls.__qualname__ not in _SPLIT
        and cls not in (TemporaryError, PermanentError)
    ]
    assert unkinded == []


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


class _Images:
    def __init__(self, status: int | None) -> None:
        self.status = status

    def get(self, image: str) -> None:
        raise docker.errors.ImageNotFound("no such image")

    def pull(self, image: str) -> None:
        if self.status is None:
            raise docker.errors.DockerException("engine connection aborted")
        raise docker.errors.APIError("pull failed", response=_response(self.status), explanation="x")


class _Client:
    def __init__(self, status: int | None) -> None:
        self.images = _Images(status)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, ImageNotInRegistry),
        (401, ImageNotInRegistry),
        (500, RegistryUnreachable),
        (None, RegistryUnreachable),
    ],
)
def test_an_image_no_registry_has_is_permanent_a_registry_that_does_not_answer_temporary(
    status: int | None, kind: type[ReconcilerError]
) -> None:
    client: Any = _Client(status)
    with pytest.raises(kind) as info:
        container._ensure_image(client, "registry:5000/ollama/ollama:9.9.9", None)
    assert info.value.permanent is (kind is ImageNotInRegistry)
    assert "registry:5000/ollama/ollama:9.9.9" in str(info.value)


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (ollama.ResponseError("template error: unclosed action", 400), True),
        (ollama.ResponseError('"nomic-embed-text" does not support generate', 400), True),
        (ollama.ResponseError("model not found", 404), False),  # gone since observed: plan again
        (ollama.ResponseError("llama runner process has terminated", 500), False),
        (httpx.ReadTimeout("timed out"), False),
        (ConnectionError("refused"), False),
    ],
)
def test_ollama_refusing_a_request_is_permanent_failing_to_answer_is_not(
    exc: Exception, permanent: bool
) -> None:
    error = models._fail("create", "x", exc)
    assert isinstance(error, models.ModelActionFailed)
    assert error.permanent is permanent
    assert isinstance(error, models.ModelActionRefused if permanent else models.ModelActionInterrupted)


def test_openwebui_errors_by_the_status_it_answered() -> None:
    assert isinstance(openwebui_error("update model x", "Unauthorized", 401), OpenWebUIRefused)
    assert isinstance(openwebui_error("update model x", "not found", 404), OpenWebUIGone)
    gone = openwebui_error("update model x", "not found", 404)
    assert gone.retry_after == 0  # a conflict: observe again at once
    assert isinstance(openwebui_error("update model x", "boom", 502), OpenWebUIUnavailable)
    assert isinstance(openwebui_error("config", "ConnectError: refused"), OpenWebUIUnavailable)
