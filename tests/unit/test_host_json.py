"""The app reads the repository's host.json, wherever the module that reads it lives."""

from __future__ import annotations

import json
from pathlib import Path

REPO_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"


def test_queue_options_are_those_of_the_repository_host_json() -> None:
    """The queue driver's batch size and threshold are host.json's, not the host's defaults."""
    from shared.platform.queues import read_queue_options

    queues = json.loads(REPO_HOST_JSON.read_text())["extensions"]["queues"]
    options = read_queue_options()
    assert (options.batch_size, options.new_batch_threshold) == (
        queues["batchSize"],
        queues["newBatchThreshold"],
    )


def test_the_openapi_route_prefix_is_read_from_the_repository_host_json() -> None:
    """The OpenAPI document's route prefix comes from the repository's host.json."""
    from shared.api.openapi import HOST_JSON

    assert HOST_JSON == REPO_HOST_JSON
