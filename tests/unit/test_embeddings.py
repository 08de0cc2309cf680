"""The offline embedder and the exact scan's scoring behind semantic memory search."""

from __future__ import annotations

import math
import struct

import pytest

from shared.memory.embeddings import OfflineEmbedder
from shared.memory.vector_search import exact_scores


class TestOfflineEmbedder:
    """Network-free embeddings that capture enough meaning to rank paraphrases."""

    def test_unit_length_and_deterministic(self) -> None:
        """Vectors are L2-normalised and the same text always embeds the same way."""
        embedder = OfflineEmbedder(128)
        first, again = embedder.embed_one("Hello world"), embedder.embed_one("Hello world")
        assert first == again
        assert math.isclose(math.sqrt(sum(x * x for x in first)), 1.0)

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            pytest.param("Which colour do I like best?", 0, id="synonyms"),
            pytest.param("where does the user reside", 1, id="live-reside"),
            pytest.param("server crash", 2, id="stems"),
        ],
    )
    def test_paraphrase_outranks_unrelated(self, query: str, expected: int) -> None:
        """A paraphrase scores its source text above unrelated texts."""
        embedder = OfflineEmbedder()
        docs = [
            "My favorite color is blue",
            "I live in Lisbon with my family",
            "The servers crashed during the deploy",
        ]
        stored = [embedder.embed_one(d) for d in docs]
        scores = exact_scores(embedder.embed_one(query), stored)
        best = max(range(len(docs)), key=lambda i: scores[i] or 0.0)
        assert best == expected


class TestExactScores:
    """The exact scan's scoring of stored float32 vectors."""

    def test_bytes_and_arrays_score_alike_and_others_are_none(self) -> None:
        """float32 bytes (SQLite, bytea) and float lists score the same cosine; a missing vector
        or one of another width scores None."""
        embedder = OfflineEmbedder(64)
        vectors = [embedder.embed_one(f"text {n}") for n in range(20)]
        as_bytes: list[object] = [struct.pack("<64f", *v) for v in vectors]
        query = embedder.embed_one("text 3")
        from_bytes = exact_scores(query, [*as_bytes, None, OfflineEmbedder(32).embed_one("x")])
        from_lists = exact_scores(query, vectors)
        assert from_bytes[-2:] == [None, None]
        for a, b, v in zip(from_bytes, from_lists, vectors, strict=False):
            expected = sum(x * y for x, y in zip(query, v, strict=True))
            assert a is not None and b is not None
            assert math.isclose(a, expected, abs_tol=1e-5) and math.isclose(
                b, expected, abs_tol=1e-5
            )
        assert max(range(20), key=lambda i: from_bytes[i] or 0.0) == 3
