"""The usage endpoints' query: an inclusive range of UTC days, bounded, validated up front."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.api.usage import MAX_DAYS, UsageQuery, parse_query, today
from shared.core.errors import ValidationFailed


def test_the_default_range_is_the_last_thirty_days_ending_today() -> None:
    """Without `from` and `to`, a report covers 30 days ending with today."""
    first, last = parse_query([]).span(today())
    assert (last, (last - first).days + 1) == (today(), 30)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    """`from` after `to` is a 422 that names no value."""
    with pytest.raises(ValidationFailed):
        parse_query([("from", "2026-03-02"), ("to", "2026-03-01")])


def test_a_range_longer_than_the_limit_is_refused() -> None:
    """A range of more than MAX_DAYS days is refused; exactly MAX_DAYS is served."""
    last = date(2026, 12, 31)
    ok = parse_query(
        [("from", (last - timedelta(days=MAX_DAYS - 1)).isoformat()), ("to", str(last))]
    )
    assert ok.span(today()) == (last - timedelta(days=MAX_DAYS - 1), last)
    with pytest.raises(ValidationFailed):
        parse_query([("from", (last - timedelta(days=MAX_DAYS)).isoformat()), ("to", str(last))])


@pytest.mark.parametrize("params", [[("from", "yesterday")], [("format", "xml")], [("x", "1")]])
def test_bad_parameters_are_refused(params: list[tuple[str, str]]) -> None:
    """A day that is not YYYY-MM-DD, an unknown format or an unknown parameter is a 422."""
    with pytest.raises(ValidationFailed):
        parse_query(params)


def test_a_parsed_query_round_trips_its_wire_names() -> None:
    """`from` is read by its wire name (a Python keyword, so the field is `from_`)."""
    assert UsageQuery.model_validate({"from": "2026-01-01"}).from_ == date(2026, 1, 1)
