"""How a preset becomes an OpenWebUI workspace model (pure: `preset_form`)."""

from __future__ import annotations

from reconciler.openwebui.converge import preset_form
from tests.unit.factories import desired

WEBUI = {
    "knowledge": [{"name": "work"}],
    "presets": [
        {"id": "fast", "name": "Fast", "base": "phi3:mini", "system": "Be brief.", "knowledge": ["work"]},
        {"id": "bare", "name": "Bare", "base": "phi3:mini"},
        {"id": "tools", "name": "Tools", "base": "llama3", "knowledge": ["work"],
         "params": {"function_calling": "native"}},
    ],
}  # fmt: skip


def test_a_preset_with_knowledge_retrieves_it_into_the_prompt_whatever_its_model() -> None:
    state = desired(["phi3:mini", "llama3"], openwebui=WEBUI)
    assert state.openwebui is not None
    fast, bare, tools = (preset_form(state, p, {"work": "kb-1"}) for p in state.openwebui.presets)
    assert fast["params"] == {"system": "Be brief.", "function_calling": "legacy"}
    assert fast["meta"]["knowledge"] == [{"id": "kb-1", "name": "work", "type": "collection"}]
    assert bare["params"] == {}  # no knowledge: OpenWebUI's default stays
    assert tools["params"] == {"function_calling": "native"}  # the preset's own choice wins
