"""Contract of the fake's OpenAI-compatible API (`/v1`, tests/harness/fake_ollama/openai_compat.py)
with the REAL `openai` client, which parses every answer the way OpenAI clients do.

What each check mirrors: ollama/ollama v0.32.15 `middleware/openai.go` (ChatMiddleware,
ChatWriter, ListMiddleware) and `openai/openai.go` (FromChatRequest, ToChatCompletion,
toChunk/FinishChunk, ToListCompletion, NewError)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.harness.plugin import FakeOllama, FakeOllamaFactory
from tests.harness.registry import PushedModel, Registry

pytestmark = pytest.mark.e2e

KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def chat_model(registry: Registry) -> PushedModel:
    return registry.push_model("cloudy", "v1", size_bytes=200_000, seed="cloudy")


@pytest.fixture
def cloud(fake_ollama: FakeOllamaFactory, chat_model: PushedModel) -> tuple[FakeOllama, str]:
    fake = fake_ollama(env={"FAKE_OPENAI_API_KEY": KEY})
    assert list(fake.client.pull(chat_model.name, insecure=True, stream=True))[-1].status == "success"
    name = next(m.model for m in fake.client.list().models)
    fake.clear_events()
    return fake, str(name)


def _client(fake: FakeOllama, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fake.url}/v1", api_key=key, max_retries=0, timeout=20)


def test_models_list_is_ollamas_list_in_openai_shape(cloud: tuple[FakeOllama, str]) -> None:
    fake, name = cloud
    listed = _client(fake).models.list().data
    assert [m.id for m in listed] == [name]
    assert listed[0].object == "model" and listed[0].owned_by == "library" and listed[0].created > 0


def test_chat_completion_answers_what_api_chat_answers(cloud: tuple[FakeOllama, str]) -> None:
    fake, name = cloud
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hello?"}]
    native = fake.client.chat(model=name, messages=messages, stream=False).message.content
    done = _client(fake).chat.completions.create(model=name, messages=messages)  # type: ignore[arg-type]
    assert done.object == "chat.completion" and done.system_fingerprint == "fp_ollama"
    assert done.id.startswith("chatcmpl-")
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == native
    assert done.choices[0].finish_reason == "stop"
    assert (
        done.usage is not None
        and done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    )
    chats = fake.events("chat")
    assert [c["path"] for c in chats] == ["/api/chat", "/v1/chat/completions"]
    assert chats[1]["messages"] == messages and chats[1]["answer"] == native


def test_streamed_chat_is_server_sent_chunks(cloud: tuple[FakeOllama, str]) -> None:
    fake, name = cloud
    stream = _client(fake).chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake.events("chat")[-1]["answer"] and text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert {c.created for c in chunks} == {chunks[0].created}  # one timestamp for the stream
    raw = httpx.post(
        f"{fake.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": name, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")


def test_errors_in_openai_shape(cloud: tuple[FakeOllama, str]) -> None:
    fake, _ = cloud
    client = _client(fake)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope:1b", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["type"] == "not_found_error"  # type: ignore[index]
    assert "not found" in missing.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="nope:1b", messages=[])
    assert empty.value.body["message"] == "[] is too short - 'messages'"  # type: ignore[index]


def test_a_wrong_key_is_refused_and_never_recorded(cloud: tuple[FakeOllama, str]) -> None:
    fake, name = cloud
    with pytest.raises(openai.AuthenticationError) as refused:
        _client(fake, "sk-wrong").chat.completions.create(
            model=name, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    assert fake.events("openai_unauthorized")[-1]["had_header"] is True
    assert fake.events("chat") == []
    assert KEY not in fake.logs() and "sk-wrong" not in fake.logs()
    assert KEY not in httpx.get(f"{fake.url}/__fake/events").text
