"""The offline embedder and the packed-vector scoring behind semantic memory search."""

from __future__ import annotations

import math

import pytest

from shared.memory import embeddings
from shared.memory.embeddings import OfflineEmbedder, cosine_scores, pack, unpack


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
        packed = [pack(embedder.embed_one(d)) for d in docs]
        scores = cosine_scores(embedder.embed_one(query), packed)
        best = max(range(len(docs)), key=lambda i: scores[i] or 0.0)
        assert best == expected


class TestPacking:
    """The compact stored form of a vector."""

    def test_round_trip_is_close(self) -> None:
        """Unpacking returns the vector within int8 quantisation error."""
        vector = OfflineEmbedder(64).embed_one("round trip")
        assert max(abs(a - b) for a, b in zip(vector, unpack(pack(vector), 64), strict=True)) < 0.01

    def test_numpy_and_python_scores_agree(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The numpy path and the pure-Python fallback give the same scores; None stays None."""
        embedder = OfflineEmbedder(64)
        packed: list[str | None] = [pack(embedder.embed_one(f"text {n}")) for n in range(20)]
        packed.append(None)
        packed.append(pack(OfflineEmbedder(32).embed_one("other size")))
        query = embedder.embed_one("text 3")
        fast = cosine_scores(query, packed)
        monkeypatch.setattr(embeddings, "_np", None)
        slow = cosine_scores(query, packed)
        assert fast[-2:] == [None, None] and slow[-2:] == [None, None]
        for a, b in zip(fast[:-2], slow[:-2], strict=True):
            assert a is not None and b is not None and math.isclose(a, b, abs_tol=1e-5)
        assert max(range(20), key=lambda i: fast[i] or 0.0) == 3
