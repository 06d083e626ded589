"""``RetrievalIndex``: the metadata store and a vector backend together, for one embedder version.

Items of other embedder versions stay in the store (``stats`` counts them) and are never compared with this
version's: a query names its embedder and a mismatch is an error, not a silently wrong answer.
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perception_nodes.retrieval.backends import FaissBackend, MilvusBackend
from perception_nodes.retrieval.store import DATABASE_FILE, MetadataStore
from perception_nodes.retrieval.types import (Hit, Observation, QueryFilter, RetrievalError, RetrievalErrorCode,
                                              check_k, check_vector, invalid)

LOG = logging.getLogger(__name__)
SNAPSHOT_DIR = "snapshots"


def default_store_dir() -> Path:
    """Where retrieval indexes live: $PERCEPTION_RETRIEVAL_DIR, else ~/.local/share/perception_nodes/retrieval."""
    return Path(os.environ.get("PERCEPTION_RETRIEVAL_DIR", Path.home() / ".local/share/perception_nodes/retrieval"))


@dataclass(frozen=True)
class IndexStats:
    items: int
    dimension: int
    embedder: str
    index_type: str
    memory_bytes: int
    other_embedders: dict[str, int]
    last_snapshot_ns: int


class RetrievalIndex:
    """Insert, delete and query observations of one embedder version, durably.

    ``backend`` is ``"faiss"`` (embedded; options: ``approximate_above``, ``exact_filtered_below``, ``ann``
    (``ivf`` or ``hnsw``), ``ivf_probe_share``, ``hnsw_m``,
    ``ef_search``) or ``"milvus"`` (``milvus_uri``: a ``*.db`` milvus-lite file or a server URI).
    """

    def __init__(self, directory: str | os.PathLike, embedder: str, dim: int, backend: str = "faiss",
                 milvus_uri: str = "", **backend_options):
        if not embedder:
            raise invalid("an index needs the embedder's name@version")
        if dim < 1:
            raise invalid(f"embedding dimension must be positive, got {dim}")
        self.directory = Path(directory)
        self.embedder, self.dim = str(embedder), int(dim)
        self.store = MetadataStore(self.directory)
        self._lock = threading.RLock()
        self.warnings: list[str] = []
        self.last_snapshot_ns = 0
        try:
            if backend == "faiss":
                self.backend = FaissBackend(self.dim, **backend_options)
                for ids, observations, vectors in self.store.scan(self.embedder):
                    self.backend.load_rows(ids, vectors, observations)
                self.backend.finish_load(self.directory)
            elif backend == "milvus":
                uri = milvus_uri or str(self.directory / "milvus_lite.db")
                self.backend = MilvusBackend(self.dim, uri, f"obs_{self.store.store_id[:16]}_{self.embedder}",
                                             **backend_options)
                self._sync_milvus()
            else:
                raise invalid(f"unknown backend {backend!r}: faiss or milvus")
        except BaseException:
            self.store.close()  # an index that did not open holds no database handle
            raise

    def _sync_milvus(self) -> None:
        """Bring the collection in line with the store (a crash between commit and Milvus insert, a lost file)."""
        stored = set(self.store.ids(self.embedder).tolist())
        present = self.backend.existing_ids()
        extra = sorted(present - stored)
        missing = sorted(stored - present)
        if extra:
            self.backend.remove(extra)
        if missing:
            message = f"Milvus collection lacked {len(missing)} stored items; re-inserted them from the store"
            LOG.warning(message)
            self.warnings.append(message)
            for start in range(0, len(missing), 5000):
                chunk = missing[start:start + 5000]
                observations = self.store.get(chunk)
                self.backend.add(np.asarray(chunk, np.int64), self.store.vectors(chunk, self.dim),
                                 [observations[i] for i in chunk])

    # -- writing ---------------------------------------------------------------------------------------------
    def insert(self, observations: Sequence[Observation], vectors, thumbnails: Sequence[bytes | None] | None = None
               ) -> list[int]:
        """Store observations durably, then index them; their ids. Returns only after the commit."""
        if len(observations) == 0:
            return []
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(observations), -1)
        rows = np.stack([check_vector(v, self.dim) for v in matrix])
        for obs in observations:
            obs.validate()
        if thumbnails is not None:
            named = []
            for obs, data in zip(observations, thumbnails):
                if data:
                    name = f"{uuid.uuid4().hex}.jpg"
                    self.store.write_thumbnail(name, data)
                    obs = replace(obs, thumbnail=name)
                named.append(obs)
            observations = named
        with self._lock:
            ids = self.store.insert(self.embedder, observations, rows)
            self.backend.add(np.asarray(ids, np.int64), rows, observations)
        return ids

    def delete(self, ids: Sequence[int]) -> int:
        with self._lock:
            found = self.store.delete(ids)
            self.backend.remove(found)
        return len(found)

    # -- reading ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.backend)

    def observations(self, ids: Sequence[int]) -> dict[int, Observation]:
        return self.store.get(ids)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        with self._lock:
            return self.backend.vectors(ids)

    def check_embedder(self, embedder: str) -> None:
        if embedder and embedder != self.embedder:
            raise invalid(f"embedding is from {embedder!r}; this index holds {self.embedder!r} embeddings "
                          "(items of different embedder versions are never compared)")

    def search(self, vector, k: int, query_filter: QueryFilter | None = None) -> list[Hit]:
        """The k nearest items the filter keeps, by cosine similarity (no re-ranking)."""
        k = check_k(k)
        query = check_vector(vector, self.dim)
        if query_filter is not None:
            query_filter.validate()
        with self._lock:
            ids, scores = self.backend.search(query, k, query_filter)
        observations = self.store.get(ids.tolist())
        return [Hit(int(i), float(s), float(s), rank, observations[int(i)])
                for rank, (i, s) in enumerate(zip(ids, scores)) if int(i) in observations]

    def items_of(self, camera_id: str | None = None, track_id: int | None = None,
                 global_id: int | None = None) -> list[int]:
        """Item ids of one track (camera + track id) or one global id, oldest first."""
        if global_id is not None:
            return self.store.by_global(global_id, self.embedder)
        if not camera_id:
            raise invalid("a track id needs its camera_id")
        return self.store.by_track(camera_id, int(track_id), self.embedder)

    def recent(self, n: int) -> tuple[np.ndarray, dict[int, Observation], np.ndarray]:
        """The newest ``n`` items of this embedder: (ids, observations by id, vectors)."""
        ids = self.store.ids(self.embedder)[-int(n):]
        observations = self.store.get(ids.tolist())
        with self._lock:
            vectors = self.backend.vectors(ids.tolist()) if len(ids) else np.zeros((0, self.dim), np.float32)
        return ids, observations, vectors

    def stats(self) -> IndexStats:
        others = {name: n for name, n in self.store.embedders().items() if name != self.embedder}
        return IndexStats(len(self.backend), self.dim, self.embedder, self.backend.index_type,
                          int(self.backend.memory_bytes() + self.store.size_bytes()), others, self.last_snapshot_ns)

    # -- persistence -----------------------------------------------------------------------------------------
    def snapshot(self, name: str = "") -> Path:
        """A consistent copy of the store (and the FAISS graph) under ``<directory>/snapshots/<name>``, written to
        a temporary folder and renamed into place; the live index keeps its own files up to date as well."""
        if name and (os.sep in name or name in (".", "..") or (os.altsep and os.altsep in name)):
            raise invalid(f"snapshot name must be a plain name, got {name!r}")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.directory / SNAPSHOT_DIR / (name or stamp)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with self._lock:
            source = sqlite3.connect(self.store.path)
            try:
                destination = sqlite3.connect(tmp / DATABASE_FILE)
                with destination:
                    source.backup(destination)
                destination.close()
            finally:
                source.close()
            self.backend.save(self.directory)
            self.backend.save(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        self.last_snapshot_ns = time.time_ns()
        return target

    def close(self) -> None:
        with self._lock:
            try:
                self.backend.save(self.directory)
            except Exception as exc:  # noqa: BLE001 - the store has everything; the graph is rebuilt on open
                LOG.warning("could not save the vector index on close: %s", exc)
            self.backend.close()
            self.store.close()

