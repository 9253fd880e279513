"""A no-op reconcile of OpenWebUI vs a no-op `kamal deploy` of the same version, side by side
(target: the reconcile at least 50× faster).

    .venv/bin/python bench/kamal.py

Sets up what the e2e Kamal tests use (sshd on 127.0.0.1, a registry container, the stand-in
OpenWebUI image, the fake Ollama), deploys once with `kamal setup`, then times:
  - reconcile: observe the service's running versions from Docker labels and the Ollama
    container, then `plan` with that observation (deployed hash == desired) — no actions;
  - kamal: `kamal deploy --skip-push --version=<same>` (what a naive reconciler would run).
Everything it created is removed at the end.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker

from reconciler.kamal import deploy as kamal
from reconciler.kamal.cli import run_kamal
from reconciler.kamal.render import Timing
from reconciler.observe.docker import observe_container
from reconciler.observe.kamal import running_versions
from reconciler.observed import DeployedObs, Observed
from reconciler.plan.kamal import deploy_hash
from reconciler.plan.openwebui import settings_hash
from reconciler.plan.planner import plan
from tests.e2e.kamal_support import cleanup, make_desired
from tests.harness.dockerd import ensure_dockerd
from tests.harness.images import TEST_LABEL, ensure_base_image, ensure_fake_ollama_image
from tests.harness.kamal_fixtures import ensure_standin_images, running_sshd
from tests.harness.registry import Registry

RECONCILE_RUNS = 50
KAMAL_RUNS = 3


def main() -> None:
    ensure_dockerd()
    client = docker.from_env()
    ensure_base_image(client)
    ollama_image = ensure_fake_ollama_image(client)
    standin, _ = ensure_standin_images(client)
    network = client.networks.create(f"rcl-bench-{uuid.uuid4().hex[:6]}", labels=dict(TEST_LABEL))
    registry = Registry(client, network)
    try:
        with running_sshd() as sshd, tempfile.TemporaryDirectory() as tmp:
            desired = make_desired(sshd=sshd, registry=registry, standin=standin, ollama_image=ollama_image)
            assert desired.openwebui is not None
            version = deploy_hash(desired)
            assert version is not None
            workdir = Path(tmp) / "project"
            timing = Timing(readiness_delay=1, deploy_timeout=30, drain_timeout=2)
            try:
                kamal.deploy(
                    desired, version, kamal.Target(workdir=workdir, docker=client, timing=timing), first=True
                )
                service = desired.openwebui.kamal.service

                def reconcile() -> None:
                    running = running_versions(client, service)
                    observed = Observed(
                        container=observe_container(client, desired.ollama.container.name),
                        deployed=DeployedObs(
                            openwebui_spec_hash=version if version in running else None,
                            openwebui_settings_hash=settings_hash(desired),
                        ),
                    )
                    result = plan(desired, observed)
                    assert not result.actions, result.actions

                reconcile_s = []
                for _ in range(RECONCILE_RUNS):
                    t = time.perf_counter()
                    reconcile()
                    reconcile_s.append(time.perf_counter() - t)
                kamal_s = []
                for _ in range(KAMAL_RUNS):
                    t = time.perf_counter()
                    run_kamal(
                        ["deploy", "--skip-push", f"--version={version}"],
                        workdir=workdir,
                        env={"RECONCILER_STATE": str(workdir / ".kamal/reconciler-desired.json"),
                             "RECONCILER_PYTHON": sys.executable},
                    )  # fmt: skip
                    kamal_s.append(time.perf_counter() - t)
            finally:
                cleanup(client, desired)
    finally:
        registry.stop()
        network.remove()
        client.close()
    r, k = statistics.median(reconcile_s), statistics.median(kamal_s)
    print(f"no-op reconcile (observe + plan), median of {RECONCILE_RUNS}: {r * 1000:8.1f} ms")
    print(f"no-op kamal deploy, same version, median of {KAMAL_RUNS}:   {k * 1000:8.1f} ms")
    print(f"ratio: {k / r:.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
