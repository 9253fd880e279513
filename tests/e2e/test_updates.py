"""Model updates through the real registry: a tag re-published with new bytes is reported under
`notify` and changes nothing; under `auto` it waits outside the window and when old and new do
not fit the disk budget, and inside the window it is pulled with the old digest kept as a
rollback entry and the pinned model warmed again on the new digest; a pin to the old digest
restores it from that entry without a download."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.refs import canonical
from reconciler.desired.source import DirSource
from reconciler.plan.actions import RestoreModel, UpdateImage, UpdateModel
from reconciler.plan.update_policy import rollback_name
from tests.e2e.gitops import GitOps
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e
KiB = 1024


def _window(at: datetime, start_h: int, end_h: int) -> str:
    local = at.astimezone()
    return f"{(local + timedelta(hours=start_h)):%H:%M}-{(local + timedelta(hours=end_h)):%H:%M}"


def _updates(stack: Stack, **policy: Any) -> None:
    stack.ollama["updates"] = {"check_every": "5m", **policy}
    stack.write()


def test_a_republished_tag_is_reported_then_updated_in_the_window_keeping_a_rollback_entry(
    stack: Stack,
) -> None:
    old = stack.registry.push_model("e2e-upd", "v1", size_bytes=200 * KiB, seed="upd-old")
    name = canonical(old.name)
    stack.set_models({"name": old.name, "keep_loaded": True, "num_ctx": 256})
    _updates(stack, policy="notify")
    t0 = datetime.now(UTC)
    assert stack.apply(at=t0).result == "converged"
    checked = stack.state.load().upstream[name]
    assert checked.digest == old.manifest_digest  # recorded at the pull, with its time
    assert abs(checked.checked_at - t0) < timedelta(minutes=1)

    new = stack.registry.push_model("e2e-upd", "v1", size_bytes=200 * KiB, seed="upd-new")
    calls = stack.mutating_ollama_calls()
    report = stack.apply(at=t0 + timedelta(minutes=10))
    assert report.result == "converged" and report.actions_run == 0  # notify changes nothing
    (state,) = report.plans[-1].updates
    fresh = [x for x in [*new.layers, new.config] if x.digest not in old.digests]
    assert state.state == "available" and state.upstream == new.manifest_digest
    assert state.download_bytes == sum(x.size for x in fresh) > 0
    assert state.message().startswith(
        f"update available: sha256:{old.manifest_digest[:12]} → sha256:{new.manifest_digest[:12]}, "
    )
    assert stack.mutating_ollama_calls() == calls
    assert abs(stack.state.load().upstream[name].checked_at - (t0 + timedelta(minutes=10))) < timedelta(
        minutes=1
    )

    t1 = t0 + timedelta(minutes=20)
    _updates(stack, policy="auto", window=_window(t1, 2, 3))
    waiting = stack.apply(at=t1)
    assert waiting.actions_run == 0
    assert "outside the update window" in waiting.plans[-1].updates[0].reason

    _updates(stack, policy="auto", window=_window(t1, -1, 1))
    stack.server["budgets"]["disk"]["models"] = f"{old.total_size + new.model_layer.size - 1}B"
    stack.write()
    squeezed = stack.apply(at=t1)
    assert squeezed.actions_run == 0 and squeezed.result == "converged"
    assert "on disk together, over the models budget" in squeezed.plans[-1].updates[0].reason

    stack.server["budgets"]["disk"]["models"] = "1GiB"
    stack.write()
    updated = stack.apply(at=t1)
    assert updated.result == "converged", updated.notes
    kinds = [a.kind for p in updated.plans for a in p.actions]
    assert kinds[0] == "update" and "load" in kinds  # re-warmed on the new digest
    action = updated.plans[0].actions[0]
    assert isinstance(action, UpdateModel) and action.rollback == rollback_name(name, old.manifest_digest)
    digests = {m["name"]: m["digest"] for m in _tags(stack)}
    assert digests[old.name] == new.manifest_digest
    kept = next(n for n in digests if n.endswith(f"-sha256-{old.manifest_digest[:12]}"))
    assert digests[kept] == old.manifest_digest
    assert stack.loaded()[old.name]["digest"] == new.manifest_digest
    assert "sha256-" + old.model_layer.digest.split(":")[1] in stack.blob_files()  # rollback blobs kept
    again = stack.apply(at=t1 + timedelta(minutes=1))
    assert again.actions_run == 0 and canonical(kept) in again.plans[-1].budget.cached_models

    # A pin to the old digest (what `git revert` of a recorded update writes) restores it.
    stack.set_models(
        {"name": f"{old.name}@sha256:{old.manifest_digest}", "keep_loaded": True, "num_ctx": 256}
    )
    pulls = [c for c in stack.mutating_ollama_calls() if c.startswith("POST /api/pull")]
    restored = stack.apply(at=t1 + timedelta(minutes=2))
    assert restored.result == "converged", restored.notes
    assert isinstance(restored.plans[0].actions[0], RestoreModel)
    assert [
        c for c in stack.mutating_ollama_calls() if c.startswith("POST /api/pull")
    ] == pulls  # no download
    assert {m["name"]: m["digest"] for m in _tags(stack)}[old.name] == old.manifest_digest
    assert stack.loaded()[old.name]["digest"] == old.manifest_digest


def test_a_pinned_digest_the_registry_no_longer_serves_is_refused(stack: Stack) -> None:
    first = stack.registry.push_model("e2e-pin", "v1", size_bytes=64 * KiB, seed="pin-old")
    stack.registry.push_model("e2e-pin", "v1", size_bytes=64 * KiB, seed="pin-new")
    stack.set_models(f"{first.name}@sha256:{first.manifest_digest}")
    report = stack.apply()
    assert report.result == "refused"
    (violation,) = report.plans[-1].violations
    assert violation.budget == "digest" and "cannot pull a digest" in violation.message
    assert stack.tags() == set()


def _tags(stack: Stack) -> list[dict[str, Any]]:
    import httpx

    return list(httpx.get(f"{stack.url}/api/tags", timeout=10).json()["models"])


def test_record_commit_pins_the_new_digest_in_git_and_a_revert_restores_the_old_without_a_download(
    gitops: GitOps,
) -> None:
    """`record: commit`: the update is a commit by the reconciler (validated by the repo's
    pre-receive hook), the reconcile of that commit moves the pinned model, and `git revert`
    of it brings the old digest back from the rollback entry."""
    import subprocess

    from reconciler.gitops import rollback
    from reconciler.loop.queue import Trigger
    from reconciler.loop.serve import ServeConfig, Server
    from reconciler.report.events import EventBus

    stack: Stack = gitops.stack
    old = stack.registry.push_model("e2e-rec", "v1", size_bytes=96 * KiB, seed="rec-old")
    at = datetime.now(UTC)
    stack.ollama["updates"] = {"policy": "auto", "window": _window(at, -1, 1), "record": "commit",
                               "check_every": "5m"}  # fmt: skip
    stack.set_models(
        {"name": f"{old.name}@sha256:{old.manifest_digest}", "keep_loaded": True, "num_ctx": 256}
    )
    gitops.commit("pin e2e-rec", {"ollama.yaml": yaml.safe_dump(stack.ollama)})
    assert gitops.push().returncode == 0
    server = Server(ServeConfig(repo=gitops.bare), stack.runtime, EventBus(lambda e: None))
    assert server.reconcile_once({Trigger("push")}).result == "converged"  # type: ignore[union-attr]

    new = stack.registry.push_model("e2e-rec", "v1", size_bytes=96 * KiB, seed="rec-new")
    _age_checks(stack)
    before = gitops.head()
    recorded = server.reconcile_once({Trigger("resync")})
    assert recorded is not None and [a.kind for a in recorded.plans[0].actions] == ["record_update"]
    head = gitops.head()
    assert head != before
    log = subprocess.run(["git", "log", "-1", "--format=%an <%ae>%n%s", head], cwd=gitops.bare,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.startswith("reconciler <reconciler@localhost>\nUpdate ")
    shown = subprocess.run(["git", "show", f"{head}:ollama.yaml"], cwd=gitops.bare, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert f"@sha256:{new.manifest_digest}" in shown
    assert _tags_digest(stack, old.name) == old.manifest_digest  # the commit alone changes nothing

    moved = server.reconcile_once({Trigger("push")})
    assert moved is not None
    assert moved.result == "converged", (moved.outcomes, [p.actions for p in moved.plans])
    assert [a.kind for a in moved.plans[0].actions][:1] == ["update"]
    assert _tags_digest(stack, old.name) == new.manifest_digest
    assert stack.loaded()[old.name]["digest"] == new.manifest_digest  # re-warmed

    pulls = [c for c in stack.mutating_ollama_calls() if c.startswith("POST /api/pull")]
    rollback(gitops.bare, head)
    back = server.reconcile_once({Trigger("push")})
    assert back is not None
    assert back.result == "converged", [o.failed for o in back.outcomes]
    assert [a.kind for a in back.plans[0].actions][:1] == ["restore"]
    assert [
        c for c in stack.mutating_ollama_calls() if c.startswith("POST /api/pull")
    ] == pulls  # no download
    assert _tags_digest(stack, old.name) == old.manifest_digest
    assert stack.loaded()[old.name]["digest"] == old.manifest_digest
    reverted = gitops.head()
    quiet = server.reconcile_once({Trigger("resync")})  # the revert is not fought: no second commit
    assert quiet is not None and quiet.actions_run == 0 and gitops.head() == reverted
    assert "was committed to git already" in quiet.plans[-1].updates[0].reason


def _tags_digest(stack: Stack, name: str) -> str:
    return str({m["name"]: m["digest"] for m in _tags(stack)}[name])


def _age_checks(stack: Stack) -> None:
    """The last registry checks ran an hour ago: the interval has passed."""
    from reconciler.memory import Memory

    def aged(m: Memory) -> Memory:
        hour = timedelta(hours=1)
        return m.model_copy(
            update={
                "upstream": {
                    k: v.model_copy(update={"checked_at": v.checked_at - hour}) for k, v in m.upstream.items()
                }
            }
        )

    stack.state.update(aged)


def test_newer_image_releases_come_from_the_registrys_tag_list(stack: Stack) -> None:
    """`updates.images: notify`: the tag list of the Ollama image's repository in the real
    registry, pre-releases and other tags left out, shown in the status."""
    from reconciler.observe.server import observe_server
    from reconciler.plan.image_tags import images_due
    from reconciler.reconcile import ReconcileReport, write_status

    for tag in ("0.32.15", "0.33.0-rc1", "0.33.0", "0.32.16", "latest"):
        stack.registry.push_model("ollama-image", tag, size_bytes=8 * KiB, seed=f"img-{tag}")
    model = stack.registry.push_model("e2e-img", "v1", size_bytes=16 * KiB, seed="img")
    stack.set_models(model.name)
    stack.ollama["updates"] = {"images": "notify"}
    stack.write()
    report = stack.apply()
    assert report.result == "converged"
    assert stack.state.load().image_tags == {}  # the harness image has no release tag: not looked at
    image = f"{stack.registry.host}/library/ollama-image:0.32.15"
    desired = load_desired(DirSource(stack.repo)).model_copy(deep=True)
    container = desired.ollama.container.model_copy(update={"image": image})
    desired = desired.model_copy(
        update={"ollama": desired.ollama.model_copy(update={"container": container})}
    )
    memory, now = stack.state.load(), datetime.now(UTC)
    due = images_due(desired, memory.image_tags, now)
    seen = observe_server(
        desired, stack.runtime.readers(desired), now, images=due, image_tags=memory.image_tags
    )
    (check,) = seen.image_checks
    assert check.error is None and sorted(check.tags) == ["0.32.15", "0.32.16", "0.33.0"]
    stack.state.update(lambda m: m.model_copy(update={"image_tags": {check.image: check}}))
    observed = seen.model_copy(update={"image_tags": (check,)})
    status = write_status(
        stack.state.root, result="converged", head="abc", memory=stack.state.load(), desired=desired,
        report=ReconcileReport(result="converged", revision="abc", last_observed=observed),
    )  # fmt: skip
    (shown,) = status.images
    assert shown.newer == ["0.33.0", "0.32.16"]
    assert shown.update == "newer release: 0.32.15 → 0.33.0 (and 1 more); change the tag in git to take it"

    # `auto` with the Ollama image opted in: inside the window the container moves to the newest
    # release; one that does not start is held back (the one before it runs) and never retried.
    _auto_image_moves_and_a_release_that_does_not_start_is_held_back(stack, image)


def _auto_image_moves_and_a_release_that_does_not_start_is_held_back(stack: Stack, image: str) -> None:
    from reconciler.reconcile import write_status
    from tests.harness.images import BASE_IMAGE

    repository = image.rsplit(":", 1)[0]
    runnable = stack.client.images.get(stack.ollama["container"]["image"])
    for tag in ("0.32.15", "0.32.16"):
        runnable.tag(repository, tag)
    stack.client.images.get(BASE_IMAGE).tag(repository, "0.33.0")  # no command: it cannot start
    try:
        stack.ollama["container"]["image"] = image
        stack.ollama["updates"] = {"images": "auto", "auto_images": ["ollama"],
                                   "window": _window(datetime.now(UTC), -1, 1)}  # fmt: skip
        stack.write()
        broken = stack.apply()
        assert broken.result == "failed"
        (move,) = broken.plans[0].actions
        assert isinstance(move, UpdateImage) and (move.old_tag, move.new_tag) == ("0.32.15", "0.33.0")
        assert "no command specified" in str(broken.failures[0].error).lower()
        assert stack.state.load().image_runs[image].failed == ("0.33.0",)

        moved = stack.apply()
        assert moved.result == "converged", moved.notes
        assert [(a.old_tag, a.new_tag) for a in moved.plans[0].actions if isinstance(a, UpdateImage)] == [
            ("0.32.15", "0.32.16")
        ]
        assert stack.container().attrs["Config"]["Image"] == f"{repository}:0.32.16"
        assert any(n.kind == "image_held_back" for n in moved.notes), [p.notes for p in moved.plans]

        calm = stack.apply()
        assert calm.result == "converged" and calm.actions_run == 0  # held back: not looped
        status = write_status(stack.state.root, result="converged", head="abc", memory=stack.state.load(),
                              desired=load_desired(DirSource(stack.repo)), report=calm)  # fmt: skip
        (shown,) = status.images
        assert (shown.current, shown.newer) == ("0.32.16", [])
    finally:
        for tag in ("0.32.15", "0.32.16", "0.33.0"):
            stack.client.images.remove(f"{repository}:{tag}", noprune=True)
