"""Cross-file checks of ports and volumes (pure): two services never share a host port or a
volume, and the Kamal registry on this machine never takes a port another service has."""

from __future__ import annotations

from reconciler.desired.schema import OllamaSpec, OpenWebUISpec, ServerSpec
from reconciler.desired.secrets import host_of, is_this_host
from reconciler.desired.yamlpos import Path

Check = tuple[str, Path, str, str]  # section ("ollama"/"openwebui"), path, message, hint
_WILDCARDS = {"0.0.0.0", "::"}  # noqa: S104 (compared with, never bound)


def _binds(addresses: list[str] | None, lan: list[str]) -> set[str]:
    return set(addresses) if addresses is not None else {"127.0.0.1", *lan}


def _overlap(a: set[str], b: set[str]) -> bool:
    return bool(a & b) or bool((a | b) & _WILDCARDS)


def port_and_volume_checks(
    server: ServerSpec, ollama: OllamaSpec, webui: OpenWebUISpec | None
) -> list[Check]:
    if webui is None:
        return []
    checks: list[Check] = []
    lan = server.lan_addresses
    publish = ollama.container.publish
    ollama_binds = _binds(publish.addresses, lan)
    exposure = webui.exposure
    if exposure.mode == "published":
        webui_ports = {exposure.port}
        if exposure.port == publish.port and _overlap(ollama_binds, _binds(exposure.addresses, lan)):
            checks.append(
                ("openwebui", ("exposure", "port"), f"port {exposure.port} is Ollama's (ollama.yaml "
                 "container.publish.port) on the same addresses", "give OpenWebUI another port")
            )  # fmt: skip
    else:
        webui_ports = {exposure.http_port, exposure.https_port}
        if publish.port in webui_ports and _overlap(ollama_binds, _binds(exposure.addresses, lan)):
            checks.append(
                ("ollama", ("container", "publish", "port"), f"port {publish.port} is kamal-proxy's "
                 "(openwebui.yaml exposure.mode: proxy)", "publish Ollama on another port, e.g. 11434")
            )  # fmt: skip
    server_addr = webui.kamal.registry.server
    host, _, port = server_addr.rpartition(":") if ":" in server_addr else (server_addr, "", "")
    if port.isdigit() and is_this_host(host_of(host)):
        taken = {publish.port: "Ollama's", **dict.fromkeys(webui_ports, "OpenWebUI's")}
        if int(port) in taken:
            checks.append(
                ("openwebui", ("kamal", "registry", "server"), f"port {port} on this machine is "
                 f"{taken[int(port)]}, not a registry's", "run the registry on a port of its own, e.g. 5000")
            )  # fmt: skip
    if ollama.container.volume == webui.kamal.data_volume:
        checks.append(
            ("ollama", ("container", "volume"), "the models volume is OpenWebUI's data volume "
             "(openwebui.yaml kamal.data_volume)", "give each its own volume (ollama / open-webui)")
        )  # fmt: skip
    return checks
