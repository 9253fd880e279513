"""Kamal planned like the models: deploy vs rollback to a retained version, the certificate,
the network links, and what a Kamal hook makes sure of."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.apply.table import simulate
from reconciler.observed import CertificateObs, DeployedObs, KamalApp, KamalObs, Observed
from reconciler.plan.actions import (
    EnsureContainer,
    FreePort,
    KamalDeploy,
    KamalRollback,
    LinkNetworks,
    NetworkLink,
    RenewCertificate,
)
from reconciler.plan.container import container_action
from reconciler.plan.kamal import deploy_hash, hook_actions, renewal_due
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, desired, model, observed, running_container

PHI = "phi3:mini"
WEBUI: dict[str, Any] = {"default_models": [PHI], "exposure": {"mode": "published", "port": 3000}}


def _kamal_plan(seen: Observed, webui: dict[str, Any] | None = None) -> list[Any]:
    state = desired([PHI], openwebui=webui or WEBUI)
    return [a for a in plan(state, seen).actions if a.kind in ("kamal_deploy", "kamal_rollback", "tls_renew")]


def _seen(webui: dict[str, Any] | None = None, **extra: Any) -> Observed:
    state = desired([PHI], openwebui=webui or WEBUI)
    container = running_container(state).model_copy(update={"networks": ("kamal", "llm")})
    return observed(state, models=[model(PHI, ("p", GiB))], container=container, **extra)


def test_setup_the_first_time_then_deploy_a_changed_spec_or_roll_back_to_a_retained_one() -> None:
    state = desired([PHI], openwebui=WEBUI)
    version = deploy_hash(state)
    assert version is not None
    (first,) = _kamal_plan(_seen())
    assert (
        isinstance(first, KamalDeploy)
        and first.first
        and first.title() == f"kamal setup OpenWebUI version {version}"
    )
    assert first.reason == "desired since abc1234, OpenWebUI was never deployed"
    old = DeployedObs(openwebui_spec_hash="0ld")
    (deploy,) = _kamal_plan(_seen(deployed=old, kamal=KamalObs(kamal_network=True)))
    assert isinstance(deploy, KamalDeploy) and not deploy.first
    assert deploy.reason == f"desired since abc1234, OpenWebUI's spec changed (0ld → {version})"
    retained = KamalObs(
        kamal_network=True, apps=(KamalApp(name="w", version=version, networks=("kamal", "llm")),)
    )
    (back,) = _kamal_plan(_seen(deployed=old, kamal=retained))
    assert isinstance(back, KamalRollback) and back.version == version
    assert back.title() == f"kamal rollback OpenWebUI to version {version}"
    assert "still on the server: rolling back to it" in back.reason
    seen = _seen(deployed=old, kamal=retained)
    assert plan(state, simulate(plan(state, seen), seen)).empty


def test_the_renewal_window_and_the_ca_a_day_before_it() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    fresh = CertificateObs(
        not_after=datetime(2026, 6, 1, tzinfo=UTC), ca_not_after=datetime(2030, 1, 1, tzinfo=UTC)
    )
    assert renewal_due(fresh, at) is None
    near = fresh.model_copy(update={"not_after": datetime(2026, 1, 20, tzinfo=UTC)})
    due = renewal_due(near, at)
    assert isinstance(due, RenewCertificate) and not due.new_ca and "(in 19 days)" in due.reason
    old_ca = fresh.model_copy(update={"ca_not_after": datetime(2026, 1, 31, tzinfo=UTC)})
    due = renewal_due(old_ca, at)
    assert due is not None and due.new_ca and "devices must trust the new CA" in due.reason
    assert due.title() == "renew OpenWebUI's LAN TLS certificate and its CA"


def test_a_recreated_ollama_and_an_unlinked_openwebui_are_linked() -> None:
    state = desired([PHI], openwebui=WEBUI, container={"env": {"OLLAMA_NUM_PARALLEL": 2}})
    old = desired([PHI], openwebui=WEBUI)
    version = deploy_hash(state)
    app = KamalApp(name="openwebui-web-v1", version=version, running=True, networks=("kamal",))
    seen = observed(
        state,
        models=[model(PHI, ("p", GiB))],
        container=running_container(old).model_copy(update={"networks": ("kamal", "llm")}),
        deployed=DeployedObs(openwebui_spec_hash=version),
        kamal=KamalObs(kamal_network=True, apps=(app,)),
    )
    actions = plan(state, seen).actions
    assert [a.kind for a in actions[:2]] == ["container", "networks"]
    links = actions[1]
    assert isinstance(links, LinkNetworks)
    assert links.links == (
        NetworkLink(
            container="ollama", network="kamal", alias="ollama"
        ),  # recreated: on its own network only
        NetworkLink(container="openwebui-web-v1", network="llm"),
    )
    assert links.title() == "link networks: ollama → kamal as ollama, openwebui-web-v1 → llm"
    assert links.needs() >= actions[0].provides()  # a failed recreate blocks the link
    assert plan(state, simulate(plan(state, seen), seen)).empty


def test_a_kamal_hook_makes_sure_of_the_container_the_links_and_in_pre_app_boot_the_port() -> None:
    state = desired([PHI], openwebui=WEBUI)
    app = KamalApp(name="openwebui-web-v1", version="v1", running=True, networks=("kamal", "llm"))
    stopped = running_container(state).model_copy(
        update={"running": False, "status": "exited", "networks": ("llm",)}
    )
    seen = Observed(
        container=stopped, ollama_reachable=False, kamal=KamalObs(kamal_network=True, apps=(app,))
    )
    container = container_action(state, stopped)
    assert isinstance(container, EnsureContainer) and container.op == "start"
    boot = hook_actions(state, seen, container, "pre-app-boot")
    assert [a.kind for a in boot] == ["container", "networks", "free_port"]
    free = boot[-1]
    assert isinstance(free, FreePort) and free.containers == ("openwebui-web-v1",) and free.port == 3000
    assert [a.kind for a in hook_actions(state, seen, container, "post-deploy")] == ["container", "networks"]
    proxied = desired([PHI], openwebui={**WEBUI, "exposure": {"mode": "proxy"}})
    assert [a.kind for a in hook_actions(proxied, seen, None, "pre-app-boot")] == ["networks"]
