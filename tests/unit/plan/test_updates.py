"""Update policies: checks on a schedule, notify/auto, windows, the disk budget, digest pins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.desired.refs import canonical
from reconciler.desired.schema import ModelSpec, OllamaSpec
from reconciler.memory import Memory
from reconciler.observed import LoadedObs, ModelObs, UpstreamObs
from reconciler.plan.actions import Plan, RestoreModel, UpdateModel
from reconciler.plan.planner import plan
from reconciler.plan.update_policy import checks_due, in_window, next_check, resolve, rollback_name
from reconciler.state.upstream import record_lookups
from tests.unit.factories import GiB, blobs, desired, observed

OLD, NEW = "a" * 64, "b" * 64
AT = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LOCAL_3AM = datetime(2026, 12, 2, 3, 0, tzinfo=timezone(timedelta(hours=0)))


def present(name: str = "phi3:mini", digest: str = OLD, size: int = 2 * GiB) -> ModelObs:
    return ModelObs(name=canonical(name), digest=digest, blobs=blobs((f"w-{digest[:4]}", size)))


def upstream(
    name: str = "phi3:mini", digest: str | None = NEW, size: int = 2 * GiB, **kw: Any
) -> UpstreamObs:
    return UpstreamObs(
        name=canonical(name),
        checked_at=AT - timedelta(minutes=5),
        digest=digest,
        blobs=blobs((f"w-{(digest or 'none')[:4]}", size)),
        **kw,
    )


# -- the schema ---------------------------------------------------------------------------------
def test_a_name_with_a_digest_is_the_name_and_its_pin() -> None:
    spec = ModelSpec.model_validate({"name": f"phi3:mini@sha256:{OLD}"})
    assert (spec.name, spec.digest) == ("phi3:mini", f"sha256:{OLD}")
    with pytest.raises(ValidationError, match="64 lower-case hex"):
        ModelSpec.model_validate({"name": "phi3:mini@sha256:abc"})
    with pytest.raises(ValidationError, match="differ"):
        ModelSpec.model_validate({"name": f"phi3:mini@sha256:{OLD}", "digest": f"sha256:{NEW}"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window", "2-6", "HH:MM-HH:MM"),
        ("window", "02:00-02:00", "empty"),
        ("check_every", "1m", "at most every 5 minutes"),
        ("check_every", "6 hours", "30m, 6h or 1d"),
        ("policy", "sometimes", "never"),
    ],
)
def test_bad_update_policies_are_refused_with_the_fix(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OllamaSpec.model_validate({"updates": {field: value}})


def test_images_is_refused_on_one_model() -> None:
    with pytest.raises(ValidationError, match="top-level `updates:`"):
        ModelSpec.model_validate({"name": "phi3:mini", "updates": {"images": "notify"}})


def test_a_models_own_policy_overrides_the_global_one_field_by_field() -> None:
    state = desired(
        [{"name": "phi3:mini", "updates": {"policy": "auto"}}, "llama3"],
        updates={"policy": "notify", "check_every": "6h", "window": "02:00-06:00"},
    )
    own, default = (resolve(state, m) for m in state.ollama.models)
    assert (own.mode, own.every, own.window) == ("auto", timedelta(hours=6), "02:00-06:00")
    assert default.mode == "notify"
    assert resolve(desired(["x"]), desired(["x"]).ollama.models[0]).mode == "never"


# -- the schedule -------------------------------------------------------------------------------
def test_checks_are_due_once_per_interval_and_back_off_after_registry_errors() -> None:
    state = desired(["phi3:mini", "llama3"], updates={"policy": "notify", "check_every": "6h"})
    here = {canonical("phi3:mini"): present(), canonical("llama3"): present("llama3")}
    assert [m.name for m in checks_due(state, here, {}, AT)] == ["phi3:mini", "llama3"]
    fresh = {canonical("phi3:mini"): upstream(), canonical("llama3"): upstream("llama3")}
    assert checks_due(state, here, fresh, AT) == []
    assert len(checks_due(state, here, fresh, AT + timedelta(hours=6))) == 2
    failing = upstream(failures=2, error="registry.ollama.ai did not answer in time")
    assert next_check(failing, timedelta(hours=6)) == failing.checked_at + timedelta(hours=24)
    assert next_check(upstream(failures=9), timedelta(hours=1)) == upstream().checked_at + timedelta(hours=8)
    assert checks_due(desired(["phi3:mini"]), here, {}, AT) == []  # never: not looked at again


def test_a_pinned_model_is_checked_only_while_its_digest_differs() -> None:
    state = desired([{"name": f"phi3:mini@sha256:{OLD}"}])
    assert checks_due(state, {canonical("phi3:mini"): present()}, {}, AT) == []
    assert len(checks_due(state, {canonical("phi3:mini"): present(digest=NEW)}, {}, AT)) == 1


def test_windows_include_the_start_exclude_the_end_and_may_wrap_past_midnight() -> None:
    def at(hour: int, minute: int) -> datetime:
        return datetime(2026, 1, 1, hour, minute)

    assert in_window("02:00-06:00", at(2, 0)) and not in_window("02:00-06:00", at(6, 0))
    assert in_window("23:00-01:30", at(0, 45)) and in_window("23:00-01:30", at(23, 5))
    assert not in_window("23:00-01:30", at(12, 0))


def test_a_failed_check_keeps_the_last_digest_and_counts_the_failure() -> None:
    memory = Memory(upstream={canonical("phi3:mini"): upstream()})
    seen = observed(desired(["phi3:mini"]), remote_errors={canonical("phi3:mini"): "HTTP 503"})
    after = record_lookups(memory, seen, AT).upstream[canonical("phi3:mini")]
    assert (after.digest, after.failures, after.error, after.checked_at) == (NEW, 1, "HTTP 503", AT)


# -- notify / auto --------------------------------------------------------------------------------
def _plan(updates: dict[str, object], clock: datetime = LOCAL_3AM, disk: str = "100GiB", **kw: Any) -> Plan:
    state = desired(["phi3:mini"], updates=updates, disk=disk)
    seen = observed(state, models=[present()], upstream=(upstream(),), clock=clock, **kw)
    return plan(state, seen)


def test_notify_reports_the_update_and_changes_nothing() -> None:
    p = _plan({"policy": "notify"})
    assert p.actions == () and p.violations == ()  # never drift
    (state,) = p.updates
    assert state.state == "available"
    assert state.message() == f"update available: sha256:{OLD[:12]} → sha256:{NEW[:12]}, 2.0 GiB to download"


def test_auto_waits_outside_its_window_and_updates_inside_it_keeping_a_rollback_entry() -> None:
    outside = _plan({"policy": "auto", "window": "04:00-06:00"})
    assert outside.actions == ()
    assert outside.updates[0].state == "waiting"
    assert "outside the update window 04:00-06:00 (server time 03:00" in outside.updates[0].reason
    assert _plan({"policy": "auto"}).updates[0].reason.startswith("`auto` needs a `window:`")

    loaded = (LoadedObs(name=canonical("phi3:mini"), size=GiB, size_vram=GiB),)
    inside = _plan({"policy": "auto", "window": "02:00-06:00"}, loaded=loaded)
    (action,) = inside.actions
    assert isinstance(action, UpdateModel)
    assert (action.old_digest, action.new_digest, action.download_bytes) == (OLD, NEW, 2 * GiB)
    assert action.rollback == f"registry.ollama.ai/library/phi3:mini-sha256-{OLD[:12]}"
    assert action.unload_first
    assert inside.updates[0].state == "updating"


def test_auto_waits_with_the_reason_when_old_and_new_do_not_fit_the_disk_budget() -> None:
    p = _plan({"policy": "auto", "window": "02:00-06:00"}, disk="3GiB")
    assert p.actions == () and p.violations == ()
    assert p.updates[0].state == "waiting"
    assert "need 4.0 GiB on disk together, over the models budget 3.0 GiB" in p.updates[0].reason


def test_auto_waits_while_this_commit_pulls_other_models() -> None:
    state = desired(["phi3:mini", "llama3"], updates={"policy": "auto", "window": "02:00-06:00"})
    from tests.unit.factories import remote

    seen = observed(
        state,
        models=[present()],
        upstream=(upstream(),),
        clock=LOCAL_3AM,
        remotes=[remote("llama3", ("l", GiB))],
    )
    p = plan(state, seen)
    assert [a.kind for a in p.actions] == ["pull"]
    assert p.updates[0].state == "waiting" and "pulls of this commit run first" in p.updates[0].reason


def test_rollback_names_fit_ollamas_tag_limit() -> None:
    name = rollback_name("phi3:" + "t" * 80, OLD)
    assert len(name.rsplit(":", 1)[1]) == 80 and name.endswith(f"-sha256-{OLD[:12]}")


# -- digest pins ----------------------------------------------------------------------------------
def test_a_pinned_model_never_moves_and_a_digest_the_registry_no_longer_serves_is_refused() -> None:
    pinned = desired(
        [{"name": f"phi3:mini@sha256:{OLD}"}], updates={"policy": "auto", "window": "00:00-23:59"}
    )
    same = plan(pinned, observed(pinned, models=[present()], upstream=(upstream(),), clock=LOCAL_3AM))
    assert same.actions == () and same.updates[0].state == "pinned"

    moved = desired([{"name": f"phi3:mini@sha256:{NEW}"}])
    gone = plan(moved, observed(moved, models=[present()], upstream=(upstream(digest="c" * 64),)))
    (violation,) = gone.violations
    assert violation.budget == "digest"
    assert (
        "now serves sha256:cccccccccccc" in violation.message and "cannot pull a digest" in violation.message
    )

    served = plan(moved, observed(moved, models=[present()], upstream=(upstream(),)))
    assert [type(a) for a in served.actions] == [UpdateModel]


def test_a_pin_to_a_digest_kept_as_a_rollback_entry_is_restored_without_a_download() -> None:
    state = desired([{"name": f"phi3:mini@sha256:{OLD}"}])
    kept = present(rollback_name("phi3:mini", OLD), OLD)
    seen = observed(state, models=[present(digest=NEW), kept], upstream=(upstream(),))
    (action,) = plan(state, seen).actions
    assert isinstance(action, RestoreModel) and action.source == kept.name
    # Missing altogether: restored from the entry too, never pulled.
    (again,) = plan(state, observed(state, models=[kept])).actions
    assert isinstance(again, RestoreModel)


# -- status, --json, metrics ----------------------------------------------------------------------
def test_status_and_metrics_show_each_models_digest_and_the_upstream_one_with_its_time() -> None:
    from io import StringIO

    from prometheus_client import generate_latest
    from rich.console import Console

    from reconciler.report.metrics import Metrics
    from reconciler.report.status import Status, build
    from reconciler.report.text import print_status

    state = desired(["phi3:mini", "llama3"], updates={"policy": "notify"})
    seen = observed(
        state,
        models=[present(), present("llama3", NEW)],
        upstream=(upstream(), upstream("llama3")),
        clock=LOCAL_3AM,
    )
    p = plan(state, seen)
    status = build(
        Status(), head="abc", result="converged", desired_pinned={canonical("phi3:mini"): False,
        canonical("llama3"): False}, observed=seen, plan=p, errors=[], notes=[], applied="abc",
        ollama_version=None,
    )  # fmt: skip
    phi3, llama3 = status.models[:2]
    assert (phi3.digest, phi3.upstream_digest, phi3.upstream_checked_at) == (
        OLD,
        NEW,
        AT - timedelta(minutes=5),
    )
    assert (phi3.update_state, llama3.update_state, llama3.update) == ("available", "current", None)
    assert phi3.update is not None and phi3.update.startswith("update available: sha256:aaaaaaaaaaaa →")
    dumped = status.model_dump(mode="json")["models"][0]
    assert dumped["upstream_digest"] == NEW and dumped["upstream_checked_at"].startswith("2026-12-02T02:55")

    out = StringIO()
    print_status(status, None, Console(file=out, width=200))
    text = out.getvalue()
    assert f"sha256:{OLD[:12]} (upstream sha256:{NEW[:12]}, 2026-12-02 02:55)" in text
    assert "phi3:mini: update available" in text

    metrics = Metrics()
    metrics.observe("converged", 0.1, seen, None)
    exposed = generate_latest(metrics.registry).decode()
    phi3_name = canonical("phi3:mini")
    assert f'reconciler_model_update_available{{model="{phi3_name}"}} 1.0' in exposed
    assert f'upstream_digest="{NEW}"' in exposed
    assert f'reconciler_model_upstream_checked_timestamp_seconds{{model="{phi3_name}"}}' in exposed


def test_a_manifest_ollama_re_encoded_is_current_when_its_layers_are_the_registrys() -> None:
    """Ollama 0.6.8 writes json.Marshal(manifest), not the bytes served: another digest, same layers."""
    state = desired(["phi3:mini"], updates={"policy": "notify"})
    local = present(digest="e" * 64)
    same = upstream(digest=OLD).model_copy(update={"blobs": local.blobs})
    p = plan(state, observed(state, models=[local], upstream=(same,), clock=LOCAL_3AM))
    assert p.updates[0].state == "current"
    pinned = desired([{"name": f"phi3:mini@sha256:{OLD}"}])
    assert plan(pinned, observed(pinned, models=[local], upstream=(same,))).actions == ()
    assert checks_due(pinned, {local.name: local}, {local.name: same}, AT) == []


# -- record: commit -------------------------------------------------------------------------------
def test_record_commit_plans_a_commit_of_the_new_pin_instead_of_the_pull() -> None:
    from reconciler.plan.actions import RecordUpdate

    p = _plan({"policy": "auto", "window": "02:00-06:00", "record": "commit"})
    (action,) = p.actions
    assert isinstance(action, RecordUpdate) and (action.old_digest, action.new_digest) == (OLD, NEW)
    # Pinned at the digest it has: under auto + record: commit the pin is moved by a commit.
    state = desired(
        [{"name": f"phi3:mini@sha256:{OLD}"}],
        updates={"policy": "auto", "window": "02:00-06:00", "record": "commit"},
    )
    assert len(checks_due(state, {canonical("phi3:mini"): present()}, {}, AT)) == 1
    seen = observed(state, models=[present()], upstream=(upstream(),), clock=LOCAL_3AM)
    assert [type(a) for a in plan(state, seen).actions] == [RecordUpdate]


def test_a_pin_is_written_into_the_text_keeping_comments_quotes_and_other_lines() -> None:
    from reconciler.apply.record import pin_in_text

    text = (
        "# header\nmodels:\n  - name: llama3   # primary\n    keep_loaded: true\n"
        '  - name: "phi3:mini@sha256:'
        + OLD
        + '"\n  - name: other\n    digest: sha256:'
        + OLD
        + "  # pinned\n"
    )
    one = pin_in_text(text, canonical("llama3"), NEW)
    assert f"  - name: llama3@sha256:{NEW}   # primary\n" in one and one.count("\n") == text.count("\n")
    two = pin_in_text(text, canonical("phi3:mini"), NEW)
    assert f'  - name: "phi3:mini@sha256:{NEW}"\n' in two
    three = pin_in_text(text, canonical("other"), NEW)
    assert f"    digest: sha256:{NEW}  # pinned\n" in three
    for changed in (one, two, three):
        assert sum(a != b for a, b in zip(changed.splitlines(), text.splitlines(), strict=True)) == 1


def test_a_pin_moved_in_git_is_pulled_the_way_its_registry_is_reached() -> None:
    """The pinned path's update pulls over plain HTTP from an `insecure` registry (it did not)."""
    from reconciler.desired.schema import DesiredState

    base = desired([{"name": f"lan:5000/library/phi3:mini@sha256:{NEW}"}])
    registries = [{"host": "lan:5000", "insecure": True}]
    ollama = base.ollama.model_copy(
        update={"registries": OllamaSpec.model_validate({"registries": registries}).registries}
    )
    state = DesiredState(server=base.server, ollama=ollama, revision=base.revision)
    name = "lan:5000/library/phi3:mini"
    seen = observed(state, models=[present(name)], upstream=(upstream(name),))
    (action,) = plan(state, seen).actions
    assert isinstance(action, UpdateModel) and action.insecure
