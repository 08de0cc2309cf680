"""The model seam: the one place that turns settings into an Agents SDK model provider."""

from __future__ import annotations

import httpx2
from agents import ModelProvider, ModelSettings, OpenAIProvider, RunConfig
from openai import AsyncOpenAI, DefaultAioHttpClient

from shared.core.credentials import async_credential
from shared.core.services import service
from shared.core.settings import Settings, get_settings
from shared.platform import observability
from shared.platform.offline_model import OfflineModelProvider

AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"


# Model connections kept open between runs (the pool itself grows to the in-flight limit).
KEEPALIVE_CONNECTIONS = 100
_HTTP_CLIENTS: list[httpx2.AsyncClient] = []


def _http_client(settings: Settings) -> httpx2.AsyncClient:
    """The model client's HTTP transport: aiohttp (openai's `DefaultAioHttpClient`, the
    `openai[aiohttp]` extra), with room for one connection per run in flight.

    httpx's own pool scans all its connections on every request; with hundreds of runs waiting
    on the model that scan cost more CPU than the runs (bench/scale.py).
    """
    limits = httpx2.Limits(
        max_connections=max(KEEPALIVE_CONNECTIONS, settings.max_in_flight_runs),
        max_keepalive_connections=KEEPALIVE_CONNECTIONS,
    )
    client = DefaultAioHttpClient(limits=limits)
    _HTTP_CLIENTS.append(client)
    return client


def _openai_client(settings: Settings, *, key: str | None) -> AsyncOpenAI:
    """An AsyncOpenAI client for OpenAI or a compatible server (OPENAI_BASE_URL)."""
    return AsyncOpenAI(
        api_key=key, base_url=settings.openai_base_url, http_client=_http_client(settings)
    )


def _azure_client(settings: Settings) -> AsyncOpenAI:
    """An AsyncOpenAI client for Azure OpenAI's v1 API that authenticates with Entra ID."""
    from azure.identity.aio import get_bearer_token_provider

    endpoint = (settings.azure_openai_endpoint or "").rstrip("/")
    return AsyncOpenAI(
        base_url=f"{endpoint}/openai/v1/",
        api_key=get_bearer_token_provider(async_credential(), AZURE_OPENAI_SCOPE),
        http_client=_http_client(settings),
    )


async def aclose_model_clients() -> None:
    """Close the model clients' connections (at shutdown)."""
    while _HTTP_CLIENTS:
        await _HTTP_CLIENTS.pop().aclose()


def build_model_provider(settings: Settings) -> ModelProvider:
    """Build the provider named by MODEL_PROVIDER: offline, openai, azure or compatible."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    match settings.model_provider:
        case "offline":
            return OfflineModelProvider(settings.offline_token_delay_ms)
        case "openai":
            return OpenAIProvider(openai_client=_openai_client(settings, key=key))
        case "azure":
            return OpenAIProvider(openai_client=_azure_client(settings), use_responses=False)
        case "compatible":
            # Gemini, vLLM, llama.cpp and Ollama speak Chat Completions, not Responses.
            client = _openai_client(settings, key=key or "unused")
            return OpenAIProvider(openai_client=client, use_responses=False)


@service("model_provider")
def get_model_provider() -> ModelProvider:
    """Return the process-wide model provider, built on first use."""
    return build_model_provider(get_settings())


def run_config() -> RunConfig:
    """Per-run configuration from settings: the model provider and whether traces leave.

    Built once per provider (building one costs ~1.5 ms: the SDK validates its settings with
    typing introspection) and shared by every run, which only read it.
    """
    provider = get_model_provider()
    # The SDK makes its spans only when someone consumes them: OpenTelemetry (an exporter is
    # set) or OpenAI's dashboard (asked for); otherwise tracing costs nothing.
    traced = observability.sdk_tracing_on()
    key = (id(provider), traced)
    cached = _RUN_CONFIGS.get(key)
    if cached is not None and cached[0] is provider:
        return cached[1]
    settings = get_settings()
    config = RunConfig(
        model_provider=provider,
        model=None if settings.model_provider == "offline" else settings.model_name,
        # Streamed Chat Completions report usage only when asked (stream_options.include_usage);
        # the SDK asks on its own only for api.openai.com, so compatible servers need this.
        model_settings=ModelSettings(include_usage=True),
        tracing_disabled=not traced,
        # Inputs and outputs stay out of the SDK's spans unless content capture is on.
        trace_include_sensitive_data=settings.otel_capture_content,
    )
    _RUN_CONFIGS.clear()
    _RUN_CONFIGS[key] = (provider, config)
    return config


_RUN_CONFIGS: dict[tuple[int, bool], tuple[ModelProvider, RunConfig]] = {}
