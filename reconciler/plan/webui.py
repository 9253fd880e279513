"""The version of OpenWebUI Kamal deploys, as a hash of what reaches its container (pure).

It covers the image, environment, exposure and how it reaches Ollama: a change means a new
Kamal version. What lives in OpenWebUI's database (knowledge, presets, visible models) is
not in it: a change there means REST API calls (plan/openwebui.py), no redeploy.
"""

from __future__ import annotations

from reconciler.desired.schema import DesiredState
from reconciler.plan.hashing import spec_hash


def deploy_hash(desired: DesiredState) -> str | None:
    webui = desired.openwebui
    if webui is None:
        return None
    spec = webui.model_dump(mode="json", exclude={"knowledge", "presets"})
    c = desired.ollama.container
    spec["_ollama"] = {"name": c.name, "network": c.network}
    spec["_lan"] = list(desired.server.lan_addresses)
    return spec_hash(spec)
