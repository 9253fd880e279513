"""The tag list of an image's repository (Docker Registry HTTP API v2 `GET /v2/<repo>/tags/list`,
paginated by `Link: <…>; rel="next"`), through the same token challenge as model look-ups
(anonymous: a public image). Only release tags are kept (desired/images.release)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

import httpx

from reconciler.desired.images import ImageRef, release
from reconciler.desired.schema import Registry
from reconciler.observe.registry import LookupFailed, _check_status, _Session, _transport_reason, base_url
from reconciler.observed import ImageTagsObs

_NEXT = re.compile(r'<([^>]+)>;\s*rel="?next"?')
_MAX_PAGES = 20
_MAX_PAGE = 4 * 2**20


class _Pages(_Session):
    def page(self, url: str) -> tuple[bytes, str | None]:
        for _ in range(3):
            with self.client.stream("GET", url, headers=self._headers({})) as response:
                if response.status_code == 401 and self._authenticate(response):
                    continue
                _check_status(response, self.host, self.registry)
                body = response.read()
                if len(body) > _MAX_PAGE:
                    raise LookupFailed(f"{self.host} sent a tag list larger than {_MAX_PAGE} bytes")
                found = _NEXT.search(response.headers.get("link", ""))
                return body, (str(httpx.URL(url).join(found.group(1))) if found else None)
        raise LookupFailed(f"{self.host} kept refusing the token it issued (HTTP 401)")


def list_releases(ref: ImageRef, registries: list[Registry], client: httpx.Client) -> tuple[str, ...]:
    base = base_url(ref.host, registries)
    session = _Pages(client, ref.host, base, None)
    url: str | None = f"{base}/v2/{ref.repository}/tags/list?n=1000"
    tags: list[str] = []
    try:
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            body, url = session.page(url)
            tags += parse_tags(body, ref.host)
    except httpx.HTTPError as exc:
        raise LookupFailed(_transport_reason(ref.host, exc)) from None
    return tuple(t for t in tags if release(t) is not None)


def parse_tags(body: bytes, host: str) -> list[str]:
    try:
        data = json.loads(body)
    except ValueError:
        raise LookupFailed(f"{host} sent a tag list that is not JSON") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def check_images(
    refs: Sequence[ImageRef],
    registries: list[Registry],
    client: httpx.Client,
    last: dict[str, ImageTagsObs],
    at: datetime,
) -> tuple[ImageTagsObs, ...]:
    """One look at each due image; a failure keeps the tags seen before and counts itself."""
    checks = []
    for ref in refs:
        before = last.get(ref.key)
        try:
            checks.append(
                ImageTagsObs(image=ref.key, checked_at=at, tags=list_releases(ref, registries, client))
            )
        except LookupFailed as exc:
            checks.append(
                ImageTagsObs(
                    image=ref.key,
                    checked_at=at,
                    tags=before.tags if before else (),
                    error=exc.message,
                    failures=(before.failures if before else 0) + 1,
                )
            )
    return tuple(checks)
