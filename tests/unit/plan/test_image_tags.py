"""Newer image releases: semantic versions from a tag list, pre-releases ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.apply.record import image_in_text
from reconciler.desired.images import ImageRef, parse_image
from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.notify.decide import decide
from reconciler.observed import DeployedObs, ImageRun, ImageTagsObs, Observed
from reconciler.plan.actions import EnsureContainer, KamalDeploy, UpdateImage
from reconciler.plan.image_tags import effective, image_states, image_updates, images_due, newer_releases
from reconciler.plan.kamal import deploy_hash
from reconciler.plan.planner import plan
from reconciler.report.status import ImageStatus, Status
from tests.unit.desired.example_repo import copy_example, edit, line_of, problems
from tests.unit.factories import desired, observed

AT = datetime(2026, 12, 2, tzinfo=UTC)


def test_image_references_resolve_like_docker() -> None:
    assert parse_image("ollama/ollama:0.32.15") == ImageRef(
        "registry-1.docker.io", "ollama/ollama", "0.32.15"
    )
    assert parse_image("ghcr.io/open-webui/open-webui:v0.6.5") == ImageRef(
        "ghcr.io", "open-webui/open-webui", "v0.6.5"
    )
    assert parse_image("redis") == ImageRef("registry-1.docker.io", "library/redis", None)
    assert parse_image("registry.lan:5000/x/y:1.0.0@sha256:" + "a" * 64).host == "registry.lan:5000"


def test_only_newer_releases_count_and_pre_releases_are_ignored() -> None:
    tags = ["0.32.15", "0.33.0-rc1", "0.33.0", "0.32.16", "latest", "rocm", "v0.40.1", "0.9.0"]
    assert newer_releases("0.32.15", tags) == ["v0.40.1", "0.33.0", "0.32.16"]
    assert newer_releases("latest", tags) == []  # not a release: nothing to compare with
    assert newer_releases("v0.40.1", tags) == []


def test_image_checks_follow_the_policy_and_the_interval() -> None:
    state = desired(["x"], updates={"images": "notify", "check_every": "6h"})
    (due,) = images_due(state, {}, AT)
    assert due.key == "registry-1.docker.io/ollama/ollama"
    seen = ImageTagsObs(image=due.key, checked_at=AT, tags=("0.32.15", "0.33.0"))
    assert images_due(state, {due.key: seen}, AT + timedelta(hours=5)) == []
    assert len(images_due(state, {due.key: seen}, AT + timedelta(hours=6))) == 1
    assert images_due(desired(["x"]), {}, AT) == []  # never by default

    (image,) = image_states(state, observed(state, image_tags=(seen,)))
    assert image.newer == ("0.33.0",)
    assert image.message() == "newer release: 0.32.15 → 0.33.0; change the tag in git to take it"


def test_a_newer_image_release_is_told_once_per_release() -> None:
    def status(newer: list[str]) -> Status:
        return Status(images=[ImageStatus(image="ollama/ollama:0.32.15", current="0.32.15", newer=newer,
                                          update="newer release")])  # fmt: skip

    sent: dict[str, str] = {"health": "ready"}
    first = decide(status(["0.33.0"]), failures=0, done=[], sent=sent)
    assert [n.event for n in first] == ["update_available"]
    sent.update({n.key: n.state for n in first})
    assert decide(status(["0.33.0"]), failures=0, done=[], sent=sent) == []
    assert len(decide(status(["0.33.1", "0.33.0"]), failures=0, done=[], sent=sent)) == 1


# ───────────────────────── updates.images: auto ─────────────────────────

WINDOW = {"images": "auto", "auto_images": ["ollama", "openwebui"], "window": "02:00-06:00"}
INSIDE, OUTSIDE = datetime(2026, 12, 2, 3, 0, tzinfo=UTC), datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OLLAMA_KEY = "registry-1.docker.io/ollama/ollama"


def _state(updates: dict[str, object] | None = None, webui: bool = False) -> DesiredState:
    return desired(
        [],
        container={"image": "ollama/ollama:0.32.15"},
        updates=updates or WINDOW,
        openwebui={"image": "ghcr.io/open-webui/open-webui:v0.12.4"} if webui else None,
    )


def _seen(state: DesiredState, clock: datetime = INSIDE, **extra: Any) -> Observed:
    tags = (
        ImageTagsObs(image=OLLAMA_KEY, checked_at=AT, tags=("0.32.15", "0.32.16", "0.33.0")),
        ImageTagsObs(image="ghcr.io/open-webui/open-webui", checked_at=AT, tags=("v0.12.4", "v0.12.5")),
    )
    return observed(state, image_tags=tags, clock=clock, ollama_reachable=True, **extra)


def test_auto_needs_an_opt_in_per_image_and_is_refused_with_file_line_field_and_the_fix(
    tmp_path: Path,
) -> None:
    repo = copy_example(tmp_path)
    edit(repo, "ollama.yaml", "  policy: notify ", "  images: auto\n  policy: notify ")
    (problem,) = problems(repo)
    assert (problem.file, problem.line, problem.field) == (
        "ollama.yaml",
        line_of(repo, "ollama.yaml", "images: auto"),
        "updates.images",
    )
    assert "explicit opt-in per image" in problem.message and "auto_images: [ollama]" in problem.message
    edit(repo, "ollama.yaml", "  images: auto\n", "  images: auto\n  auto_images: [ollama]\n")
    loaded = load_desired(DirSource(repo))
    assert loaded.ollama.updates.auto_images == ["ollama"]


def test_auto_moves_an_opted_in_image_to_the_newest_release_only_inside_the_window() -> None:
    state = _state()
    (move,) = plan(state, _seen(state)).actions  # nothing else in that pass
    assert isinstance(move, UpdateImage) and not move.record
    assert (move.component, move.image, move.old_tag, move.new_tag) == (
        "ollama", "ollama/ollama:0.32.15", "0.32.15", "0.33.0"
    )  # fmt: skip
    waiting = plan(state, _seen(state, clock=OUTSIDE))
    assert not any(isinstance(a, UpdateImage) for a in waiting.actions)
    (why,) = [n for n in waiting.notes if n.kind == "image_update_waiting"]
    assert "outside the update window 02:00-06:00" in why.message
    only_webui = _state({**WINDOW, "auto_images": ["openwebui"]})  # Ollama not opted in: told only
    assert not any(isinstance(a, UpdateImage) for a in plan(only_webui, _seen(only_webui)).actions)
    (shown,) = image_states(only_webui, _seen(only_webui))
    assert shown.message().endswith("change the tag in git to take it")
    pinned = _state()
    container = pinned.ollama.container.model_copy(
        update={"image": "ollama/ollama:0.32.15@sha256:" + "a" * 64}
    )
    pinned = pinned.model_copy(update={"ollama": pinned.ollama.model_copy(update={"container": container})})
    assert effective(pinned, _seen(pinned)) == pinned and image_updates(pinned, _seen(pinned), None) == (
        [],
        [],
    )


def test_a_moved_image_is_what_the_container_runs_and_a_release_that_fails_is_held_back() -> None:
    state = _state()
    before = _seen(state)  # the container runs 0.32.15 as git says
    moved = before.model_copy(
        update={"image_runs": {"ollama/ollama:0.32.15": ImageRun(tag="0.33.0", previous="0.32.15")}}
    )
    (recreate,) = [a for a in plan(state, moved).actions if isinstance(a, EnsureContainer)]
    assert recreate.op == "recreate" and recreate.spec.image == "ollama/ollama:0.33.0"
    assert recreate.update_of == "ollama/ollama:0.32.15"  # a failed start holds 0.33.0 back

    from reconciler.apply.updates import image_failed
    from reconciler.memory import Memory

    memory = image_failed(Memory(image_runs=dict(moved.image_runs)), "ollama/ollama:0.32.15", "0.33.0")
    assert memory.image_runs["ollama/ollama:0.32.15"] == ImageRun(
        tag="0.32.15", previous="0.32.15", failed=("0.33.0",)
    )
    held = before.model_copy(update={"image_runs": memory.image_runs})
    again = plan(state, held)
    # Back on 0.32.15 (what runs: nothing to recreate), and 0.32.16 is the next release to try.
    assert [a for a in again.actions if isinstance(a, EnsureContainer)] == []
    (move,) = [a for a in again.actions if isinstance(a, UpdateImage)]
    assert move.new_tag == "0.32.16"
    on_next = ImageRun(tag="0.32.16", previous="0.32.15", failed=("0.33.0",))
    running = effective(state, _seen(state, image_runs={"ollama/ollama:0.32.15": on_next}))
    settled = plan(state, _seen(running, image_runs={"ollama/ollama:0.32.15": on_next}))
    assert settled.actions == ()  # on 0.32.16, the newest that starts: nothing to do
    assert [n.kind for n in settled.notes] == ["image_held_back"]
    none_left = held.model_copy(
        update={
            "image_runs": {"ollama/ollama:0.32.15": ImageRun(tag="0.32.15", failed=("0.33.0", "0.32.16"))}
        }
    )
    assert not any(isinstance(a, UpdateImage) for a in plan(state, none_left).actions)  # never looped


def test_a_new_tag_in_git_starts_afresh_and_record_commit_is_not_made_twice() -> None:
    state = _state()
    old_runs = {"ollama/ollama:0.32.10": ImageRun(tag="0.40.0")}  # moves of what git said before
    assert effective(state, _seen(state, image_runs=old_runs)) == state
    recording = _state({**WINDOW, "record": "commit"})
    (move,) = plan(recording, _seen(recording)).actions
    assert isinstance(move, UpdateImage) and move.record
    committed = {"ollama/ollama:0.32.15": ImageRun(recorded="0.33.0")}  # and then reverted in git
    quiet = plan(recording, _seen(recording, image_runs=committed))
    assert not any(isinstance(a, UpdateImage) for a in quiet.actions)
    assert any("was committed to git already" in n.message for n in quiet.notes)


def test_openwebui_moves_by_a_deploy_and_a_release_that_did_not_become_healthy_is_held_back() -> None:
    state = _state({**WINDOW, "auto_images": ["openwebui"]}, webui=True)
    (move,) = image_updates(state, _seen(state), None)[0]
    assert (move.component, move.new_tag) == ("openwebui", "v0.12.5")
    runs = {"ghcr.io/open-webui/open-webui:v0.12.4": ImageRun(tag="v0.12.5", previous="v0.12.4")}
    moved = effective(state, _seen(state, image_runs=runs))
    assert moved.openwebui is not None and moved.openwebui.image == "ghcr.io/open-webui/open-webui:v0.12.5"
    on_old = DeployedObs(openwebui_spec_hash=deploy_hash(state))
    (deploy,) = [
        a
        for a in plan(state, _seen(state, image_runs=runs, deployed=on_old)).actions
        if isinstance(a, KamalDeploy)
    ]
    assert deploy.version == deploy_hash(moved)
    serving = DeployedObs(openwebui_spec_hash=deploy_hash(state), openwebui_failed_hash=deploy_hash(moved))
    failed = _seen(state, image_runs=runs, deployed=serving)
    assert effective(state, failed) == state  # v0.12.4 serves on; no deploy, no loop
    assert image_updates(state, failed, None)[0] == []
    assert not any(isinstance(a, KamalDeploy) for a in plan(state, failed).actions)


def test_an_image_update_is_committed_as_its_tag_only(tmp_path: Path) -> None:
    text = 'container:\n  image: "ollama/ollama:0.32.15"   # the server\'s Ollama\n  name: ollama\n'
    out = image_in_text(text, "ollama.yaml", ("container", "image"), "0.33.0")
    assert out == text.replace("0.32.15", "0.33.0")
    web = "image: ghcr.io/open-webui/open-webui:v0.12.4\nport: 3000\n"
    assert image_in_text(web, "openwebui.yaml", ("image",), "v0.12.5") == web.replace("v0.12.4", "v0.12.5")
