"""OpenWebUI's own environment settings, as open-webui 0.12.4 reads them (pure: no I/O).

Read from `open_webui/config.py` and `open_webui/env.py` of open-webui 0.12.4 (the package the
tests install, `/var/cache/reconciler-tests/openwebui-venv`):

- booleans are read as `os.getenv(NAME, default).lower() == 'true'`, so `true` renders `True`;
- integers and floats with `int(...)` / `float(...)`;
- list and object settings with `JSONCodec.loads(os.getenv(NAME, '[]'))` (e.g.
  `WEB_SEARCH_DOMAIN_FILTER_LIST`, `DEFAULT_PROMPT_SUGGESTIONS`, `OPENAI_API_CONFIGS`), except
  the few `SEPARATED_LISTS` read with `.split(sep)`, which render joined by their separator;
- `SECRET_SETTINGS`: every setting those files read that holds an API key, a password, a
  client secret, a token or an encryption key. These are given only by reference
  (`{env: NAME}` / `{file: NAME}`), never as a value in git. Values shaped like secrets (a URL
  with a password, say) are refused for every setting by the loader's value scan. The list is
  checked against the installed package by `tests/e2e/test_openwebui_env.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_SETTINGS: frozenset[str] = frozenset(
    [
        "AUDIO_REALTIME_OPENAI_API_KEY",
        "AUDIO_STT_AZURE_API_KEY",
        "AUDIO_STT_MISTRAL_API_KEY",
        "AUDIO_STT_OPENAI_API_KEY",
        "AUDIO_TTS_API_KEY",
        "AUDIO_TTS_MISTRAL_API_KEY",
        "AUDIO_TTS_OPENAI_API_KEY",
        "AUTOMATIC1111_API_AUTH",
        "AZURE_AI_SEARCH_API_KEY",
        "AZURE_STORAGE_KEY",
        "BING_SEARCH_V7_SUBSCRIPTION_KEY",
        "BOCHA_SEARCH_API_KEY",
        "BRAVE_SEARCH_API_KEY",
        "CHROMA_CLIENT_AUTH_CREDENTIALS",
        "CODE_EXECUTION_JUPYTER_AUTH_PASSWORD",
        "CODE_EXECUTION_JUPYTER_AUTH_TOKEN",
        "CODE_INTERPRETER_JUPYTER_AUTH_PASSWORD",
        "CODE_INTERPRETER_JUPYTER_AUTH_TOKEN",
        "COMFYUI_API_KEY",
        "DATABASE_PASSWORD",
        "DATALAB_MARKER_API_KEY",
        "DEEPGRAM_API_KEY",
        "DOCLING_API_KEY",
        "DOCUMENT_INTELLIGENCE_KEY",
        "ELASTICSEARCH_API_KEY",
        "ELASTICSEARCH_PASSWORD",
        "EXA_API_KEY",
        "EXTERNAL_DOCUMENT_LOADER_API_KEY",
        "EXTERNAL_WEB_LOADER_API_KEY",
        "EXTERNAL_WEB_SEARCH_API_KEY",
        "FEISHU_CLIENT_SECRET",
        "FIRECRAWL_API_KEY",
        "FORWARD_USER_INFO_HEADER_JWT_SECRET",
        "GEMINI_API_KEY",
        "GITHUB_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS_JSON",
        "GOOGLE_CLIENT_SECRET",
        "GOOGLE_DRIVE_API_KEY",
        "GOOGLE_PSE_API_KEY",
        "IMAGES_EDIT_COMFYUI_API_KEY",
        "IMAGES_EDIT_GEMINI_API_KEY",
        "IMAGES_EDIT_OPENAI_API_KEY",
        "IMAGES_GEMINI_API_KEY",
        "IMAGES_OPENAI_API_KEY",
        "JINA_API_KEY",
        "KAGI_SEARCH_API_KEY",
        "LDAP_APP_PASSWORD",
        "LICENSE_KEY",
        "LINKUP_API_KEY",
        "MFA_ENCRYPTION_KEY",
        "MICROSOFT_CLIENT_SECRET",
        "MICROSOFT_WEB_IQ_API_KEY",
        "MILVUS_TOKEN",
        "MINERU_API_KEY",
        "MISTRAL_OCR_API_KEY",
        "MOJEEK_SEARCH_API_KEY",
        "OAUTH_CLIENT_INFO_ENCRYPTION_KEY",
        "OAUTH_CLIENT_SECRET",
        "OAUTH_SESSION_TOKEN_ENCRYPTION_KEY",
        "OLLAMA_CLOUD_API_KEY",
        "OPENAI_API_KEY",
        "OPENAI_API_KEYS",
        "OPENSEARCH_PASSWORD",
        "ORACLE_DB_PASSWORD",
        "ORACLE_WALLET_PASSWORD",
        "OTEL_BASIC_AUTH_PASSWORD",
        "OTEL_LOGS_BASIC_AUTH_PASSWORD",
        "OTEL_METRICS_BASIC_AUTH_PASSWORD",
        "PADDLEOCR_VL_TOKEN",
        "PERPLEXITY_API_KEY",
        "PGVECTOR_PGCRYPTO_KEY",
        "PINECONE_API_KEY",
        "QDRANT_API_KEY",
        "RAG_AZURE_OPENAI_API_KEY",
        "RAG_EXTERNAL_RERANKER_API_KEY",
        "RAG_OLLAMA_API_KEY",
        "RAG_OPENAI_API_KEY",
        "S3_SECRET_ACCESS_KEY",
        "SCIM_TOKEN",
        "SEARCHAPI_API_KEY",
        "SERPAPI_API_KEY",
        "SERPER_API_KEY",
        "SERPHOUSE_API_KEY",
        "SERPLY_API_KEY",
        "SERPSTACK_API_KEY",
        "STAAN_API_KEY",
        "TAVILY_API_KEY",
        "TRUSTED_SIGNATURE_KEY",
        "WEAVIATE_API_KEY",
        "WEBUI_ADMIN_PASSWORD",
        "WEBUI_JWT_SECRET_KEY",
        "WEBUI_SECRET_KEY",
        "YACY_PASSWORD",
        "YANDEX_WEB_SEARCH_API_KEY",
        "YDC_API_KEY",
        "YOUCOM_API_KEY",
    ]
)

# Settings read with `.split(separator)` rather than as JSON (config.py / env.py, 0.12.4).
SEPARATED_LISTS: Mapping[str, str] = {
    "CODE_INTERPRETER_BLOCKED_MODULES": ",",
    "MINERU_FILE_EXTENSIONS": ",",
    "RAG_ALLOWED_FILE_EXTENSIONS": ",",
    "YOUTUBE_LOADER_LANGUAGE": ",",
    "AUDIO_STT_SUPPORTED_CONTENT_TYPES": ",",
    "CORS_ALLOW_ORIGIN": ";",
    "CORS_ALLOW_CUSTOM_SCHEME": ";",
    "TOOL_SEARCH_ALWAYS_LOADED": ",",
    "OAUTH_ALLOWED_DOMAINS": ",",
    "RAG_SOURCE_METADATA_KEYS": ",",
    "OAUTH_TOKEN_EXCHANGE_TRUSTED_CLIENT_IDS": ",",
    "AUDIT_UVICORN_LOGGER_NAMES": ",",
    "AUDIT_EXCLUDED_PATHS": ",",
    "AUDIT_INCLUDED_PATHS": ",",
}

# Names in Kamal's secrets file that are not OpenWebUI settings (kamal/render.py).
KAMAL_SECRET_NAMES = frozenset(
    {"KAMAL_REGISTRY_PASSWORD", "OPENWEBUI_TLS_CERTIFICATE_PEM", "OPENWEBUI_TLS_PRIVATE_KEY_PEM"}
)


def is_secret_setting(name: str) -> bool:
    return name in SECRET_SETTINGS or name in KAMAL_SECRET_NAMES


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def render_value(name: str, value: str | bool | int | float | Sequence[Any] | Mapping[str, Any]) -> str:
    """The text OpenWebUI reads `value` from for setting `name`."""
    if isinstance(value, str | bool | int | float):
        return _scalar(value)
    if isinstance(value, Sequence) and name in SEPARATED_LISTS:
        return SEPARATED_LISTS[name].join(_scalar(item) for item in value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
