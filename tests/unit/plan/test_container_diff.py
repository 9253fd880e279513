"""Field-level diffs of the Ollama container's spec (issue 19 item 4, the container part)."""

from __future__ import annotations

from reconciler.plan.actions import ContainerSpec
from reconciler.plan.container_diff import label_form, spec_diff

BASE = ContainerSpec(
    name="ollama", image="ollama/ollama:0.6.8", env={"OLLAMA_KEEP_ALIVE": "5m", "HF_TOKEN": "hf_old"},
    gpus="all", volume="ollama-models", network="llm", port=11434, bind_addresses=("127.0.0.1",),
    restart="unless-stopped",
)  # fmt: skip


def test_each_changed_field_is_named_with_its_values() -> None:
    env = {"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_DEBUG": "1", "HF_TOKEN": "hf_old"}
    changed = {"image": "ollama/ollama:0.32.15", "env": env, "gpus": ("GPU-1",), "port": 11435}
    new = BASE.model_copy(
        update={**changed, "bind_addresses": ("127.0.0.1", "192.168.1.5"), "restart": "always"}
    )
    assert spec_diff(label_form(BASE), new) == (
        "image ollama/ollama:0.6.8 → ollama/ollama:0.32.15",
        "env OLLAMA_DEBUG (unset) → 1",
        "env OLLAMA_KEEP_ALIVE 5m → 10m",
        "port 11434 → 11435",
        "addresses 127.0.0.1 → 127.0.0.1, 192.168.1.5",
        "gpus all → GPU-1",
        "restart unless-stopped → always",
    )
    assert spec_diff(label_form(BASE), BASE) == ()


def test_a_secret_value_is_never_shown_only_that_it_changed() -> None:
    token = "ghp_" + "a" * 36  # a GitHub token's shape, under a name that does not say so
    new = BASE.model_copy(update={"env": {"OLLAMA_KEEP_ALIVE": "5m", "HF_TOKEN": "hf_new", "NOTE": token}})
    kept = label_form(BASE)  # what the container's label holds
    assert "hf_old" not in kept.model_dump_json()
    diff = spec_diff(kept, new)
    assert diff == ("env HF_TOKEN changed", "env NOTE added")
    assert not any("hf_" in d or token in d for d in diff)
