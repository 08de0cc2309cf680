"""The embeddings seam: turn texts into unit vectors, offline by default or through OpenAI/Azure.

`EMBEDDINGS_PROVIDER=offline` needs no network and no model file: it hashes stemmed words,
synonym concepts, word pairs and character trigrams into a signed feature vector, so a
paraphrase ("which colour do I like best") lands near the original ("my favourite color is
blue") and an unrelated text does not. `openai` and `azure` call the embeddings API with the
same client conventions as shared/platform/llm.py (API key, or Entra ID bearer tokens for Azure).
"""

from __future__ import annotations

import base64
import hashlib
import math
import operator
import re
import struct
from collections.abc import Sequence
from typing import Protocol

from openai import AsyncOpenAI
from openai.types import CreateEmbeddingResponse

try:  # numpy scores many vectors in one product; without it a pure-Python loop does
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None  # type: ignore[assignment]

from shared.core.errors import ConfigError, UpstreamModelError
from shared.core.retries import outbound, retryable_openai
from shared.core.services import service
from shared.core.settings import Settings, get_settings

Vector = list[float]


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed size; `model_id` names the space."""

    @property
    def model_id(self) -> str:
        """Identifies the vector space: vectors of different ids are never compared."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed each text (same order, one vector each)."""
        ...


# ---------------------------------------------------------------------------------------------
# Offline embedder
# ---------------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a an the and or but if then of to in on at by for with from as is are was were be been "
    "being am do does did doing have has had having i me my mine myself we us our ours you your "
    "yours he him his she her hers it its they them their theirs this that these those what "
    "which who whom whose when where why how there here so than too very can could would "
    "should will shall may might must just also about into over under again all any some such "
    "no not only own same up down out off s t don now tell please".split()
)

# Words that mean the same thing map to one concept token (after stemming).
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("favorite", "favourite", "prefer", "like", "love", "enjoy", "fond", "best", "adore"),
    ("dislike", "hate", "detest", "loathe", "avoid"),
    ("color", "colour", "hue", "shade"),
    ("car", "automobile", "vehicle", "auto", "drive"),
    ("home", "house", "live", "reside", "resident", "address", "apartment", "flat", "stay"),
    ("city", "town", "place", "location", "hometown"),
    ("job", "work", "occupation", "profession", "career", "employ", "employer", "role"),
    ("name", "call", "called", "nickname"),
    ("birthday", "born", "birth", "birthdate"),
    ("age", "old", "year"),
    ("food", "eat", "meal", "dish", "cuisine", "diet", "dinner", "lunch", "breakfast"),
    ("drink", "beverage", "coffee", "tea"),
    ("allergy", "allergic", "intolerance", "intolerant"),
    ("vegetarian", "vegan", "meatless", "plant"),
    ("pet", "dog", "cat", "puppy", "kitten", "animal"),
    ("child", "kid", "son", "daughter", "children", "baby"),
    ("spouse", "wife", "husband", "partner", "married"),
    ("family", "parent", "mother", "father", "mom", "dad", "sibling", "brother", "sister"),
    ("music", "song", "band", "listen", "genre", "album"),
    ("sport", "game", "play", "team", "football", "soccer", "tennis", "basketball"),
    ("travel", "trip", "vacation", "holiday", "journey", "visit", "flight", "fly"),
    ("language", "speak", "spoken", "tongue", "fluent"),
    ("phone", "mobile", "cell", "telephone", "number"),
    ("email", "mail", "inbox", "e-mail"),
    ("meeting", "appointment", "schedule", "calendar", "call"),
    ("buy", "purchase", "order", "bought", "shop"),
    ("refund", "reimburse", "money", "repay"),
    ("price", "cost", "fee", "charge", "pay", "bill", "invoice"),
    ("error", "bug", "crash", "fail", "failure", "broken", "issue", "problem", "fault"),
    ("login", "signin", "password", "credential", "authenticate", "log"),
    ("book", "novel", "read", "author"),
    ("movie", "film", "cinema", "watch"),
    ("weather", "rain", "sunny", "temperature", "forecast"),
    ("happy", "glad", "pleased", "joy"),
    ("sad", "unhappy", "upset", "depressed"),
    ("big", "large", "huge", "enormous"),
    ("small", "little", "tiny"),
    ("fast", "quick", "rapid", "speedy"),
    ("start", "begin", "commence"),
    ("stop", "end", "finish", "cease", "cancel"),
    ("help", "assist", "support", "aid"),
    ("remember", "recall", "memory", "remind"),
    ("doctor", "physician", "medic", "clinic", "hospital"),
    ("sick", "ill", "disease", "illness"),
    ("study", "school", "university", "college", "learn", "degree"),
    ("timezone", "zone", "utc", "clock"),
)

_SUFFIXES = ("ational", "ization", "fulness", "ousness", "iveness", "ingly", "ments", "ment",
             "ness", "ings", "ing", "edly", "ies", "ied", "ers", "est", "ed", "er", "ly", "es",
             "s")  # fmt: skip


def stem(word: str) -> str:
    """Strip one common English suffix (a small Porter-like stemmer, good enough for hashing)."""
    if len(word) <= 3:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # running -> run, stopped -> stop
            return base
    return word


def _build_concepts() -> dict[str, str]:
    concepts: dict[str, str] = {}
    for group in _SYNONYM_GROUPS:
        for word in group:
            concepts.setdefault(stem(word), group[0])
            concepts.setdefault(word, group[0])
    return concepts


_CONCEPTS = _build_concepts()
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

# Feature weights: concepts carry meaning across paraphrases, stems carry the exact words,
# trigrams catch spelling variants and compounds, word pairs a little word order.
_W_STEM, _W_CONCEPT, _W_BIGRAM, _W_TRIGRAM = 1.0, 1.4, 0.5, 0.25


def _features(text: str) -> dict[str, float]:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    words = [w.split("'")[0] for w in words]  # "user's" -> "user"
    stems = [stem(w) for w in words if w not in _STOPWORDS]
    features: dict[str, float] = {}

    def add(name: str, weight: float) -> None:
        features[name] = features.get(name, 0.0) + weight

    for s in stems:
        add("w:" + s, _W_STEM)
        concept = _CONCEPTS.get(s)
        if concept is not None:
            add("c:" + concept, _W_CONCEPT)
        padded = f"<{s}>"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        for gram in grams:
            add("g:" + gram, _W_TRIGRAM / math.sqrt(len(grams)))
    for left, right in zip(stems, stems[1:], strict=False):
        add(f"b:{left} {right}", _W_BIGRAM)
    return features


def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, (1.0 if (value >> 63) & 1 else -1.0)


def normalize(vector: Sequence[float]) -> Vector:
    """Scale a vector to unit length (the zero vector stays zero)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else [0.0] * len(vector)


class OfflineEmbedder:
    """Deterministic, network-free embeddings from hashed lexical and synonym features."""

    def __init__(self, dimensions: int = 256) -> None:
        """Embed into `dimensions` buckets."""
        self.dimensions = dimensions

    @property
    def model_id(self) -> str:
        """The vector space: algorithm version and size."""
        return f"offline-hash-v1:{self.dimensions}"

    def embed_one(self, text: str) -> Vector:
        """Embed one text synchronously."""
        vector = [0.0] * self.dimensions
        for feature, weight in _features(text).items():
            index, sign = _bucket(feature, self.dimensions)
            vector[index] += sign * weight
        return normalize(vector)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed each text (CPU only; microseconds per text)."""
        return [self.embed_one(t) for t in texts]


# ---------------------------------------------------------------------------------------------
# OpenAI / Azure OpenAI
# ---------------------------------------------------------------------------------------------


class OpenAIEmbedder:
    """Embeddings through an OpenAI-compatible `/embeddings` endpoint."""

    def __init__(self, client: AsyncOpenAI, model: str, dimensions: int) -> None:
        """Use `client` to embed with `model`, asking for `dimensions` values per vector."""
        # The client's own retries are off so attempts are stamina's alone (`_create`).
        self._client = client.with_options(max_retries=0)
        self._model = model
        self.dimensions = dimensions

    @property
    def model_id(self) -> str:
        """The vector space: provider model and size."""
        return f"openai:{self._model}:{self.dimensions}"

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed the texts in one API call."""
        if not texts:
            return []
        try:
            response = await self._create(list(texts))
        except Exception as exc:
            raise UpstreamModelError("The embeddings provider failed.") from exc
        ordered = sorted(response.data, key=lambda d: d.index)
        return [normalize(d.embedding) for d in ordered]

    @outbound(on=retryable_openai)
    async def _create(self, texts: list[str]) -> CreateEmbeddingResponse:
        """One embeddings request, retried on transient provider errors (it has no effects)."""
        return await self._client.embeddings.create(
            model=self._model, input=texts, dimensions=self.dimensions
        )


def build_embedder(settings: Settings) -> Embedder:
    """Build the embedder named by EMBEDDINGS_PROVIDER: offline, openai or azure."""
    match settings.embeddings_provider:
        case "offline":
            return OfflineEmbedder(settings.embeddings_dimensions)
        case "openai":
            if settings.openai_api_key is None:
                raise ConfigError("EMBEDDINGS_PROVIDER=openai needs OPENAI_API_KEY.")
            client = AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
            )
            return OpenAIEmbedder(client, settings.embeddings_model, settings.embeddings_dimensions)
        case "azure":
            if not settings.azure_openai_endpoint:
                raise ConfigError("EMBEDDINGS_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT.")
            # Function-local for cold start: azure-identity loads only for this provider.
            from shared.platform.llm import _azure_client

            return OpenAIEmbedder(
                _azure_client(settings), settings.embeddings_model, settings.embeddings_dimensions
            )


@service("embedder")
def get_embedder() -> Embedder:
    """Return the process-wide embedder, built on first use."""
    return build_embedder(get_settings())


# ---------------------------------------------------------------------------------------------
# Storage and scoring helpers
# ---------------------------------------------------------------------------------------------


def _packed_bytes(dimensions: int) -> int:
    """Bytes of a packed vector: float32 scale + int8 values, padded to a multiple of 3 so
    the base64 text has no '=' padding and many vectors decode in one call."""
    return -(-(4 + dimensions) // 3) * 3


def unpacked_width(dimensions: int) -> int:
    """Values a packed vector of `dimensions` decodes to in SQL, zero padding included."""
    return _packed_bytes(dimensions) - 4


def pack(vector: Sequence[float]) -> str:
    """Encode a vector for store_items.embedding: base64 of a float32 scale and int8 values.

    Scalar quantisation per vector (the largest magnitude maps to 127) keeps ranking intact
    while the column stays ~4x smaller than float32 text and decodes fast. The SQL function
    `ascent_store_vector` (migrations/versions/0011_store_vectors.py) decodes this format for
    pgvector: a new format needs a revision that replaces that function too.
    """
    peak = max((abs(x) for x in vector), default=0.0)
    scale = 127.0 / peak if peak else 1.0
    raw = bytearray(struct.pack("<f", 1.0 / scale))
    raw += bytes(round(x * scale) & 0xFF for x in vector)
    raw += bytes(_packed_bytes(len(vector)) - len(raw))
    return base64.b64encode(bytes(raw)).decode("ascii")


def unpack(packed: str, dimensions: int) -> list[float]:
    """Decode `pack`'s output back to (approximate) floats."""
    raw = base64.b64decode(packed)
    (inverse,) = struct.unpack_from("<f", raw)
    return [v * inverse for v in memoryview(raw)[4 : 4 + dimensions].cast("b")]


def cosine_scores(query: Sequence[float], packed: Sequence[str | None]) -> list[float | None]:
    """Cosine similarity of the unit query with each packed unit vector (None: not comparable).

    All candidates at once: the base64 texts decode in one call into an (n, stride) int8
    matrix, and one matrix-vector product scores them (numpy; a pure-Python fallback
    scores column by column when numpy is missing).
    """
    size = len(query)
    stride = _packed_bytes(size)
    chars = stride // 3 * 4
    valid = [i for i, p in enumerate(packed) if p is not None and len(p) == chars]
    scores: list[float | None] = [None] * len(packed)
    if not valid:
        return scores
    buffer = base64.b64decode("".join(packed[i] or "" for i in valid))
    values = _scores_numpy(query, buffer, stride) if _np is not None else None
    if values is None:
        values = _scores_python(query, buffer, stride, len(valid))
    for slot, value in zip(valid, values, strict=True):
        scores[slot] = value
    return scores


def _scores_numpy(query: Sequence[float], buffer: bytes, stride: int) -> list[float] | None:
    if _np is None:  # pragma: no cover
        return None
    rows = _np.frombuffer(buffer, dtype=_np.int8).reshape(-1, stride)
    scales = _np.frombuffer(rows[:, :4].tobytes(), dtype="<f4")
    dots = rows[:, 4 : 4 + len(query)].astype(_np.float32) @ _np.asarray(query, _np.float32)
    result: list[float] = (dots * scales).astype(float).tolist()
    return result


def _scores_python(query: Sequence[float], buffer: bytes, stride: int, count: int) -> list[float]:
    scale_bytes = bytearray(4 * count)
    for b in range(4):
        scale_bytes[b::4] = buffer[b::stride]
    scales = struct.unpack(f"<{count}f", scale_bytes)
    totals = [0.0] * count
    for position, weight in enumerate(query):
        if weight:
            column = memoryview(buffer[4 + position :: stride]).cast("b")
            totals = list(map(operator.add, totals, map(weight.__mul__, column)))
    return [t * s for t, s in zip(totals, scales, strict=True)]
