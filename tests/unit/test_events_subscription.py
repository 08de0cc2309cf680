"""In-process delivery serves exactly the subscription Dapr is given."""

from __future__ import annotations

import yaml

from local.devhost_process import ROOT
from shared.core.settings import Settings
from shared.outbox.events import SUBSCRIPTION_ROUTE, SUBSCRIPTIONS


def test_in_process_subscriptions_match_the_dapr_subscription_file() -> None:
    """Topic, pub/sub name and route agree with local/components/subscription.yaml."""
    sub = yaml.safe_load((ROOT / "local/components/subscription.yaml").read_text())["spec"]
    assert sub["routes"]["default"] == SUBSCRIPTION_ROUTE
    assert set(SUBSCRIPTIONS) == {sub["topic"]}
    assert Settings.model_fields["dapr_topic"].default == sub["topic"]
    assert Settings.model_fields["dapr_pubsub_name"].default == sub["pubsubname"]
