"""The fields of the Ollama container that a recreate changes, for the plan's reason and the
push output (`image ollama/ollama:0.6.8 → 0.32.15`), instead of two spec hashes.

Compared with the spec the running container was created from (its `reconciler.spec`
label). An environment value whose name looks like a secret's, or whose value has a
secret's shape, is never shown: only that it changed.
"""

from __future__ import annotations

import hashlib

from reconciler.desired.redact import secret_shape
from reconciler.desired.schema import looks_like_secret_name
from reconciler.plan.actions import ContainerSpec

MAX_SHOWN = 60  # characters of one value


def _secret(name: str, value: str) -> bool:
    return looks_like_secret_name(name) or secret_shape(value) is not None


def label_form(spec: ContainerSpec) -> ContainerSpec:
    """The spec as the `reconciler.spec` label keeps it: a secret-looking value as its digest
    (enough to tell that it changed)."""
    env = {k: "sha256:" + hashlib.sha256(v.encode()).hexdigest()[:16] if _secret(k, v) else v
           for k, v in spec.env.items()}  # fmt: skip
    return spec.model_copy(update={"env": env})


def _show(value: str | None) -> str:
    if value is None:
        return "(unset)"
    return value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…"


def _env(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if (
            _secret(name, before or "")
            or _secret(name, after or "")
            or (before or after or "").startswith("sha256:")
        ):
            changes.append(
                f"env {name} {'added' if before is None else 'removed' if after is None else 'changed'}"
            )
        else:
            changes.append(f"env {name} {_show(before)} → {_show(after)}")
    return changes


def _gpus(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def spec_diff(old: ContainerSpec, new: ContainerSpec) -> tuple[str, ...]:
    """One entry per changed field, in the order a person reads a container's spec (`old` as
    the label keeps it; `new` is put in that form first)."""
    new = label_form(new)
    changes: list[str] = []
    if old.image != new.image:
        changes.append(f"image {old.image} → {new.image}")
    changes += _env(old.env, new.env)
    if old.port != new.port:
        changes.append(f"port {old.port} → {new.port}")
    if old.bind_addresses != new.bind_addresses:
        changes.append(f"addresses {', '.join(old.bind_addresses)} → {', '.join(new.bind_addresses)}")
    if old.gpus != new.gpus:
        changes.append(f"gpus {_gpus(old.gpus)} → {_gpus(new.gpus)}")
    for field in ("volume", "network", "network_alias", "restart", "name"):
        before, after = getattr(old, field), getattr(new, field)
        if before != after:
            changes.append(f"{field.replace('_', ' ')} {before} → {after}")
    return tuple(changes)
