"""The kamal-proxy stand-in image (`kamal_proxy/kamal_proxy.py`), built offline on the base image
and tagged as the image Kamal 2.11 boots, so the real `kamal` runs it unchanged."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import docker

from tests.harness.images import (
    BASE_IMAGE,
    SRC_HASH_LABEL,
    TEST_LABEL,
    _build,
    _get_image,
    _image_lock,
    ensure_base_image,
)

SOURCE = Path(__file__).resolve().parent / "kamal_proxy" / "kamal_proxy.py"
STANDIN_REPO = "local/kamal-proxy-standin"
# Kamal 2.11: lib/kamal/configuration/proxy/run.rb (`repository` basecamp/kamal-proxy, `version`
# MINIMUM_VERSION v0.9.2); `kamal proxy boot` checks the running one's tag is at least that.
KAMAL_PROXY_IMAGE = "basecamp/kamal-proxy:v0.9.2"

DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY kamal_proxy.py /usr/local/bin/kamal-proxy
RUN chmod 0755 /usr/local/bin/kamal-proxy \\
    && useradd kamal-proxy \\
    && mkdir -p /home/kamal-proxy/.config/kamal-proxy \\
    && chown -R kamal-proxy:kamal-proxy /home/kamal-proxy
LABEL org.opencontainers.image.title=kamal-proxy
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/home/kamal-proxy
EXPOSE 80 443
USER kamal-proxy:kamal-proxy
CMD ["kamal-proxy", "run"]
"""


def source_hash() -> str:
    return hashlib.sha256(SOURCE.read_bytes() + DOCKERFILE.encode()).hexdigest()[:16]


def ensure_kamal_proxy_image(client: docker.DockerClient) -> str:
    """Build the stand-in when its source changed and tag it `basecamp/kamal-proxy:v0.9.2`
    (kamal-proxy's Dockerfile at v0.9.2: user kamal-proxy, ~/.config/kamal-proxy, `run`)."""
    ensure_base_image(client)
    tag = f"{STANDIN_REPO}:{source_hash()}"
    with _image_lock():
        image = _get_image(client, tag)
        if image is None:
            with tempfile.TemporaryDirectory(prefix="kamal-proxy-img-") as tmp:
                ctx = Path(tmp)
                shutil.copy2(SOURCE, ctx / "kamal_proxy.py")
                (ctx / "Dockerfile").write_text(DOCKERFILE)
                _build(client, ctx, tag, {**TEST_LABEL, SRC_HASH_LABEL: source_hash()})
            image = _get_image(client, tag)
        assert image is not None
        repository, version = KAMAL_PROXY_IMAGE.split(":")
        image.tag(repository, version)
    return KAMAL_PROXY_IMAGE
