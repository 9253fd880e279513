"""Ollama's OpenAI-compatible API (`/v1`), and a record of every chat the fake answers.

Real Ollama serves `/v1/chat/completions` and `/v1/models` by wrapping its own handlers
(ollama/ollama v0.32.15 `server/routes.go` L1916-1919, `middleware/openai.go`
`ChatMiddleware` / `ListMiddleware`, `openai/openai.go`): the middleware decodes the OpenAI
request, rewrites it into an `api.ChatRequest` (`FromChatRequest`), lets `ChatHandler` run,
and translates what it writes (`ChatWriter`: one `chat.completion`, or `data: <chunk>` server-sent
events ending in a finish chunk and `data: [DONE]`; `ListWriter`: `ToListCompletion`; errors:
`openai.NewError` with the same status). This module does the same around the fake's own
`/api/chat` and `/api/tags` handlers, so `/v1` answers exactly what `/api/chat` would.

Same as Ollama: the request fields it maps (messages with string content or `text` parts,
`stream`, `stream_options.include_usage`, `max_tokens` → `num_predict`, `temperature` and `top_p`
defaulting to 1.0, `stop`, `seed`, `frequency_penalty`, `presence_penalty`); the shapes of
`chat.completion`, `chat.completion.chunk` (role only in the first chunk, `system_fingerprint`
`fp_ollama`, the empty metrics trailer dropped, a finish chunk with `finish_reason`), the
`usage` numbers from the eval counts, `list` / `model` objects with `owned_by` = the name's
namespace; the error body `{"error": {"message", "type", "param", "code"}}` with `type`
`invalid_request_error` (400), `not_found_error` (404) or `api_error`; `[] is too short -
'messages'` for an empty list.

Simplified: images, audio and tool calls are refused as `invalid message format`; a streamed
answer is sent once the native handler has finished (the fake answers at once anyway).

Not Ollama's (a stand-in for a cloud provider): when `FAKE_OPENAI_API_KEY` is set, every `/v1`
request must carry `Authorization: Bearer <that key>`, else 401 with the body OpenAI's API
answers (`invalid_api_key`). Ollama itself ignores the header. The key is never logged or
recorded; a request without the right key is recorded as `openai_unauthorized`.

Test-only record: each answered chat (`/api/chat` or `/v1`) adds an event `chat` with the path,
the model, the messages as the native handler received them, and the answer it gave, so a
test can see the system prompt a preset added or the chunk RAG retrieved.
"""

from __future__ import annotations

import hmac
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.fake_ollama.store import Name
else:
    from store import Name

Record = Callable[..., None]  # State.event(kind, **fields)
KEY_ENV = "FAKE_OPENAI_API_KEY"

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}
_OPTION_FIELDS = {
    "max_tokens": "num_predict",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_body(status: int, message: str) -> dict[str, Any]:
    """openai.NewError."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _messages(raw: Any) -> list[dict[str, Any]]:
    """FromChatRequest's message loop, for string content and `text` parts."""
    if not isinstance(raw, list) or not raw:
        raise OpenAIError(400, "[] is too short - 'messages'")
    out: list[dict[str, Any]] = []
    for msg in raw:
        if not isinstance(msg, dict):
            raise OpenAIError(400, "invalid message format")
        role, content = msg.get("role"), msg.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            for part in content:
                if (
                    not isinstance(part, dict)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise OpenAIError(400, "invalid message format")
                out.append({"role": role, "content": part["text"]})
        else:
            raise OpenAIError(400, f"invalid message content type: {type(content).__name__}")
    return out


def to_native(req: dict[str, Any]) -> dict[str, Any]:
    """openai.FromChatRequest: the `api.ChatRequest` Ollama's ChatHandler receives."""
    options: dict[str, Any] = {}
    stop = req.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        options["stop"] = [s for s in stop if isinstance(s, str)]
    for name, option in _OPTION_FIELDS.items():
        if req.get(name) is not None:
            options[option] = req[name]
    options["temperature"] = req["temperature"] if req.get("temperature") is not None else 1.0
    options["top_p"] = req["top_p"] if req.get("top_p") is not None else 1.0
    return {
        "model": req.get("model") or "",
        "messages": _messages(req.get("messages")),
        "stream": bool(req.get("stream")),
        "options": options,
    }


def _created(final: dict[str, Any]) -> int:
    stamp = str(final.get("created_at") or "")
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return 0


def _usage(final: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(chat_id: str, final: dict[str, Any], content: str) -> dict[str, Any]:
    """openai.ToChatCompletion of the final (non-streamed) api.ChatResponse."""
    reason = final.get("done_reason") or None
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": _created(final),
        "model": final.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": reason}
        ],
        "usage": _usage(final),
    }


def stream_events(chat_id: str, responses: list[dict[str, Any]], include_usage: bool) -> bytes:
    """ChatWriter in stream mode: `data: <chunk>` per response, the metrics-only trailer
    dropped once a chunk was sent, then the finish chunk, the usage chunk if asked, `[DONE]`."""
    out: list[str] = []
    created = _created(responses[0]) if responses else 0
    sent = False
    for response in responses:
        content = str((response.get("message") or {}).get("content") or "")
        if not (response.get("done") and sent and not content):
            delta: dict[str, Any] = {"content": content}
            if not sent:
                delta = {"role": "assistant", **delta}
            out.append(_chunk(chat_id, created, response, delta, None))
            sent = True
        if response.get("done"):
            finish = _chunk(chat_id, created, response, {}, response.get("done_reason") or "stop")
            out.append(finish)
            if include_usage:
                usage = json.loads(finish[len("data: ") :])
                usage["choices"], usage["usage"] = [], _usage(response)
                out.append(f"data: {json.dumps(usage, separators=(',', ':'))}\n\n")
            out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def _chunk(
    chat_id: str, created: int, response: dict[str, Any], delta: dict[str, Any], reason: str | None
) -> str:
    body = {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": response.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
    }
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def list_completion(tags: dict[str, Any]) -> dict[str, Any]:
    """openai.ToListCompletion of the /api/tags answer."""
    data = []
    for m in tags.get("models") or []:
        model_id = m.get("model") or m.get("name") or ""
        data.append(
            {
                "id": model_id,
                "object": "model",
                "created": _created({"created_at": m.get("modified_at")}),
                "owned_by": Name.parse(model_id).namespace,
            }
        )
    return {"object": "list", "data": data}


# ── plumbing around the fake's handler ────────────────────────────────────────


@dataclass
class Captured:
    """What a native handler wrote: a status and body, or the NDJSON lines it streamed."""

    status: int = 200
    body: bytes = b""
    streamed: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)

    def answer(self) -> str:
        if self.streamed:
            return "".join(str((x.get("message") or {}).get("content") or "") for x in self.lines)
        try:
            body = json.loads(self.body)
        except ValueError:
            return ""
        return str((body.get("message") or {}).get("content") or "") if isinstance(body, dict) else ""


def run_captured(handler: Any, route: Callable[[], None], *, passthrough: bool) -> Captured:
    """Run a native route with its output captured (and still sent when `passthrough`)."""
    cap = Captured()
    send_bytes, start_stream, write_chunk = handler.send_bytes, handler.start_stream, handler.write_chunk

    def capture_bytes(status: int, body: bytes, content_type: str) -> None:
        cap.status, cap.body = status, body
        if passthrough:
            send_bytes(status, body, content_type)

    def capture_start() -> None:
        cap.streamed = True
        if passthrough:
            start_stream()

    def capture_chunk(data: bytes) -> None:
        for line in data.splitlines():
            if line.strip():
                cap.lines.append(json.loads(line))
        if passthrough:
            write_chunk(data)

    handler.send_bytes, handler.start_stream, handler.write_chunk = (
        capture_bytes,
        capture_start,
        capture_chunk,
    )
    try:
        route()
    finally:
        del handler.send_bytes, handler.start_stream, handler.write_chunk
    return cap


def _record_chat(record: Record, path: str, request: dict[str, Any], cap: Captured) -> None:
    if cap.status == 200:
        record(
            "chat",
            path=path,
            model=request.get("model"),
            messages=request.get("messages"),
            answer=cap.answer(),
        )


def native_chat(handler: Any, route: Callable[[], None], record: Record) -> None:
    """`POST /api/chat`, recorded."""
    try:
        request = json.loads(handler._raw_body or b"{}")
    except ValueError:
        request = {}
    cap = run_captured(handler, route, passthrough=True)
    if isinstance(request, dict):
        _record_chat(record, "/api/chat", request, cap)


def _authorized(handler: Any, record: Record) -> bool:
    key = os.environ.get(KEY_ENV)
    if not key:
        return True
    sent = str(handler.headers.get("Authorization") or "")
    if hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
        return True
    record("openai_unauthorized", path=handler.path.split("?", 1)[0], had_header=bool(sent))
    handler.send_json(
        401,
        {
            "error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    return False


def chat_completions(handler: Any, route: Callable[[], None], record: Record) -> None:
    """`POST /v1/chat/completions` around the native chat handler (ChatMiddleware)."""
    if not _authorized(handler, record):
        return
    try:
        req = json.loads(handler._raw_body or b"")
        if not isinstance(req, dict):
            raise OpenAIError(400, "invalid request body")
        native = to_native(req)
    except ValueError as exc:
        handler.send_json(400, error_body(400, str(exc)))
        return
    except OpenAIError as exc:
        handler.send_json(exc.status, error_body(exc.status, str(exc)))
        return
    handler._raw_body = json.dumps(native).encode()
    cap = run_captured(handler, route, passthrough=False)
    _record_chat(record, "/v1/chat/completions", native, cap)
    if cap.status != 200:
        try:
            message = str(json.loads(cap.body).get("error") or cap.body.decode(errors="replace"))
        except (ValueError, AttributeError):
            message = cap.body.decode(errors="replace")
        handler.send_json(cap.status, error_body(cap.status, message))
        return
    chat_id = f"chatcmpl-{random.randrange(999)}"  # as Ollama: an id, not a secret
    if native["stream"]:
        options = req.get("stream_options") or {}
        usage = bool(isinstance(options, dict) and options.get("include_usage"))
        handler.send_bytes(200, stream_events(chat_id, cap.lines, usage), "text/event-stream")
        return
    final = json.loads(cap.body) if cap.body else (cap.lines[-1] if cap.lines else {})
    handler.send_json(200, completion(chat_id, final, cap.answer()))


def models(handler: Any, route: Callable[[], None], record: Record) -> None:
    """`GET /v1/models` around the native list handler (ListMiddleware)."""
    if not _authorized(handler, record):
        return
    cap = run_captured(handler, route, passthrough=False)
    handler.send_json(200, list_completion(json.loads(cap.body or b"{}")))
