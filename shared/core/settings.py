"""One typed settings object for every stage of the ascent, read lazily from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.core.services import service

ModelProviderName = Literal["offline", "openai", "azure", "compatible"]

# Values that mean "someone copied the sample and forgot to fill it in".
_PLACEHOLDERS = {"changeme", "change-me", "placeholder", "your-key-here", "sk-..."}


class Settings(BaseSettings):
    """Every knob Ascent reads; env var names match the Bicep outputs and local/.env.sample."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", case_sensitive=False, populate_by_name=True
    )

    environment: Literal["dev", "test", "prod"] = Field("dev", alias="ASCENT_ENV")
    data_dir: Path = Field(Path(".ascent"), alias="ASCENT_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    # `entra`: connect to Postgres with a managed-identity token as the password (Azure).
    database_auth: Literal["password", "entra"] = Field("password", alias="DATABASE_AUTH")

    model_provider: ModelProviderName = Field("offline", alias="MODEL_PROVIDER")
    model_name: str = Field("gpt-4.1-mini", alias="MODEL_NAME")
    # The offline model waits this long before each streamed text chunk, so a client (the UI's
    # browser tests) can watch an answer grow before its run ends. 0: as fast as it can.
    offline_token_delay_ms: int = Field(0, ge=0, le=1000, alias="ASCENT_OFFLINE_TOKEN_DELAY_MS")
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    azure_openai_endpoint: str | None = Field(None, alias="AZURE_OPENAI_ENDPOINT")
    azure_client_id: str | None = Field(None, alias="AZURE_CLIENT_ID")
    # The Agents SDK's own exporter to the OpenAI traces dashboard: off unless this is set AND
    # MODEL_PROVIDER=openai with a real key (issue 16: nothing leaves the process unasked).
    trace_export: bool = Field(False, alias="ASCENT_TRACE_EXPORT")

    # --- observability (issue 16, shared/platform/observability.py) ---------------------------
    # Azure Monitor: set by Bicep; the distro authenticates with the managed identity
    # (AZURE_CLIENT_ID), so the connection string's instrumentation key is no secret of ours.
    # Not a secret: Application Insights has local auth disabled, so its key admits nothing.
    applicationinsights_connection_string: str | None = Field(
        None, alias="APPLICATIONINSIGHTS_CONNECTION_STRING"
    )
    # OTLP/HTTP (a collector, the Aspire dashboard, Jaeger): the base URL, e.g.
    # http://otel:4318; the exporters add /v1/traces and /v1/metrics.
    otel_exporter_otlp_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_service_name: str = Field("ascent", min_length=1, alias="OTEL_SERVICE_NAME")
    # `none`: traces only (a collector without metrics, such as compose's Jaeger).
    otel_metrics_exporter: Literal["otlp", "none"] = Field("otlp", alias="OTEL_METRICS_EXPORTER")
    # Message content (user input, model output, tool arguments and results) on spans: off
    # unless asked; token counts, model and tool names are always recorded.
    otel_capture_content: bool = Field(False, alias="ASCENT_OTEL_CAPTURE_CONTENT")
    # How often metrics are exported (and the queue, review and outbox gauges read).
    otel_metric_export_seconds: float = Field(
        60.0, gt=0, le=3600, alias="ASCENT_OTEL_METRIC_EXPORT_SECONDS"
    )
    # Log lines: `text` (default) or `json`, one object per line with tenant, run, thread and
    # trace ids (shared/core/telemetry.py).
    log_format: Literal["text", "json"] = Field("text", alias="ASCENT_LOG_FORMAT")

    max_body_bytes: int = Field(256 * 1024, ge=1024, alias="ASCENT_MAX_BODY_BYTES")
    max_input_chars: int = Field(32_000, ge=1, alias="ASCENT_MAX_INPUT_CHARS")
    max_turns: int = Field(10, ge=1, le=100, alias="ASCENT_MAX_TURNS")
    # The agent developer's modules the catalog serves, comma-separated (empty: the
    # `ascent.agents` entry points, else the demo agents in examples/; shared/agents/loading.py).
    agents: str = Field("", alias="ASCENT_AGENTS")
    history_limit: int = Field(200, ge=1, alias="ASCENT_HISTORY_LIMIT")

    dev_api_key: SecretStr | None = Field(None, alias="ASCENT_DEV_API_KEY")

    # Agent Protocol
    default_agent: str = Field("triage", alias="ASCENT_DEFAULT_AGENT")
    # The poll fallback: how often a waiter re-reads the database for runs of other processes
    # where no notification channel exists (several processes on one SQLite file without
    # Redis, CockroachDB without Redis); see shared/platform/notify.py.
    run_poll_seconds: float = Field(0.1, gt=0, le=3600, alias="ASCENT_RUN_POLL_SECONDS")
    run_wait_seconds: float = Field(200.0, gt=0, alias="ASCENT_RUN_WAIT_SECONDS")
    run_timeout_seconds: float = Field(900.0, gt=0, alias="ASCENT_RUN_TIMEOUT_SECONDS")
    stream_keepalive_seconds: float = Field(15.0, gt=0, alias="ASCENT_STREAM_KEEPALIVE_SECONDS")
    max_run_delay_seconds: int = Field(7 * 24 * 3600, ge=0, alias="ASCENT_MAX_RUN_DELAY_SECONDS")

    # --- security (issue 9): admin API, identity, rate limits, input limits -------------------
    # Platform admin key for /api/platform/*; unset = admin API disabled (404). Min 32 chars.
    admin_key: SecretStr | None = Field(None, alias="ASCENT_ADMIN_KEY")
    # Trust X-MS-CLIENT-PRINCIPAL only when ACA built-in auth fronts every request (else forgeable).
    trust_aca_auth: bool = Field(False, alias="ASCENT_TRUST_ACA_AUTH")
    # The app role (JWT `roles` claim, or an ACA client principal's role claims) that lets a
    # user see every thread of the tenant; users without it see their own and granted threads.
    tenant_admin_role: str = Field(
        "Ascent.TenantAdmin", min_length=1, max_length=200, alias="ASCENT_TENANT_ADMIN_ROLE"
    )
    # Budgets per tenant and per key/user; 0 disables that limit.
    rate_limit_per_minute: int = Field(600, ge=0, alias="ASCENT_RATE_LIMIT_PER_MINUTE")
    key_rate_limit_per_minute: int = Field(300, ge=0, alias="ASCENT_KEY_RATE_LIMIT_PER_MINUTE")
    max_concurrent_runs: int = Field(10, ge=0, alias="ASCENT_MAX_CONCURRENT_RUNS")
    tokens_per_day: int = Field(2_000_000, ge=0, alias="ASCENT_TOKENS_PER_DAY")
    max_metadata_bytes: int = Field(16 * 1024, ge=2, alias="ASCENT_MAX_METADATA_BYTES")
    max_messages: int = Field(256, ge=1, alias="ASCENT_MAX_MESSAGES")
    # Human-in-the-loop (shared/runs/reviews.py): how long a review waits before it expires, the
    # deployment's default auto-approved write/spend tools (comma-separated; a tenant policy
    # replaces it), and the promised refund above which billing's answer goes to review.
    review_ttl_seconds: int = Field(24 * 3600, ge=1, alias="ASCENT_REVIEW_TTL_SECONDS")
    auto_approve_tools: str = Field("remember", alias="ASCENT_AUTO_APPROVE_TOOLS")
    refund_review_threshold: float = Field(1000.0, ge=0, alias="ASCENT_REFUND_REVIEW_THRESHOLD")
    # The data policy of tenants without their own (shared/security/data_policy.py): card
    # numbers and tenant patterns are `refuse`d (422) or `redact`ed before anything is stored.
    data_policy: Literal["refuse", "redact", "off"] = Field("refuse", alias="ASCENT_DATA_POLICY")
    # How long an Idempotency-Key's first answer is kept (shared/api/idempotency.py).
    idempotency_ttl_hours: float = Field(
        24.0, gt=0, le=24 * 30, alias="ASCENT_IDEMPOTENCY_TTL_HOURS"
    )

    # --- MCP (issue 14): agents calling tools on MCP servers (shared/agents/mcp_servers.py) ---
    # The shared MCP tool server (`python -m mcp_tools`); set, the demo agents call its
    # calculator, clock and error lookup over MCP instead of in-process.
    mcp_tools_url: str | None = Field(None, alias="ASCENT_MCP_TOOLS_URL")
    # Bearer token the tool server requires and the agents send (unset: none required).
    mcp_tools_token: SecretStr | None = Field(None, alias="ASCENT_MCP_TOOLS_TOKEN")
    # More MCP servers by agent, as JSON: {"agent": [{"name", "url", ...}]} (McpServerDecl).
    mcp_servers: str = Field("", alias="ASCENT_MCP_SERVERS")
    # The secrets their headers send, as JSON {"name": "value"}; a header names one of them.
    mcp_secrets: SecretStr | None = Field(None, alias="ASCENT_MCP_SECRETS")
    # `pooled`: one connection per server per process, reused by runs; `per_run`: connected
    # and closed by each run (bench/mcp_overhead.py measures both).
    mcp_connections: Literal["pooled", "per_run"] = Field("pooled", alias="ASCENT_MCP_CONNECTIONS")
    # How long a pooled server's tool list is reused before it is listed again.
    mcp_tools_ttl_seconds: float = Field(60.0, ge=0, le=86400, alias="ASCENT_MCP_TOOLS_TTL_SECONDS")
    # Shared by sessions/cache and rate limits; unset = in-process fallbacks (one instance only).
    redis_url: str | None = Field(None, alias="REDIS_URL")
    # Seconds an API-key lookup stays in the Redis cache (shared/platform/cache.py); revocation and
    # rotation delete the entry, so this only bounds staleness if that delete fails. 0 = no
    # cache; without REDIS_URL there is never one.
    auth_cache_seconds: int = Field(60, ge=0, alias="ASCENT_AUTH_CACHE_SECONDS")

    # Long-term memory: the Agent Protocol store, its embeddings and its retention.
    embeddings_provider: Literal["offline", "openai", "azure"] = Field(
        "offline", alias="EMBEDDINGS_PROVIDER"
    )
    embeddings_model: str = Field("text-embedding-3-small", alias="EMBEDDINGS_MODEL")
    embeddings_dimensions: int = Field(256, ge=16, le=4096, alias="EMBEDDINGS_DIMENSIONS")
    store_default_ttl_seconds: int | None = Field(
        None, ge=1, alias="STORE_DEFAULT_TTL_SECONDS"
    )  # None: items live until deleted, unless a put sets a ttl
    store_search_max_candidates: int = Field(
        50_000, ge=100, alias="STORE_SEARCH_MAX_CANDIDATES"
    )  # the exact scan scores the newest this many; a filtered vector search reads this many
    # pgvector: a prefix with fewer comparable items than this is ranked exactly in SQL (cheap
    # there, and an HNSW walk filtered down to a small namespace may come up short); larger
    # ones walk the HNSW index (shared/memory/store.py).
    store_vector_exact_below: int = Field(5_000, ge=1, alias="STORE_VECTOR_EXACT_BELOW")
    # pgvector's hnsw.ef_search for a search (at least the page's offset + limit): higher finds
    # more of the true nearest items (recall) for more work per search.
    store_hnsw_ef_search: int = Field(400, ge=10, le=1_000, alias="STORE_HNSW_EF_SEARCH")
    store_max_value_bytes: int = Field(64 * 1024, ge=256, alias="STORE_MAX_VALUE_BYTES")
    # auto: semantic search uses the database's vector search (pgvector's HNSW index, or
    # sqlite-vec) where it has one (shared/memory/vector_search.py); exact (or its old name,
    # off): always the exact scan, as on Postgres without pgvector and CockroachDB.
    store_vector_search: Literal["auto", "exact", "off"] = Field(
        "auto", alias="STORE_VECTOR_SEARCH"
    )

    # Conversation sessions: where the SDK Session keeps each thread's history
    # (shared/memory/sessions.py). sql = the database above; redis = REDIS_URL; upstash = the
    # Upstash REST API; dapr = the
    # sidecar's state store. TTL applies to redis/upstash/dapr; SQL history is left to a
    # retention job instead.
    session_backend: Literal["sql", "redis", "upstash", "dapr"] = Field(
        "sql", alias="SESSION_BACKEND"
    )
    session_ttl_seconds: int | None = Field(None, ge=1, alias="SESSION_TTL_SECONDS")
    upstash_redis_rest_url: str | None = Field(None, alias="UPSTASH_REDIS_REST_URL")
    upstash_redis_rest_token: SecretStr | None = Field(None, alias="UPSTASH_REDIS_REST_TOKEN")
    dapr_state_store: str = Field("statestore", min_length=1, alias="DAPR_STATE_STORE")
    # Set by ACA (and daprd) when the app has a Dapr sidecar; the dapr SDK reads them too.
    dapr_http_port: int | None = Field(None, ge=1, le=65535, alias="DAPR_HTTP_PORT")
    dapr_grpc_port: int | None = Field(None, ge=1, le=65535, alias="DAPR_GRPC_PORT")

    # Scheduled jobs (aca_jobs/). Retention defaults in days per kind of record (0 = keep
    # forever); a tenant's row in `tenant_retention` overrides them. Store items also go when
    # their own TTL expires.
    retention_days_threads: int = Field(90, ge=0, alias="ASCENT_RETENTION_DAYS_THREADS")
    retention_days_runs: int = Field(90, ge=0, alias="ASCENT_RETENTION_DAYS_RUNS")
    retention_days_run_events: int = Field(30, ge=0, alias="ASCENT_RETENTION_DAYS_RUN_EVENTS")
    retention_days_store: int = Field(0, ge=0, alias="ASCENT_RETENTION_DAYS_STORE")
    # Rows one job step deletes or reads at most before it commits.
    job_batch_size: int = Field(500, ge=1, le=100_000, alias="ASCENT_JOB_BATCH_SIZE")
    # rollup_usage recomputes the UTC days from (today - N + 1) to today.
    usage_rollup_days: int = Field(2, ge=1, le=400, alias="ASCENT_USAGE_ROLLUP_DAYS")
    # USD per 1k tokens per model, JSON `{"model": {"input": 0.4, "output": 1.6}}`, merged over
    # the built-in table of shared/runs/usage.py.
    model_prices: str | None = Field(None, alias="ASCENT_MODEL_PRICES")
    # consolidate_memory summarizes threads idle this long; a claim older than the lease is
    # taken over (its replica crashed).
    consolidate_idle_minutes: int = Field(60, ge=1, alias="ASCENT_CONSOLIDATE_IDLE_MINUTES")
    consolidate_lease_seconds: int = Field(600, ge=10, alias="ASCENT_CONSOLIDATE_LEASE_SECONDS")
    # User crons: at most this many per tenant.
    max_crons: int = Field(100, ge=0, alias="ASCENT_MAX_CRONS")

    # Domain events (shared/outbox/events.py): the Dapr pub/sub component and topic they go to
    # (names from local/components/pubsub.yaml and subscription.yaml). ASCENT_EVENTS_PUBLISH:
    # `auto` =
    # through the sidecar when DAPR_*_PORT are set, else in-process to the subscribed functions;
    # `off` = this process leaves pub/sub to others and only delivers webhooks (ACA Jobs: no
    # sidecar, and in-process delivery there would bypass the broker's other subscribers).
    dapr_pubsub_name: str = Field("pubsub", min_length=1, alias="DAPR_PUBSUB_NAME")
    dapr_topic: str = Field("agent-events", min_length=1, alias="DAPR_TOPIC")
    events_publish: Literal["auto", "off"] = Field("auto", alias="ASCENT_EVENTS_PUBLISH")
    # First retry delay of a failed publish or webhook; doubles per attempt up to 5 minutes.
    events_retry_seconds: float = Field(2.0, gt=0, le=300, alias="ASCENT_EVENTS_RETRY_SECONDS")
    # Webhooks: attempts before a delivery is given up, per-attempt timeout, and whether
    # private/loopback targets are allowed (tests and local receivers only: in a deployment it
    # would let any tenant make the service call its own internal network - SSRF).
    webhook_max_attempts: int = Field(8, ge=1, le=50, alias="ASCENT_WEBHOOK_MAX_ATTEMPTS")
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, alias="ASCENT_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_allow_private: bool = Field(False, alias="ASCENT_WEBHOOK_ALLOW_PRIVATE")

    # CORS (shared/api/cors.py): browser origins allowed to call the API, comma-separated
    # (`https://app.example.com,http://localhost:8000`, or `*`); empty = CORS off (default).
    cors_origins: str = Field("", alias="ASCENT_CORS_ORIGINS")
    cors_max_age_seconds: int = Field(600, ge=0, le=86_400, alias="ASCENT_CORS_MAX_AGE_SECONDS")

    # Background runs (shared/runs/dispatch.py, shared/platform/queues.py): where `enqueue_run`
    # puts a run. embedded = a queue table in the SQL database (Storage-Queue semantics); azure =
    # Azure
    # Storage Queues (Azurite locally) through the Functions host's own `AzureWebJobsStorage`
    # connection settings (read by shared/platform/queues.py); inline = an asyncio task in the
    # calling process (no queue: a crash loses the run until the sweeper re-enqueues it).
    queue_backend: Literal["embedded", "azure", "inline"] = Field("embedded", alias="QUEUE_BACKEND")
    # Recovery by heartbeat (docs/reliability.md). A running run, a pending run a receiver
    # waits on, and a received queue message are each held by a short lease, renewed every
    # ASCENT_LEASE_HEARTBEAT_SECONDS (unset: a third of the shorter lease); a dead holder stops
    # renewing, and the sweep (every ASCENT_SWEEP_INTERVAL_SECONDS, unset: half the run lease;
    # on every host that drives the queue, and the sweep_leases job) hands what it held to
    # another executor. Relations, checked at start (`_check_recovery`): heartbeat <= lease / 3
    # (two renewals may fail before a live holder loses its lease), sweep interval <= run lease,
    # and the takeover bound, run lease + sweep interval, <= ASCENT_RECOVERY_SECONDS (60 s: a
    # killed host's runs and messages are taken over within a minute).
    run_lease_seconds: float = Field(30.0, gt=0, alias="ASCENT_RUN_LEASE_SECONDS")
    lease_heartbeat_seconds: float | None = Field(
        None, gt=0, alias="ASCENT_LEASE_HEARTBEAT_SECONDS"
    )
    sweep_interval_seconds: float | None = Field(None, gt=0, alias="ASCENT_SWEEP_INTERVAL_SECONDS")
    recovery_seconds: float = Field(60.0, gt=0, alias="ASCENT_RECOVERY_SECONDS")
    # The sweeper re-enqueues pending runs nobody holds, untouched for this long: their message
    # was lost before any executor received it, or waits in a backlog (a duplicate is harmless).
    sweep_pending_after_seconds: float = Field(
        900.0, gt=0, alias="ASCENT_SWEEP_PENDING_AFTER_SECONDS"
    )
    # The run engine (shared/runs/engine.py): how many runs one instance executes at once,
    # requests and queue messages together (a run waiting on its model holds no thread and no
    # database connection, so this is bounded by memory, ~0.3 MB per run, not by the pool).
    # Past it a synchronous request waits up to ASCENT_RUN_SLOT_WAIT_SECONDS for a slot, then
    # gets 503 with Retry-After; the queue driver stops receiving until a slot frees.
    max_in_flight_runs: int = Field(1000, ge=1, le=100_000, alias="ASCENT_MAX_IN_FLIGHT_RUNS")
    run_slot_wait_seconds: float = Field(10.0, ge=0, le=600, alias="ASCENT_RUN_SLOT_WAIT_SECONDS")
    # How live run events, cancels and ends reach other instances (shared/platform/notify.py):
    # auto = PostgreSQL LISTEN/NOTIFY on Postgres, else Redis pub/sub when REDIS_URL is set, else
    # the poll fallback; `poll` forces the fallback. The executing instance's own subscribers
    # are always served in-process.
    events_channel: Literal["auto", "postgres", "redis", "poll"] = Field(
        "auto", alias="ASCENT_EVENTS_CHANNEL"
    )
    # Database access of the hot paths (shared/db/direct.py): writer threads on Postgres (SQLite
    # always has one) and reader threads; the async engine's pool serves everything else.
    db_writers: int = Field(4, ge=1, le=64, alias="ASCENT_DB_WRITERS")
    db_readers: int = Field(8, ge=1, le=64, alias="ASCENT_DB_READERS")
    db_pool_size: int = Field(10, ge=1, le=200, alias="ASCENT_DB_POOL_SIZE")

    # Dev host only: how long a received message stays invisible while its function runs,
    # renewed every ASCENT_LEASE_HEARTBEAT_SECONDS (the Functions host in Azure keeps its own
    # 10-minute lease; there the run's claim and the sweep recover a killed host's messages).
    queue_message_lease_seconds: float = Field(
        30.0, gt=0, alias="ASCENT_QUEUE_MESSAGE_LEASE_SECONDS"
    )

    @model_validator(mode="after")
    def _check_recovery(self) -> Settings:
        """Refuse lease, heartbeat and sweep settings that contradict each other."""
        errors: list[str] = []
        beat, lease = self.heartbeat_seconds, self.run_lease_seconds
        message, sweep = self.queue_message_lease_seconds, self.sweep_every_seconds
        bound = self.recovery_seconds
        if beat * 3 > lease:
            errors.append(
                f"ASCENT_LEASE_HEARTBEAT_SECONDS ({beat:g}) must be at most a third of "
                f"ASCENT_RUN_LEASE_SECONDS ({lease:g})"
            )
        if beat * 3 > message:
            errors.append(
                f"ASCENT_LEASE_HEARTBEAT_SECONDS ({beat:g}) must be at most a third of "
                f"ASCENT_QUEUE_MESSAGE_LEASE_SECONDS ({message:g})"
            )
        if sweep > lease:
            errors.append(
                f"ASCENT_SWEEP_INTERVAL_SECONDS ({sweep:g}) must not exceed "
                f"ASCENT_RUN_LEASE_SECONDS ({lease:g})"
            )
        if lease + sweep > bound:
            errors.append(
                f"ASCENT_RUN_LEASE_SECONDS + ASCENT_SWEEP_INTERVAL_SECONDS ({lease + sweep:g}) "
                f"must not exceed ASCENT_RECOVERY_SECONDS ({bound:g})"
            )
        if message > bound:
            errors.append(
                f"ASCENT_QUEUE_MESSAGE_LEASE_SECONDS ({message:g}) must not exceed "
                f"ASCENT_RECOVERY_SECONDS ({bound:g})"
            )
        if errors:
            raise ValueError("contradicting recovery settings: " + "; ".join(errors))
        return self

    @model_validator(mode="after")
    def _check_session_backend(self) -> Settings:
        """Fail at first use, with a clear message, when a session backend lacks what it needs."""
        backend = self.session_backend
        if backend == "redis" and not self.redis_url:
            raise ValueError("SESSION_BACKEND=redis needs REDIS_URL")
        if backend == "upstash" and not (
            self.upstash_redis_rest_url and self.upstash_redis_rest_token
        ):
            raise ValueError(
                "SESSION_BACKEND=upstash needs UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN"
            )
        if backend == "dapr" and not (self.dapr_http_port and self.dapr_grpc_port):
            raise ValueError(
                "SESSION_BACKEND=dapr needs a sidecar: DAPR_HTTP_PORT and DAPR_GRPC_PORT "
                "(ACA and daprd set them)"
            )
        return self

    @model_validator(mode="after")
    def _check_provider(self) -> Settings:
        """Fail at first use, with a clear message, when a provider lacks what it needs."""
        key = self.openai_api_key.get_secret_value() if self.openai_api_key else None
        if key is not None and key.lower() in _PLACEHOLDERS and self.environment != "dev":
            raise ValueError("OPENAI_API_KEY holds a placeholder value")
        if self.model_provider == "openai" and not key:
            raise ValueError("MODEL_PROVIDER=openai needs OPENAI_API_KEY")
        if self.model_provider == "azure" and not self.azure_openai_endpoint:
            raise ValueError("MODEL_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT")
        if self.model_provider == "compatible" and not self.openai_base_url:
            raise ValueError("MODEL_PROVIDER=compatible needs OPENAI_BASE_URL")
        return self

    @property
    def heartbeat_seconds(self) -> float:
        """How often held leases are renewed: the setting, else a third of the shorter lease."""
        if self.lease_heartbeat_seconds is not None:
            return self.lease_heartbeat_seconds
        return min(self.run_lease_seconds, self.queue_message_lease_seconds) / 3

    @property
    def sweep_every_seconds(self) -> float:
        """How often a queue-driving host sweeps: the setting, else half the run lease."""
        if self.sweep_interval_seconds is not None:
            return self.sweep_interval_seconds
        return self.run_lease_seconds / 2

    @property
    def takeover_bound_seconds(self) -> float:
        """The longest a dead holder's run waits to be handed out: run lease + sweep interval."""
        return self.run_lease_seconds + self.sweep_every_seconds

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: SQLite in the data dir by default, psycopg 3 for Postgres."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'ascent.db'}"
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url

    @property
    def telemetry_on(self) -> bool:
        """Whether an OpenTelemetry exporter is configured (nothing is exported otherwise)."""
        return bool(self.applicationinsights_connection_string or self.otel_exporter_otlp_endpoint)

    @property
    def exports_traces(self) -> bool:
        """Traces go to OpenAI only with a real OpenAI key; otherwise nothing leaves the process."""
        return self.trace_export and self.model_provider == "openai" and bool(self.openai_api_key)


@service("settings")
def get_settings() -> Settings:
    """Return the process-wide settings, read on first use (never at import)."""
    return Settings()
