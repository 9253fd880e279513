"""What differs between the Ollama versions the fake can pretend to be (stdlib only).

The fake reports ``FAKE_OLLAMA_VERSION`` (default the newest release, 0.32.15) from
``/api/version`` and behaves as that version does wherever the versions differ. Each switch
below names the first release that has the behaviour, read from ollama/ollama's tags (the
mirror's ``git show <tag>:<file>``); the two profiles the tests run are 0.32.15 and 0.6.8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NEWEST = "0.32.15"
OLDEST = "0.6.8"

# api/types.go Options + Runner: the JSON name → the Go kind FromMap checks it against.
# v0.6.8 (and every release before v0.7.0) also had mirostat*, low_vram, f16_kv, logits_all,
# vocab_only and use_mlock; v0.30.0 added draft_num_predict.
_OPTIONS_ALWAYS: dict[str, str] = {
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repeat_last_n": "int",
    "temperature": "float",
    "repeat_penalty": "float",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "stop": "array",
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "bool",
    "num_thread": "int",
}
_OPTIONS_BEFORE_0_7: dict[str, str] = {
    "mirostat": "int",
    "mirostat_tau": "float",
    "mirostat_eta": "float",
    "low_vram": "bool",
    "f16_kv": "bool",
    "logits_all": "bool",
    "vocab_only": "bool",
    "use_mlock": "bool",
}
_OPTIONS_FROM_0_30: dict[str, str] = {"draft_num_predict": "int"}
# Runner options: a change of any of them reloads the model (sched.go needsReload).
RUNNER_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


def parse_version(text: str) -> tuple[int, int, int]:
    """``0.32.15`` (or ``0.9.7-rc1``) → (0, 32, 15); anything else → the newest."""
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if m is None:
        return parse_version(NEWEST)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass(frozen=True)
class Profile:
    version: str

    @property
    def v(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def ps_context_length(self) -> bool:
        """``/api/ps`` ``context_length``: api/types.go ProcessModelResponse, from 0.9.7
        (commit 34088db "API/CLI context enhancements", first tagged v0.9.7-rc0)."""
        return self.v >= (0, 9, 7)

    @property
    def caps_num_ctx(self) -> bool:
        """llm/server.go NewLlamaServer: "requested context size too large for model" →
        num_ctx = the trained context, from v0.9.3 (v0.32.15 llm/server.go L111-116). Before,
        the runner gets the num_ctx asked for."""
        return self.v >= (0, 9, 3)

    @property
    def default_num_parallel(self) -> int:
        """envconfig NumParallel default: 1 from v0.10.0; before, 0 = auto: sched.go
        pickBestFullFitByLibrary tries defaultParallel (2 in v0.6.7–v0.9.x) then 1."""
        return 1 if self.v >= (0, 10, 0) else 0

    @property
    def auto_parallel(self) -> int:
        return 2 if self.v >= (0, 6, 7) else 4

    @property
    def flash_attention_auto(self) -> bool:
        """envconfig FlashAttention: BoolWithDefault (unset = auto: on where the GPU supports
        it, llm/llama_server.go LlamaServerFlashAttention) from v0.12.4; before, Bool (off)."""
        return self.v >= (0, 12, 4)

    @property
    def vram_default_ctx(self) -> bool:
        """OLLAMA_CONTEXT_LENGTH unset: by VRAM (routes.go Serve: 4096 under 23 GiB, 32768
        from 23, 262144 from 47) from v0.15.5; before, 4096."""
        return self.v >= (0, 15, 5)

    @property
    def realm_same_host(self) -> bool:
        """server/auth.go getAuthorizationToken refuses a realm on another host, from v0.14.3
        (commit 7601f0e "server: reject unexpected auth hosts")."""
        return self.v >= (0, 14, 3)

    @property
    def error_status_before_output(self) -> bool:
        """routes.go streamResponse: an error before anything was streamed is an HTTP status
        from v0.12.6 (commit 6544e14); v0.6.8 always answers 200 and streams the
        ``{"error"}`` line."""
        return self.v >= (0, 12, 6)

    @property
    def options(self) -> dict[str, str]:
        opts = dict(_OPTIONS_ALWAYS)
        if self.v < (0, 7, 0):
            opts.update(_OPTIONS_BEFORE_0_7)
        if self.v >= (0, 30, 0):
            opts.update(_OPTIONS_FROM_0_30)
        return opts
