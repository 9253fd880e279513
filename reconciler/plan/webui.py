"""Which parts of the desired state each OpenWebUI executor owns, as hashes (pure).

The deploy hash covers what reaches OpenWebUI's container (image, environment,
exposure, how it reaches Ollama): a change means a new Kamal version. The settings
hash covers what lives in OpenWebUI's database (knowledge, presets, visible models):
a change means REST API calls, no redeploy.
"""

from __future__ import annotations

from reconciler.desired.refs import canonical
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


def settings_hash(desired: DesiredState) -> str | None:
    webui = desired.openwebui
    if webui is None:
        return None
    models = sorted(canonical(m.name) for m in desired.ollama.all_models())
    return spec_hash(
        {
            "knowledge": [k.model_dump(mode="json") for k in webui.knowledge],
            "files": desired.knowledge_files,
            "presets": [p.model_dump(mode="json") for p in webui.presets],
            "models": models,
        }
    )
