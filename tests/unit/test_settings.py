"""Settings: defaults, database URL normalisation, provider validation, trace export."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.core.settings import Settings, get_settings


def settings(**env: str) -> Settings:
    """Settings read from exactly these environment variables (on top of the test defaults)."""
    return Settings(**env)  # type: ignore[arg-type]


class TestDefaults:
    def test_embedded_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With nothing set: dev environment, .ascent data dir, offline model, no database URL."""
        monkeypatch.delenv("ASCENT_ENV")
        monkeypatch.delenv("ASCENT_DATA_DIR")
        s = Settings()
        assert (s.environment, s.data_dir, s.model_provider) == ("dev", Path(".ascent"), "offline")
        assert s.database_url is None
        assert s.max_body_bytes == 256 * 1024

    def test_reads_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Env vars, matched case-insensitively, override the defaults."""
        monkeypatch.setenv("ascent_max_turns", "3")
        assert Settings().max_turns == 3

    def test_empty_values_count_as_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty env var (as compose files often leave them) keeps the default."""
        monkeypatch.setenv("MODEL_PROVIDER", "")
        assert Settings().model_provider == "offline"

    def test_get_settings_is_cached(self) -> None:
        """get_settings returns one shared object until its cache is cleared."""
        assert get_settings() is get_settings()

    def test_rejects_out_of_range_limits(self) -> None:
        """A body limit below 1 KiB is refused."""
        with pytest.raises(ValidationError):
            settings(ASCENT_MAX_BODY_BYTES="10")


class TestSqlalchemyUrl:
    def test_defaults_to_sqlite_in_the_data_dir(self, tmp_path: Path) -> None:
        """Without DATABASE_URL the URL is aiosqlite on <data_dir>/ascent.db."""
        s = settings(ASCENT_DATA_DIR=str(tmp_path))
        assert s.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'ascent.db'}"

    @pytest.mark.parametrize("url", ["postgres://u:p@db:5432/app", "postgresql://u:p@db:5432/app"])
    def test_postgres_urls_use_psycopg(self, url: str) -> None:
        """postgres:// and postgresql:// become postgresql+psycopg://."""
        assert settings(DATABASE_URL=url).sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/app"

    def test_sqlite_urls_use_aiosqlite(self) -> None:
        """sqlite:///path becomes sqlite+aiosqlite:///path."""
        s = settings(DATABASE_URL="sqlite:///tmp/x.db")
        assert s.sqlalchemy_url == "sqlite+aiosqlite:///tmp/x.db"

    def test_explicit_drivers_are_kept(self) -> None:
        """A URL that already names its async driver is used as given."""
        url = "postgresql+asyncpg://u@db/app"
        assert settings(DATABASE_URL=url).sqlalchemy_url == url


class TestProviderValidation:
    def test_openai_needs_a_key(self) -> None:
        """MODEL_PROVIDER=openai without OPENAI_API_KEY fails with a clear message."""
        with pytest.raises(ValidationError, match="needs OPENAI_API_KEY"):
            settings(MODEL_PROVIDER="openai")

    def test_azure_needs_an_endpoint(self) -> None:
        """MODEL_PROVIDER=azure without AZURE_OPENAI_ENDPOINT fails."""
        with pytest.raises(ValidationError, match="needs AZURE_OPENAI_ENDPOINT"):
            settings(MODEL_PROVIDER="azure")

    def test_compatible_needs_a_base_url(self) -> None:
        """MODEL_PROVIDER=compatible without OPENAI_BASE_URL fails."""
        with pytest.raises(ValidationError, match="needs OPENAI_BASE_URL"):
            settings(MODEL_PROVIDER="compatible")

    def test_unknown_provider_is_refused(self) -> None:
        """A provider name outside offline/openai/azure/compatible fails."""
        with pytest.raises(ValidationError):
            settings(MODEL_PROVIDER="anthropic")

    def test_placeholder_key_is_refused_outside_dev(self) -> None:
        """A sample placeholder key is refused in test and prod."""
        with pytest.raises(ValidationError, match="placeholder"):
            settings(OPENAI_API_KEY="changeme")

    def test_placeholder_key_is_tolerated_in_dev(self) -> None:
        """In dev a placeholder key with the offline model is accepted."""
        assert settings(ASCENT_ENV="dev", OPENAI_API_KEY="changeme").model_provider == "offline"

    def test_secrets_are_not_shown_in_repr(self) -> None:
        """The API key never appears in the settings' repr."""
        s = settings(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-secret-value")
        assert "sk-secret-value" not in repr(s)


class TestExportsTraces:
    def test_exports_with_openai_a_key_and_the_setting(self) -> None:
        """Traces go to OpenAI with the openai provider, a key and ASCENT_TRACE_EXPORT=true."""
        s = settings(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-real", ASCENT_TRACE_EXPORT="true")
        assert s.exports_traces

    def test_does_not_export_unless_asked(self) -> None:
        """A real OpenAI key alone does not send traces to OpenAI (the setting defaults off)."""
        assert not settings(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-real").exports_traces

    def test_does_not_export_offline_even_with_a_key(self) -> None:
        """The offline model never exports traces, key or not."""
        assert not settings(OPENAI_API_KEY="sk-real", ASCENT_TRACE_EXPORT="true").exports_traces

    def test_does_not_export_for_compatible_endpoints(self) -> None:
        """An OpenAI-compatible endpoint does not send traces to OpenAI."""
        s = settings(
            MODEL_PROVIDER="compatible",
            OPENAI_BASE_URL="http://x/v1",
            OPENAI_API_KEY="sk-real",
            ASCENT_TRACE_EXPORT="true",
        )
        assert not s.exports_traces

    def test_can_be_switched_off(self) -> None:
        """ASCENT_TRACE_EXPORT=false turns export off even with openai and a key."""
        s = settings(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-real", ASCENT_TRACE_EXPORT="false")
        assert not s.exports_traces
