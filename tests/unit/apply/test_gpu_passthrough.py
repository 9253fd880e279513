"""GPU passthrough fallbacks: the order tried, what is recorded, the errors (a stand-in engine
for the one seam: `containers.create/start`; the real engine's refusals are in
tests/e2e/test_observe_container.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest

from reconciler.apply.container import PassthroughMemory, create_kwargs, ensure_container, gpu_kwargs
from reconciler.errors import ContainerFailed, GpuPassthroughFailed
from reconciler.labels import GPU_PASSTHROUGH
from reconciler.observed import ContainerObs
from reconciler.plan.actions import EnsureContainer
from reconciler.state.gpu import flag, load_passthrough, save_passthrough, try_order
from tests.unit.apply.test_container import spec


def mode_of(kwargs: dict[str, Any]) -> str:
    return str(kwargs["labels"][GPU_PASSTHROUGH])


class FakeContainer:
    def __init__(self, engine: FakeEngine, kwargs: dict[str, Any]) -> None:
        self.engine, self.kwargs, self.id = engine, kwargs, f"id-{len(engine.created)}"
        self.labels = kwargs["labels"]
        self.name = kwargs["name"]

    def start(self) -> None:
        error = self.engine.refuse.get(mode_of(self.kwargs))
        if error:
            raise docker.errors.APIError(error, explanation=error)
        self.engine.running = self

    def stop(self, timeout: int = 0) -> None: ...

    def remove(self, **_: Any) -> None:
        self.engine.removed.append(self.name)
        self.engine.existing = None


class Present:
    """Images, networks and volumes: always there."""

    def get(self, name: str) -> str:
        return name

    def list(self, **_: Any) -> list[str]:
        return ["present"]


class FakeEngine:
    """containers.get/create only; images, networks and volumes always present."""

    def __init__(self, refuse: dict[str, str], existing: dict[str, str] | None = None) -> None:
        self.refuse = refuse
        self.created: list[str] = []
        self.removed: list[str] = []
        self.running: FakeContainer | None = None
        self.existing: FakeContainer | None = (
            FakeContainer(self, {"labels": existing, "name": "ollama"}) if existing is not None else None
        )
        self.containers = self
        self.images = self.networks = self.volumes = Present()

    def get(self, name: str) -> Any:
        if self.existing is None:
            raise docker.errors.NotFound(name)
        return self.existing

    def create(self, **kwargs: Any) -> FakeContainer:
        self.created.append(mode_of(kwargs))
        self.existing = FakeContainer(self, kwargs)
        return self.existing


def run(engine: FakeEngine, memory: PassthroughMemory | None, gpus: Any = "all") -> None:
    action = EnsureContainer(op="create", spec=spec(gpus=gpus), spec_hash="h", reason="unit")
    import reconciler.apply.container as container

    seen = ContainerObs(name=action.spec.name, running=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(container, "wait_ready", lambda url, timeout: True)
        patch.setattr(container, "observe_container", lambda client, name: seen)
        ensure_container(engine, action, memory=memory)  # type: ignore[arg-type]


def memory_in(store: list[str]) -> PassthroughMemory:
    return PassthroughMemory(load=lambda: store[-1] if store else None, save=store.append)  # type: ignore[arg-type,return-value]


def test_cdi_is_tried_after_the_device_request_and_recorded() -> None:
    engine = FakeEngine({"device-request": 'could not select device driver "" with capabilities: [[gpu]]'})
    saved: list[str] = []
    run(engine, memory_in(saved))
    assert engine.created == ["device-request", "cdi"]
    assert saved == ["cdi"]
    assert engine.running is not None and mode_of(engine.running.kwargs) == "cdi"


def test_the_recorded_mode_is_tried_first_and_not_rewritten() -> None:
    engine = FakeEngine({})
    saved = ["runtime"]
    run(engine, memory_in(saved))
    assert engine.created == ["runtime"] and saved == ["runtime"]


def test_the_old_containers_mode_is_tried_first_without_a_record() -> None:
    engine = FakeEngine({}, existing={GPU_PASSTHROUGH: "cdi"})
    run(engine, None)
    assert engine.created == ["cdi"]


def test_none_works_one_error_with_every_attempt_and_the_fix() -> None:
    engine = FakeEngine({"device-request": "no gpu driver", "cdi": "no cdi driver", "runtime": "no runtime"})
    saved: list[str] = []
    with pytest.raises(GpuPassthroughFailed) as failed:
        run(engine, memory_in(saved))
    assert failed.value.attempts == [
        ("--gpus all", "no gpu driver"),
        ("--device nvidia.com/gpu=all", "no cdi driver"),
        ("--runtime=nvidia", "no runtime"),
    ]
    assert "nvidia-ctk runtime configure --runtime=docker" in str(failed.value)
    assert "container.gpus: none" in str(failed.value)
    assert saved == [] and engine.running is None


def test_the_same_refusal_for_every_flag_is_not_blamed_on_the_gpu() -> None:
    same = "port is already allocated"
    engine = FakeEngine({"device-request": same, "cdi": same, "runtime": same})
    with pytest.raises(ContainerFailed) as failed:
        run(engine, None)
    assert not isinstance(failed.value, GpuPassthroughFailed) and same in str(failed.value)


def test_gpus_none_uses_no_gpu_flag() -> None:
    kwargs = create_kwargs(spec(gpus="none"), "h")
    assert "device_requests" not in kwargs and "runtime" not in kwargs
    assert GPU_PASSTHROUGH not in kwargs["labels"]


def test_the_three_ways_as_engine_arguments() -> None:
    (cdi,) = gpu_kwargs("all", "cdi")["device_requests"]
    assert cdi["Driver"] == "cdi" and cdi["DeviceIDs"] == ["nvidia.com/gpu=all"]
    (ids,) = gpu_kwargs(("0", "1"), "cdi")["device_requests"]
    assert ids["DeviceIDs"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    runtime = create_kwargs(spec(gpus=("1",)), "h", "runtime")
    assert runtime["runtime"] == "nvidia" and "device_requests" not in runtime
    assert runtime["environment"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    assert runtime["environment"]["OLLAMA_HOST"] == "0.0.0.0:11434"  # the spec's env is kept
    assert [flag(m) for m in try_order(None)] == [
        "--gpus all",
        "--device nvidia.com/gpu=all",
        "--runtime=nvidia",
    ]
    assert try_order("runtime") == ("runtime", "device-request", "cdi")
    assert flag("device-request", ("0", "2")) == "--gpus device=0,2"


def test_the_record_survives_in_the_state_directory(tmp_path: Path) -> None:
    assert load_passthrough(tmp_path) is None
    save_passthrough(tmp_path, "cdi", "ollama")
    record = load_passthrough(tmp_path)
    assert record is not None and record.mode == "cdi" and record.container == "ollama"
    assert (tmp_path / "gpu-passthrough.json").stat().st_mode & 0o777 == 0o600
