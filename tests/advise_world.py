"""The example's server as the advisor sees it: an RTX 3070 (8 GiB) running Ollama 0.32.15 with
the example's models on disk, and llama3's other quantizations as registry.ollama.ai lists
them. Architectures are the real models' (GGUF metadata as `ollama show` prints it); sizes are
the library's (llama3:8b-instruct-q3_K_M 4.0 GB, q4_K_M 4.9 GB, q5_K_M 5.7 GB, q6_K 6.6 GB,
q8_0 8.5 GB; phi3:mini 2.2 GB; deepseek-r1:7b 4.7 GB; nomic-embed-text 274 MB)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from reconciler.observed import (
    Architecture,
    Blob,
    ContainerObs,
    DiskObs,
    GpuObs,
    LoadedObs,
    ModelObs,
    Observed,
    RemoteManifest,
)
from tests.architectures import LLAMA3_8B, LLAMA3_VOCAB

LIB = "registry.ollama.ai/library/"
GIB = 2**30
MODEL = "application/vnd.ollama.image.model"
LLAMA3 = LLAMA3_8B.model_copy(
    update={"vocab_size": LLAMA3_VOCAB, "parameter_count": 8_030_261_248, "tied_embeddings": False}
)
PHI3 = Architecture(
    family="phi3",
    block_count=32,
    head_count=32,
    head_count_kv=32,
    embedding_length=3072,
    context_length=131072,
    vocab_size=32064,
    parameter_count=3_821_079_552,
    tied_embeddings=False,
)
QWEN2 = Architecture(
    family="qwen2",
    block_count=28,
    head_count=28,
    head_count_kv=4,
    embedding_length=3584,
    context_length=131072,
    vocab_size=152064,
    parameter_count=7_615_616_512,
    tied_embeddings=False,
)
NOMIC = Architecture(
    family="nomic-bert",
    block_count=12,
    head_count=12,
    head_count_kv=12,
    embedding_length=768,
    context_length=2048,
    vocab_size=30522,
    parameter_count=136_727_040,
    tied_embeddings=True,
    embedding_model=True,
)
LLAMA3_SIZES = {
    "q3_K_M": 4_018_917_216,
    "q4_K_M": 4_920_734_272,
    "q5_K_M": 5_732_987_712,
    "q6_K": 6_596_006_720,
    "q8_0": 8_540_770_112,
}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def blobs(name: str, size: int) -> tuple[Blob, ...]:
    return (
        Blob(digest=_digest(name + "/weights"), size=size, media_type=MODEL),
        Blob(
            digest=_digest(name + "/template"), size=254, media_type="application/vnd.ollama.image.template"
        ),
        Blob(digest=_digest(name + "/params"), size=110, media_type="application/vnd.ollama.image.params"),
    )


def present(name: str, size: int, arch: Architecture, quant: str, *, embedding: bool = False) -> ModelObs:
    caps = ("embedding",) if embedding else ("completion",)
    return ModelObs(
        name=LIB + name,
        digest=_digest(name)[7:19],
        blobs=blobs(name, size),
        family=arch.family,
        quantization=quant,
        architecture=arch,
        capabilities=caps,
    )


def llama3_tag(quant: str) -> str:
    return f"llama3:8b-instruct-{quant}"


def remote(quant: str) -> RemoteManifest:
    name = llama3_tag(quant)
    return RemoteManifest(
        name=(LIB + name).lower(), blobs=blobs(name, LLAMA3_SIZES[quant]), architecture=LLAMA3
    )


def example_world(*, gpu: int = 8 * GIB, desktop: int = 0) -> Observed:
    """The example converged on an 8 GB card: llama3 (+ llama3-work) and nomic-embed-text pinned."""
    llama3 = present(llama3_tag("q4_K_M"), LLAMA3_SIZES["q4_K_M"], LLAMA3, "Q4_K_M")
    models = (
        ModelObs(
            name=llama3.name.lower(),
            digest=llama3.digest,
            blobs=llama3.blobs,
            family="llama",
            quantization="Q4_K_M",
            architecture=LLAMA3,
            capabilities=("completion",),
        ),
        ModelObs(
            name=LIB + "llama3-work:latest",
            digest="a1b2c3d4e5f6",
            blobs=(
                *llama3.blobs,
                Blob(
                    digest=_digest("work/system"), size=80, media_type="application/vnd.ollama.image.system"
                ),
            ),
            family="llama",
            quantization="Q4_K_M",
            capabilities=("completion",),
        ),
        present("phi3:mini", 2_176_178_913, PHI3, "Q4_0"),
        present("deepseek-r1:7b", 4_683_073_184, QWEN2, "Q4_K_M"),
        present("nomic-embed-text:latest", 274_290_656, NOMIC, "F16", embedding=True),
    )
    forever = datetime(2318, 3, 1, tzinfo=UTC)
    loaded = (
        LoadedObs(
            name=models[0].name,
            size=5_400_000_000,
            size_vram=5_400_000_000,
            expires_at=forever,
            context_length=8192,
            pinned=True,
        ),
        LoadedObs(
            name=LIB + "nomic-embed-text:latest",
            size=600_000_000,
            size_vram=600_000_000,
            expires_at=forever,
            context_length=2048,
            pinned=True,
        ),
    )
    used = sum(m.size_vram for m in loaded) + desktop
    return Observed(
        container=ContainerObs(name="ollama", id="c0ffee", running=True, status="running", spec_hash=None),
        ollama_version="0.32.15",
        models=models,
        loaded=loaded,
        gpus=(GpuObs(index=0, name="NVIDIA GeForce RTX 3070", total=gpu, used=used, free=gpu - used),),
        disk=DiskObs(path="/var/lib/docker/volumes/ollama", total=1000 * GIB, free=600 * GIB),
        remote=tuple(remote(q) for q in ("q3_K_M", "q5_K_M", "q6_K", "q8_0")),
        host_addresses=("127.0.0.1", "192.168.1.50"),
    )
