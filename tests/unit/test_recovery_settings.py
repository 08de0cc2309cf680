"""The recovery settings: leases, heartbeat and sweep interval, and the check of their relations."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.settings import Settings


def test_contradicting_recovery_settings_are_refused_with_a_clear_message() -> None:
    """A heartbeat over a third of the lease, a sweep longer than the lease, or a takeover
    bound over ASCENT_RECOVERY_SECONDS is refused at start, naming the settings."""
    cases = {
        "ASCENT_LEASE_HEARTBEAT_SECONDS": {
            "ASCENT_RUN_LEASE_SECONDS": "30",
            "ASCENT_LEASE_HEARTBEAT_SECONDS": "11",
        },
        "ASCENT_SWEEP_INTERVAL_SECONDS (40) must not exceed": {
            "ASCENT_RUN_LEASE_SECONDS": "30",
            "ASCENT_SWEEP_INTERVAL_SECONDS": "40",
        },
        "must not exceed ASCENT_RECOVERY_SECONDS (60)": {"ASCENT_RUN_LEASE_SECONDS": "600"},
        "ASCENT_QUEUE_MESSAGE_LEASE_SECONDS (600) must not exceed": {
            "ASCENT_QUEUE_MESSAGE_LEASE_SECONDS": "600"
        },
    }
    for needle, values in cases.items():
        with pytest.raises(ValidationError, match="contradicting recovery settings") as caught:
            Settings(**values)  # type: ignore[arg-type]
        assert needle in str(caught.value), (needle, str(caught.value))


def test_the_defaults_take_over_within_a_minute() -> None:
    """Unset, the heartbeat is a third of the lease and the sweep half of it: 30 + 15 s."""
    settings = Settings()
    assert (settings.heartbeat_seconds, settings.sweep_every_seconds) == (10.0, 15.0)
    assert settings.takeover_bound_seconds == 45.0 <= settings.recovery_seconds == 60.0


def test_azure_sweeps_on_a_timer_trigger_every_five_seconds() -> None:
    """function_app indexes `sweep_leases_timer`, a timer on a 6-field NCRONTAB every 5 s,
    not run at startup (every scale-out would sweep at once)."""
    from function_app import app
    from shared.api.openapi import app_functions

    found = {f.get_function_name(): f for f in app_functions(app)}
    trigger: Any = found["sweep_leases_timer"].get_trigger()
    assert trigger.get_binding_name() == "timerTrigger"
    assert (trigger.schedule, trigger.run_on_startup) == ("*/5 * * * * *", False)
