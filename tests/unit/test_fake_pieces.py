"""The fake Ollama's pure pieces, checked against references: its ed25519 against the
`cryptography` library, its Go-template checker against Go's messages, its version switches
against the releases read from Ollama's tags."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.harness.fake_ollama import ed25519, gotemplate
from tests.harness.fake_ollama.versions import Profile


def test_ed25519_matches_the_reference_implementation_and_ssh_formats() -> None:
    seed = os.urandom(32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    public = key.public_key().public_bytes(*raw)
    assert ed25519.public_key(seed) == public
    assert ed25519.sign(seed, b"GET,http://r/token,x") == key.sign(b"GET,http://r/token,x")
    assert ed25519.verify(public, b"m", key.sign(b"m"))
    assert not ed25519.verify(public, b"n", key.sign(b"m"))
    loaded = serialization.load_ssh_private_key(ed25519.openssh_private_key(seed).encode(), None)
    assert loaded.public_key().public_bytes(*raw) == public
    openssh = serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    assert ed25519.authorized_key(public) == key.public_key().public_bytes(*openssh).decode()
    header = ed25519.ollama_signature(seed, b"data")
    assert ed25519.verify_ollama_signature(header, b"data") == public
    assert ed25519.verify_ollama_signature(header, b"other") is None


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ .Prompt }}", None),
        ("{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}", None),
        ("{{- range .Messages }}{{ .Content | json }}{{- end }}", None),
        ('{{ if eq .Role "user" }}u{{ else if .B }}b{{ else }}c{{ end }}', None),
        ("{{/* a comment */}}{{ .Prompt }}", None),
        ("{{ .Prompt", "template: :1: unclosed action"),
        ("{{ if .System }}x", "template: :1: unexpected EOF"),
        ("a\n{{ end }}", "template: :2: unexpected {{end}}"),
        ("{{ else }}", "template: :1: unexpected {{else}}"),
        ("{{ upper .Prompt }}", 'template: :1: function "upper" not defined'),
    ],
)
def test_go_template_checker_gives_gos_messages(template: str, error: str | None) -> None:
    if error is None:
        gotemplate.check(template, gotemplate.OLLAMA_FUNCS_0_32)
        return
    with pytest.raises(gotemplate.TemplateError) as raised:
        gotemplate.check(template, gotemplate.OLLAMA_FUNCS_0_32)
    assert str(raised.value) == error


def test_version_switches_follow_the_release_that_changed_them() -> None:
    old, new = Profile("0.6.8"), Profile("0.32.15")
    assert (old.ps_context_length, new.ps_context_length) == (False, True)
    assert Profile("0.9.7-rc0").ps_context_length and not Profile("0.9.6").ps_context_length
    assert (old.caps_num_ctx, new.caps_num_ctx) == (False, True)
    assert (old.default_num_parallel, old.auto_parallel, new.default_num_parallel) == (0, 2, 1)
    assert (old.flash_attention_auto, new.flash_attention_auto) == (False, True)
    assert (old.vram_default_ctx, new.vram_default_ctx) == (False, True)
    assert "mirostat" in old.options and "mirostat" not in new.options
    assert "draft_num_predict" in new.options and old.options["stop"] == "array"
