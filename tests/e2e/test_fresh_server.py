"""A fresh server from zero, as the README's "How you use it" says, and the wheel outside the checkout.

The fresh server is a container of a debootstrap'ed Debian 12 that has never seen the project,
with systemd running as PID 1 (needs only CAP_SYS_ADMIN here; `--privileged` fails on these
machines). It shares the host's network and Docker engine (no Docker-in-Docker here): the
engine's socket is bind-mounted, its own docker.service is masked, and its data root is visible
read-only, as a server sees its own. Its apt archives are a cache kept between runs, and pip is
offline with a wheelhouse (downloaded once, cached) plus the wheel built from this checkout.

What the README's lines cannot say and the test supplies: `--gpus none --seed DIR` (no GPU and
no internet for the example's models: the seed points at the test registry and the harness
images), the sshd port the "provider" configured, the laptop's SSH config naming `gpu-box`, and
`$EDITOR` as a script that pins the model.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from tests.e2e.packaging import ROOT, build_wheel, wheelhouse
from tests.harness.images import BASE_IMAGE, TEST_LABEL, _get_image, _image_lock
from tests.harness.kamal_fixtures import STANDIN_IMAGE, ensure_standin_images
from tests.harness.registry import Registry, free_port

pytestmark = pytest.mark.e2e

FRESH_IMAGE = "local/fresh-debian:bookworm"
CACHE = Path("/var/cache/reconciler-tests")
CI_ADDS = ["--gpus", "none", "--seed", "/root/seed"]


def readme_block() -> tuple[list[str], list[str]]:
    """The server lines and the laptop lines of the README's "How you use it" block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How you use it", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    server: list[str] = []
    laptop: list[str] = []
    current: list[str] | None = None
    for line in block.splitlines():
        if line.startswith("# on the server"):
            current = server
        elif line.startswith("# on your laptop"):
            current = laptop
        elif line.strip() and current is not None:
            current.append(line)
    return server, laptop


def ensure_fresh_image(client: docker.DockerClient) -> str:
    """Debian 12 as a server comes: systemd, openssh-server, python3 (the harness's debootstrap
    rootfs plus those packages). Docker's own units are masked: the engine is the host's."""
    if _get_image(client, FRESH_IMAGE) is not None:
        return FRESH_IMAGE
    with _image_lock():
        if _get_image(client, FRESH_IMAGE) is None:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "Dockerfile").write_text(
                    textwrap.dedent(f"""\
                    FROM {BASE_IMAGE}
                    RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \\
                          --no-install-recommends systemd systemd-sysv dbus openssh-server >/dev/null \\
                     && rm -rf /var/lib/apt/lists/*
                    RUN systemctl mask docker.service docker.socket containerd.service \\
                     && systemctl mask getty@tty1.service systemd-logind.service
                    STOPSIGNAL SIGRTMIN+3
                    CMD ["/lib/systemd/systemd"]
                    """)
                )
                client.images.build(path=tmp, tag=FRESH_IMAGE, labels=dict(TEST_LABEL), rm=True, pull=False)
    return FRESH_IMAGE


class FreshServer:
    """The fresh Debian: with systemd as PID 1 (CAP_SYS_ADMIN for its namespaces), or, with
    `systemd=False`, a plain container where no init system runs."""

    def __init__(self, client: docker.DockerClient, root: Path, ssh_port: int, systemd: bool = True) -> None:
        self.client, self.root, self.ssh_port = client, root, ssh_port
        apt = CACHE / "fresh-server-apt"
        apt.mkdir(parents=True, exist_ok=True)
        init: dict[str, Any] = (
            {"cap_add": ["SYS_ADMIN"], "security_opt": ["seccomp=unconfined", "apparmor=unconfined"]}
            if systemd
            else {"command": ["sleep", "infinity"]}
        )
        self.container = client.containers.run(
            FRESH_IMAGE,
            detach=True,
            name=f"rcl-fresh-{uuid.uuid4().hex[:8]}",
            labels=dict(TEST_LABEL),
            network_mode="host",
            tmpfs={"/run": "", "/run/lock": "", "/tmp": "exec"},  # Kamal (a packed Ruby) runs code from /tmp
            **init,
            volumes={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
                "/run/docker.sock": {"bind": "/run/docker.sock", "mode": "rw"},
                "/var/lib/docker": {"bind": "/var/lib/docker", "mode": "ro"},
                str(root / "root"): {"bind": "/root", "mode": "rw"},
                str(apt): {"bind": "/var/cache/apt/archives", "mode": "rw"},
            },
        )
        if systemd:
            self.wait_booted()

    def sh(self, script: str, env: dict[str, str] | None = None, timeout: int = 900) -> tuple[int, str]:
        argv = [
            "docker",
            "exec",
            *[f"-e{k}={v}" for k, v in (env or {}).items()],
            "-w",
            "/root",
            str(self.container.name),
            "bash",
            "-lc",
            script,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return done.returncode, done.stdout + done.stderr

    def wait_booted(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _rc, out = self.sh("systemctl is-system-running")
            if out.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise AssertionError(f"systemd did not boot: {out}")

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.sh("systemctl stop reconciler docker-registry ssh", timeout=60)
            self.container.remove(force=True)


def seed(registry: Registry, network: str, names: dict[str, Any], image: str) -> dict[str, str]:
    model = registry.push_model(
        "phi3",
        "mini",
        arch="phi3",
        block_count=2,
        head_count=4,
        head_count_kv=4,
        embedding_length=64,
        context_length=4096,
        size_bytes=256 * 1024,
    )
    server = {"budgets": {"disk": {"models": "1GiB", "min_free": "1GiB"}, "vram": {"per_gpu": "2GiB"}}}
    ollama = {
        "container": {
            "name": names["ollama"],
            "image": image,
            "gpus": "all",
            "volume": names["volume"],
            "network": network,
            "publish": {"port": names["ollama_port"]},
            "env": {
                "OLLAMA_KEEP_ALIVE": "5m",
                "OLLAMA_CONTEXT_LENGTH": 256,
                "extra": {"FAKE_OLLAMA_OVERHEAD": str(256 * 1024)},
            },
        },
        "registries": [{"host": registry.host, "insecure": True, "url": registry.url}],
        "models": [{"name": model.name, "num_ctx": 256}],
    }
    webui = {
        "image": STANDIN_IMAGE,
        "exposure": {"mode": "published", "port": names["webui_port"]},
        "kamal": {"service": names["service"], "data_volume": names["data"], "image": names["service"]},
    }
    return {
        "server.yaml": yaml.safe_dump(server),
        "ollama.yaml": yaml.safe_dump(ollama),
        "openwebui.yaml": yaml.safe_dump(webui),
        "model": model.name,
    }


def names_for_this_run() -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "ollama": f"rcl-fresh-ollama-{suffix}",
        "volume": f"rcl-fresh-models-{suffix}",
        "ollama_port": free_port(),
        "webui_port": free_port(),
        "service": f"rclfresh{suffix}",
        "data": f"rcl-fresh-webui-{suffix}",
    }


def prepare(root: Path, tmp_path: Path, files: dict[str, str], *, webui: bool = True) -> str:
    """What the owner copied to the fresh server (bootstrap.sh and the wheel), what CI puts
    beside them (the wheelhouse, the seed), and the provider's authorized key. Returns the
    wheel's file name."""
    wheel = build_wheel(tmp_path / "dist")
    shutil.copytree(wheelhouse(wheel), root / "wheelhouse", ignore=shutil.ignore_patterns(".complete"))
    shutil.copy2(wheel, root / wheel.name)
    shutil.copy2(ROOT / "deploy" / "bootstrap.sh", root / "bootstrap.sh")
    (root / "seed").mkdir()
    for name in ("server.yaml", "ollama.yaml", *(["openwebui.yaml"] if webui else [])):
        (root / "seed" / name).write_text(files[name])
    return wheel.name


@contextlib.contextmanager
def fresh_server(
    client: docker.DockerClient, tmp_path: Path, *, systemd: bool, names: dict[str, Any]
) -> Iterator[FreshServer]:
    """The fresh server, then, once it (and the serve inside it) is gone, what it created."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5000)) == 0:
            pytest.fail("127.0.0.1:5000 is taken on this host; bootstrap puts the registry there")
    ensure_fresh_image(client)
    (tmp_path / "root").mkdir()
    server = FreshServer(client, tmp_path, free_port(), systemd=systemd)
    try:
        yield server
    finally:
        server.remove()  # first: its serve would heal what cleanup removes
        cleanup(client, names)


OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/root/wheelhouse"}


def test_a_fresh_server_from_zero_runs_the_readme_and_a_second_bootstrap_changes_nothing(
    docker_client: docker.DockerClient, registry: Registry, test_network: Any, fake_ollama_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    ensure_standin_images(docker_client)
    server_lines, laptop_lines = readme_block()
    assert len(server_lines) == 1 and laptop_lines
    names = names_for_this_run()
    root = tmp_path / "root"
    with fresh_server(docker_client, tmp_path, systemd=True, names=names) as fresh:
        wheel = prepare(root, tmp_path, seed(registry, test_network.name, names, fake_ollama_image))
        laptop_key = provider_key(fresh, root, tmp_path)
        # The README's server line, as written (plus what CI must add).
        assert server_lines[0].split()[:3] == ["./bootstrap.sh", "--wheel", wheel], (
            "the README names another wheel than this version builds"
        )
        rc, first = fresh.sh(" ".join([server_lines[0], *CI_ADDS]), env=OFFLINE, timeout=1200)
        print(first)
        assert rc == 0, first
        assert "systemd is not running" not in first
        assert re.search(r"✔ converged [0-9a-f]{12}", first), first
        assert "all 13 checks passed" in first, first
        rc, state = fresh.sh(
            "systemctl show -p ActiveState,Type,WatchdogUSec reconciler"
            " && systemd-analyze security reconciler.service | tail -1"
        )
        print(state)
        assert rc == 0 and "ActiveState=active" in state and "Type=notify" in state, state
        assert "WatchdogUSec=1min" in state, state

        pushed = laptop(laptop_lines, laptop_key, fresh.ssh_port)
        assert "remote: reconciler: reconciling" in pushed
        assert re.search(r"remote: \[1/\d\] load .*phi3:mini pinned", pushed), pushed
        assert re.search(r"remote: reconciler: ✔ converged [0-9a-f]{12}", pushed), pushed

        rc, second = fresh.sh(" ".join([server_lines[0], *CI_ADDS]), env=OFFLINE, timeout=600)
        print(second)
        assert rc == 0 and "bootstrap: done, 0 change(s)" in second, second
        assert "changed:" not in second

        # systemd's watchdog, shortened, restarts a frozen serve.
        rc, out = fresh.sh(
            "mkdir -p /etc/systemd/system/reconciler.service.d"
            " && printf '[Service]\\nWatchdogSec=3s\\n' > /etc/systemd/system/reconciler.service.d/t.conf"
            " && systemctl daemon-reload && systemctl restart reconciler"
            " && kill -STOP $(systemctl show -p MainPID --value reconciler)"
            " && for i in $(seq 60); do sleep 0.5; systemctl is-active --quiet reconciler"
            " && [ $(systemctl show -p NRestarts --value reconciler) = 1 ] && break; done"
            " && systemctl show -p NRestarts,ActiveState reconciler"
            " && journalctl -u reconciler | grep -i watchdog"
        )
        assert rc == 0 and "NRestarts=1" in out and "ActiveState=active" in out, out
        assert "Watchdog timeout (limit 3s)" in out, out


def provider_key(fresh: FreshServer, root: Path, tmp_path: Path) -> Path:
    """The owner's key in root's authorized_keys and sshd on its own port: the provider's part."""
    laptop_key = tmp_path / "laptop" / "id_ed25519"
    laptop_key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(laptop_key)], check=True)
    (root / ".ssh").mkdir(mode=0o700, exist_ok=True)  # systemd-tmpfiles makes it at boot
    shutil.copy2(laptop_key.with_suffix(".pub"), root / ".ssh" / "authorized_keys")
    rc, out = fresh.sh(
        f"chown -R root: /root && mkdir -p /etc/ssh/sshd_config.d && "
        f"echo 'Port {fresh.ssh_port}' > /etc/ssh/sshd_config.d/port.conf && "
        "{ ! systemctl is-active --quiet ssh || systemctl restart ssh; }"
    )
    assert rc == 0, out
    return laptop_key


def laptop(lines: list[str], key: Path, port: int) -> str:
    """The README's laptop lines in bash: `gpu-box` is this server in the laptop's SSH config,
    `$EDITOR` pins the first model."""
    home = key.parent
    (home / "config").write_text(
        textwrap.dedent(f"""\
        Host gpu-box
          HostName 127.0.0.1
          Port {port}
          IdentityFile {key}
          IdentitiesOnly yes
          UserKnownHostsFile {home}/known_hosts
          StrictHostKeyChecking accept-new
        """)
    )
    editor = home / "pin.py"
    editor.write_text(
        "import sys, yaml\np = sys.argv[1]\nd = yaml.safe_load(open(p))\n"
        "d['models'][0]['keep_loaded'] = True\nopen(p, 'w').write(yaml.safe_dump(d))\n"
    )
    env = {
        **os.environ,
        "GIT_SSH_COMMAND": f"ssh -F {home}/config",
        "EDITOR": f"{sys.executable} {editor}",
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
           for what, value in (("NAME", "owner"), ("EMAIL", "owner@lan"))},
    }  # fmt: skip
    done = subprocess.run(["bash", "-ec", "\n".join(lines)], cwd=home, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_without_systemd_bootstrap_says_so_and_starts_serve_itself(
    docker_client: docker.DockerClient, registry: Registry, test_network: Any, fake_ollama_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """No init system (a plain container): bootstrap says so, starts sshd, the registry and
    `serve` by hand, converges, and a second run finds them running. No Kamal here (no
    openwebui.yaml): the deploy path is the systemd test's."""
    names = names_for_this_run()
    root = tmp_path / "root"
    with fresh_server(docker_client, tmp_path, systemd=False, names=names) as fresh:
        seeded = seed(registry, test_network.name, names, fake_ollama_image)
        wheel = prepare(root, tmp_path, seeded, webui=False)
        provider_key(fresh, root, tmp_path)
        command = f"./bootstrap.sh --wheel {wheel} {' '.join(CI_ADDS)}"
        rc, first = fresh.sh(command, env=OFFLINE, timeout=1200)
        print(first)
        assert rc == 0, first
        assert "systemd is not running here" in first and "started serve (pid" in first
        assert "started sshd" in first and "started docker-registry" in first
        assert re.search(r"✔ converged [0-9a-f]{12}", first), first
        rc, second = fresh.sh(command, env=OFFLINE, timeout=600)
        assert rc == 0 and "bootstrap: done, 0 change(s)" in second, second
        assert "serve is running (pid" in second


def cleanup(client: docker.DockerClient, names: dict[str, Any]) -> None:
    """What the fresh server made on the shared engine: its containers, volumes and images."""
    for c in client.containers.list(all=True):
        if c.name == names["ollama"] or (c.labels or {}).get("service") == names["service"]:
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
    for volume in (names["volume"], names["data"]):
        with contextlib.suppress(docker.errors.APIError):
            client.volumes.get(volume).remove(force=True)
    for image in client.images.list(name=f"127.0.0.1:5000/{names['service']}"):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(str(image.id), force=True)
