"""Newer image releases: semantic versions from a tag list, pre-releases ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.desired.images import ImageRef, parse_image
from reconciler.notify.decide import decide
from reconciler.observed import ImageTagsObs
from reconciler.plan.image_tags import image_states, images_due, newer_releases
from reconciler.report.status import ImageStatus, Status
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
