"""The model seam: the one place that turns settings into an Agents SDK model provider."""

from __future__ import annotations

from functools import lru_cache

from agents import ModelProvider, OpenAIProvider
from openai import AsyncOpenAI

from shared.credentials import async_credential
from shared.offline_model import OfflineModelProvider
from shared.settings import Settings, get_settings

AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"


def _azure_client(settings: Settings) -> AsyncOpenAI:
    """An AsyncOpenAI client for Azure OpenAI's v1 API that authenticates with Entra ID."""
    from azure.identity.aio import get_bearer_token_provider

    endpoint = (settings.azure_openai_endpoint or "").rstrip("/")
    return AsyncOpenAI(
        base_url=f"{endpoint}/openai/v1/",
        api_key=get_bearer_token_provider(async_credential(), AZURE_OPENAI_SCOPE),
    )


def build_model_provider(settings: Settings) -> ModelProvider:
    """Build the provider named by MODEL_PROVIDER: offline, openai, azure or compatible."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    match settings.model_provider:
        case "offline":
            return OfflineModelProvider()
        case "openai":
            return OpenAIProvider(api_key=key, base_url=settings.openai_base_url)
        case "azure":
            return OpenAIProvider(openai_client=_azure_client(settings), use_responses=False)
        case "compatible":
            # Gemini, vLLM, llama.cpp and Ollama speak Chat Completions, not Responses.
            return OpenAIProvider(
                api_key=key or "unused", base_url=settings.openai_base_url, use_responses=False
            )


@lru_cache(maxsize=1)
def get_model_provider() -> ModelProvider:
    """Return the process-wide model provider, built on first use."""
    return build_model_provider(get_settings())
