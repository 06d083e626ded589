"""Vector indexes behind one interface: FAISS embedded (the default) and Milvus through pymilvus.

Both answer ``search(query, k, query_filter)`` with the ``k`` best (item ids, cosine scores) among the items the
filter keeps, and support deletion. Filtered search never collapses: when the filter keeps few items the FAISS
backend searches them exactly (an approximate index walked with a selective filter loses recall, the failure users
of FAISS, Lucene, OpenSearch and Milvus report); the Milvus backend prunes by partition (camera, day) and lets
Milvus filter its scalar fields.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import math
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from perception_nodes.retrieval.types import Observation, QueryFilter, RetrievalError, RetrievalErrorCode

LOG = logging.getLogger(__name__)


class VectorBackend(Protocol):
    """What ``RetrievalIndex`` needs from a vector index."""

    kind: str
    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray, observations: Sequence[Observation]) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def search(self, query: np.ndarray, k: int, query_filter: QueryFilter | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def memory_bytes(self) -> int: ...

    def save(self, directory: Path) -> None: ...

    def close(self) -> None: ...


def _import_faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in requirements.txt
        raise RetrievalError(RetrievalErrorCode.UNAVAILABLE, f"FAISS is not installed (pip install faiss-cpu): {exc}")
    return faiss


class AnnKind(str, Enum):
    """The approximate index a FAISS backend builds above its exact-search size."""

    IVF = "ivf"     # inverted lists over k-means cells, every list scanned exactly (IVF<nlist>,Flat)
    HNSW = "hnsw"   # a navigable small-world graph (HNSW<M>,Flat)


def parse_ann_kind(value: str) -> AnnKind:
    try:
        return AnnKind(str(value).lower())
    except ValueError:
        raise RetrievalError(RetrievalErrorCode.INVALID_REQUEST,
                             f"unknown approximate index {value!r}: one of {[k.value for k in AnnKind]}") from None


def ivf_list_count(rows: int) -> int:
    """Cells of an IVF index trained on ``rows`` vectors: the power of two nearest 4 sqrt(rows), with at least
    ``IVF_TRAIN_PER_LIST`` training vectors per cell."""
    target = 2 ** round(math.log2(max(4.0 * math.sqrt(max(rows, 1)), 1.0)))
    return int(max(1, min(target, rows // FaissBackend.IVF_TRAIN_PER_LIST, 65536)))


class FaissBackend:
    """FAISS embedded: exact inner-product search below ``approximate_above`` items, an approximate index above
    (``ann``: IVF lists by default, or an HNSW graph).

    Vectors and the filterable metadata live in row-aligned arrays (rows in item-id order), so a filter is a
    vectorised mask; the approximate index's internal ids are the rows. Deleted rows are masked out of every
    search (HNSW cannot delete) and the arrays and the index are compacted once a quarter of the rows are dead.
    The IVF cells are trained on the rows present when the index is built and retrained once the rows have
    grown ``IVF_RETRAIN_GROWTH`` times, so the lists stay short as the site's history grows.
    """

    kind = "faiss"
    SNAPSHOT_FILE = "faiss_ann.index"
    MANIFEST_FILE = "faiss_ann.json"
    IVF_TRAIN_PER_LIST = 50
    IVF_RETRAIN_GROWTH = 4

    def __init__(self, dim: int, approximate_above: int = 50_000, exact_filtered_below: int = 20_000,
                 ann: str | AnnKind = AnnKind.IVF, ivf_probe_share: float = 1 / 16,
                 hnsw_m: int = 32, ef_construction: int = 80, ef_search: int = 512):
        self._faiss = _import_faiss()
        self.dim = int(dim)
        self.approximate_above = int(approximate_above)
        self.exact_filtered_below = int(exact_filtered_below)
        self.ann = parse_ann_kind(ann) if not isinstance(ann, AnnKind) else ann
        if not 0.0 < float(ivf_probe_share) <= 1.0:
            raise RetrievalError(RetrievalErrorCode.INVALID_REQUEST,
                                 f"ivf_probe_share must be in (0, 1], got {ivf_probe_share}")
        # The share of IVF cells a query scans: recall grows with it, latency too (`perception bench retrieval
        # --probe-share` measures the trade).
        self.ivf_probe_share = float(ivf_probe_share)
        self.hnsw_m, self.ef_construction, self.ef_search = int(hnsw_m), int(ef_construction), int(ef_search)
        self._trained_rows = 0
        self._n = 0
        self._capacity = 0
        self._vec = np.zeros((0, self.dim), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._live = np.zeros(0, bool)
        self._camera = np.zeros(0, np.int32)
        self._stamp = np.zeros(0, np.int64)
        self._class = np.zeros(0, np.int32)
        self._x = np.zeros(0, np.float64)
        self._y = np.zeros(0, np.float64)
        self._zone = np.zeros(0, np.int32)
        self._camera_codes: dict[str, int] = {}
        self._zone_codes: dict[str, int] = {"": 0}
        self._dead = 0
        self._ann = None

    # -- state -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n - self._dead

    @property
    def index_type(self) -> str:
        if self._ann is None:
            return "Flat (IP, exact)"
        if self.ann is AnnKind.IVF:
            return f"IVF{self._ann.nlist},Flat (IP)"
        return f"HNSW{self.hnsw_m},Flat (IP)"

    def memory_bytes(self) -> int:
        arrays = sum(a.nbytes for a in (self._vec, self._ids, self._live, self._camera, self._stamp, self._class,
                                        self._x, self._y, self._zone))
        if self._ann is not None and self.ann is AnnKind.IVF:  # the lists' vectors and ids, the cell centroids
            arrays += self._ann.ntotal * (self.dim * 4 + 8) + self._ann.nlist * self.dim * 4
        elif self._ann is not None:  # flat storage plus about 2M neighbour links of 4 bytes per vector
            arrays += self._ann.ntotal * (self.dim * 4 + 2 * self.hnsw_m * 4)
        return int(arrays)

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need <= self._capacity:
            return
        capacity = max(need, int(self._capacity * 1.5) + 1024)
        for name in ("_vec", "_ids", "_live", "_camera", "_stamp", "_class", "_x", "_y", "_zone"):
            old = getattr(self, name)
            new = np.zeros((capacity,) + old.shape[1:], old.dtype)
            new[:self._n] = old[:self._n]
            setattr(self, name, new)
        self._capacity = capacity

    def _code(self, table: dict[str, int], value: str) -> int:
        if value not in table:
            table[value] = len(table) + 1
        return table[value]

    # -- writing ---------------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, observations: Sequence[Observation]) -> None:
        ids = np.asarray(ids, np.int64)
        if len(ids) == 0:
            return
        if self._n and ids[0] <= self._ids[self._n - 1]:
            raise ValueError("item ids must increase (the store hands them out in order)")
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        self._grow(len(ids))
        rows = slice(self._n, self._n + len(ids))
        self._vec[rows] = vectors
        self._ids[rows] = ids
        self._live[rows] = True
        self._camera[rows] = [self._code(self._camera_codes, o.camera_id) for o in observations]
        self._stamp[rows] = [o.stamp_ns for o in observations]
        self._class[rows] = [o.class_id for o in observations]
        self._x[rows] = [o.map_xy[0] if o.map_xy is not None else np.nan for o in observations]
        self._y[rows] = [o.map_xy[1] if o.map_xy is not None else np.nan for o in observations]
        self._zone[rows] = [self._code(self._zone_codes, o.zone) for o in observations]
        self._n += len(ids)
        if self._ann is not None and self.ann is AnnKind.IVF and \
                self._n >= self.IVF_RETRAIN_GROWTH * self._trained_rows:
            self._build_ann()
        elif self._ann is not None:
            self._ann.add(vectors)
        elif len(self) > self.approximate_above:
            self._build_ann()

    def _build_ann(self) -> None:
        faiss = self._faiss
        vectors = self._vec[:self._n]
        if self.ann is AnnKind.IVF:
            nlist = ivf_list_count(self._n)
            ann = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            # A fixed sample: the same rows give the same cells (and the same answers) on every rebuild.
            sample = np.random.default_rng(0).choice(self._n, min(self._n, nlist * self.IVF_TRAIN_PER_LIST),
                                                     replace=False)
            ann.train(vectors[np.sort(sample)])
            ann.add(vectors)
        else:
            ann = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            ann.hnsw.efConstruction = self.ef_construction
            ann.add(vectors)
        self._ann = ann
        self._trained_rows = self._n

    def remove(self, ids: Sequence[int]) -> None:
        rows = self._rows(ids)
        rows = rows[self._live[rows]]
        self._live[rows] = False
        self._dead += len(rows)
        if self._dead > 1000 and self._dead > self._n // 4:
            self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self._live[:self._n])
        for name in ("_vec", "_ids", "_live", "_camera", "_stamp", "_class", "_x", "_y", "_zone"):
            setattr(self, name, getattr(self, name)[keep].copy())
        self._n = self._capacity = len(keep)
        self._dead = 0
        self._ann = None
        if self._n > self.approximate_above:
            self._build_ann()

    def _rows(self, ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(-1)
        rows = np.searchsorted(self._ids[:self._n], ids)
        ok = (rows < self._n) & (self._ids[np.minimum(rows, max(self._n - 1, 0))] == ids) if self._n else \
            np.zeros(len(ids), bool)
        return rows[ok]

    # -- reading ---------------------------------------------------------------------------------------------
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        rows = self._rows(ids)
        if len(rows) != len(ids):
            raise RetrievalError(RetrievalErrorCode.NOT_FOUND, "some ids are not in the vector index")
        return self._vec[rows]

    def mask(self, query_filter: QueryFilter | None) -> np.ndarray | None:
        """Rows the filter keeps (live ones only), or None when nothing restricts and nothing is deleted."""
        n = self._n
        if (query_filter is None or not query_filter.restricts) and self._dead == 0:
            return None
        keep = self._live[:n].copy()
        if query_filter is None:
            return keep
        if query_filter.camera_ids:
            codes = [self._camera_codes[c] for c in query_filter.camera_ids if c in self._camera_codes]
            keep &= np.isin(self._camera[:n], codes)
        if query_filter.start_ns is not None:
            keep &= self._stamp[:n] >= query_filter.start_ns
        if query_filter.end_ns is not None:
            keep &= self._stamp[:n] <= query_filter.end_ns
        if query_filter.class_ids:
            keep &= np.isin(self._class[:n], query_filter.class_ids)
        if query_filter.zones:
            keep &= np.isin(self._zone[:n], [self._zone_codes[z] for z in query_filter.zones if z in self._zone_codes])
        if query_filter.region is not None:
            x0, y0, x1, y1 = query_filter.region
            with np.errstate(invalid="ignore"):
                keep &= (self._x[:n] >= x0) & (self._x[:n] <= x1) & (self._y[:n] >= y0) & (self._y[:n] <= y1)
        return keep

    def search(self, query: np.ndarray, k: int, query_filter: QueryFilter | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        query = np.ascontiguousarray(query, np.float32).reshape(1, self.dim)
        keep = self.mask(query_filter)
        allowed = self._n if keep is None else int(keep.sum())
        if allowed == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, allowed)
        if self._ann is None or (keep is not None and allowed <= self.exact_filtered_below):
            rows = np.arange(self._n) if keep is None else np.flatnonzero(keep)
            scores = self._vec[rows] @ query[0]
            best = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
            best = best[np.argsort(-scores[best], kind="stable")]
            return self._ids[rows[best]], scores[best].astype(np.float32)
        faiss = self._faiss
        # A filter that keeps a share s of the rows needs about 1/s more candidates for the same recall.
        share = allowed / max(self._n, 1)
        if self.ann is AnnKind.IVF:
            params = faiss.SearchParametersIVF()
            nlist = self._ann.nlist
            params.nprobe = int(min(nlist, math.ceil(nlist * self.ivf_probe_share / max(share, 1e-3))))
        else:
            params = faiss.SearchParametersHNSW()
            params.efSearch = int(min(max(self.ef_search, 2 * k) / max(share, 1e-3), 4096))
        selector = None
        if keep is not None:
            bitmap = np.packbits(keep, bitorder="little")
            selector = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bitmap))
            params.sel = selector
        scores, rows = self._ann.search(query, k, params=params)
        ok = rows[0] >= 0
        return self._ids[rows[0][ok]], scores[0][ok].astype(np.float32)

    # -- persistence -----------------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        return hashlib.sha1(self._ids[:self._n].tobytes()).hexdigest()

    def save(self, directory: Path) -> None:
        """Write the approximate index (the arrays are rebuilt from the store) with a manifest of the rows it
        covers."""
        directory = Path(directory)
        index_path, manifest_path = directory / self.SNAPSHOT_FILE, directory / self.MANIFEST_FILE
        if self._ann is None:
            index_path.unlink(missing_ok=True)
            manifest_path.unlink(missing_ok=True)
            return
        tmp = index_path.with_suffix(".tmp")
        self._faiss.write_index(self._ann, str(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        manifest = {"rows": self._n, "ids_sha1": self._fingerprint(), "dim": self.dim, "ann": self.ann.value,
                    "trained_rows": self._trained_rows, "hnsw_m": self.hnsw_m, "saved": time.time()}
        os.replace(tmp, index_path)
        tmp_manifest = manifest_path.with_suffix(".tmp")
        tmp_manifest.write_text(json.dumps(manifest))
        os.replace(tmp_manifest, manifest_path)

    def load_graph(self, directory: Path) -> bool:
        """Use a saved approximate index when it is of the configured kind and covers exactly the rows loaded from
        the store; False (and a warning) when it is missing, corrupt, stale or of another kind (the caller then
        has it rebuilt)."""
        directory = Path(directory)
        index_path, manifest_path = directory / self.SNAPSHOT_FILE, directory / self.MANIFEST_FILE
        if not index_path.exists():
            return False
        try:
            manifest = json.loads(manifest_path.read_text())
            ann = self._faiss.read_index(str(index_path))
        except Exception as exc:  # noqa: BLE001 - a corrupt file of any kind: rebuild from the store
            LOG.warning("vector index %s is unreadable (%s); rebuilding it from the metadata store", index_path, exc)
            return False
        if manifest.get("rows") != self._n or manifest.get("ids_sha1") != self._fingerprint() or \
                ann.ntotal != self._n or ann.d != self.dim:
            LOG.warning("vector index %s does not match the metadata store (%s rows saved, %d stored); rebuilding",
                        index_path, manifest.get("rows"), self._n)
            return False
        if manifest.get("ann") != self.ann.value:
            LOG.warning("vector index %s is %s, the backend is configured for %s; rebuilding", index_path,
                        manifest.get("ann"), self.ann.value)
            return False
        self._ann = ann
        self._trained_rows = int(manifest.get("trained_rows", self._n))
        return True

    def load_rows(self, ids: np.ndarray, vectors: np.ndarray, observations: Sequence[Observation]) -> None:
        """Bulk load (from the store) without building the graph; call ``finish_load`` after the last batch."""
        saved, self.approximate_above = self.approximate_above, 1 << 62
        try:
            self.add(ids, vectors, observations)
        finally:
            self.approximate_above = saved

    def finish_load(self, directory: Path | None) -> None:
        if len(self) > self.approximate_above and not (directory is not None and self.load_graph(directory)):
            self._build_ann()

    def close(self) -> None:
        self._ann = None


_PARTITION_SAFE = re.compile(r"[^A-Za-z0-9_]")


MILVUS_LITE_CONNECT_ATTEMPTS = 4
STRONG_READS_AFTER_DELETE_S = 2.0


class MilvusBackend:
    """Milvus through pymilvus: a milvus-lite file (``*.db``) embedded, or a server / cluster URI.

    One collection per store and embedder version (RetrievalIndex names it); on a server, partitions per camera
    and UTC day, so a camera or time filter searches only the partitions it can match (milvus-lite has no
    partitions: one partition there); the scalar fields (camera, stamp, class, map position, zone) are filtered by
    Milvus in the same call.
    """

    kind = "milvus"

    def __init__(self, dim: int, uri: str, collection: str, token: str = "", index_type: str = "",
                 index_params: dict | None = None, search_params: dict | None = None,
                 exact_filtered_below: int = 5_000):
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError as exc:  # pragma: no cover - pymilvus is in requirements.txt
            raise RetrievalError(RetrievalErrorCode.UNAVAILABLE, f"pymilvus is not installed: {exc}")
        self.dim = int(dim)
        self.uri = str(uri)
        self.collection = _PARTITION_SAFE.sub("_", collection)
        # milvus-lite starts its server, waits half a second and hands out the socket, which a loaded machine may
        # not have opened yet; the server stays registered, so asking again a moment later reaches it.
        self.lite = self.uri.endswith(".db")
        # A filter that keeps at most this many rows is searched exactly over them (their vectors fetched and
        # scored here): a server's HNSW search under a selective filter loses most of its recall.
        self.exact_filtered_below = int(exact_filtered_below)
        # Reads see this client's own writes (the retrieval node is the index's writer) without waiting for the
        # server's global time tick as "Strong" does on every call; milvus-lite's single process is strong anyway.
        self._consistency = "Strong" if self.lite else "Session"
        # A session's reads do not wait for its deletes here (the server applies them at its next time tick):
        # reads just after a delete are strong, which does.
        self._strong_reads_until = 0.0
        attempts = MILVUS_LITE_CONNECT_ATTEMPTS if self.lite else 1
        for attempt in range(attempts):
            try:
                self._client = MilvusClient(uri=self.uri, token=token) if token else MilvusClient(uri=self.uri)
                break
            except Exception as exc:  # noqa: BLE001 - connection errors come in many types
                if attempt + 1 == attempts:
                    raise RetrievalError(RetrievalErrorCode.UNAVAILABLE, f"cannot reach Milvus at {self.uri}: {exc}")
                time.sleep(0.5 * (attempt + 1))
        # milvus-lite's default index is IVF with a small nprobe (low recall); exact search suits its scale. A
        # server gets an HNSW graph searched with ef = 128 unless told otherwise.
        index_type = index_type or ("FLAT" if self.lite else "HNSW")
        if index_params is None:
            index_params = {} if index_type == "FLAT" else {"M": 32, "efConstruction": 200}
        if search_params is None:
            search_params = {"ef": 128} if index_type == "HNSW" else {}
        self._search_params = search_params
        self._index_type = index_type
        if not self._client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("camera_id", DataType.VARCHAR, max_length=128)
            schema.add_field("stamp_ns", DataType.INT64)
            schema.add_field("class_id", DataType.INT64)
            schema.add_field("has_pos", DataType.BOOL)
            schema.add_field("x", DataType.DOUBLE)
            schema.add_field("y", DataType.DOUBLE)
            schema.add_field("zone", DataType.VARCHAR, max_length=128)
            prepared = self._client.prepare_index_params()
            prepared.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=dict(index_params))
            self._client.create_collection(self.collection, schema=schema, index_params=prepared,
                                           consistency_level=self._consistency)
        self._client.load_collection(self.collection)
        self._partitions = None if self.lite else set(self._client.list_partitions(self.collection))
        self._count = int(self._client.query(self.collection, filter="", output_fields=["count(*)"],
                                             consistency_level=self._consistency)[0]["count(*)"])

    @staticmethod
    def partition_name(camera_id: str, stamp_ns: int) -> str:
        day = time.strftime("%Y%m%d", time.gmtime(stamp_ns / 1e9))
        return f"c_{_PARTITION_SAFE.sub('_', camera_id)}_{day}"

    @property
    def index_kind(self) -> str:
        """The vector index Milvus builds: FLAT (milvus-lite), HNSW (a server's default) or what was asked for."""
        return self._index_type

    @property
    def index_type(self) -> str:
        return f"milvus {self._index_type} ({self.uri})"

    def __len__(self) -> int:
        return self._count

    def memory_bytes(self) -> int:
        return int(self._count * (self.dim * 4 + 64))

    def add(self, ids: np.ndarray, vectors: np.ndarray, observations: Sequence[Observation]) -> None:
        by_partition: dict[str, list[dict]] = {}
        for item_id, vec, obs in zip(np.asarray(ids, np.int64), np.asarray(vectors, np.float32), observations):
            by_partition.setdefault(self.partition_name(obs.camera_id, obs.stamp_ns), []).append({
                "id": int(item_id), "vector": vec.tolist(), "camera_id": obs.camera_id,
                "stamp_ns": int(obs.stamp_ns), "class_id": int(obs.class_id), "has_pos": obs.map_xy is not None,
                "x": float(obs.map_xy[0]) if obs.map_xy is not None else 0.0,
                "y": float(obs.map_xy[1]) if obs.map_xy is not None else 0.0, "zone": obs.zone})
        if self._partitions is None:
            by_partition = {"": [row for rows in by_partition.values() for row in rows]}
        for partition, rows in by_partition.items():
            if not partition:
                self._client.insert(self.collection, rows)
                self._count += len(rows)
                continue
            if partition not in self._partitions:
                self._client.create_partition(self.collection, partition)
                self._partitions.add(partition)
            self._client.insert(self.collection, rows, partition_name=partition)
            self._count += len(rows)

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if ids:
            result = self._client.delete(self.collection, ids=ids)
            self._strong_reads_until = time.monotonic() + STRONG_READS_AFTER_DELETE_S
            removed = result.get("delete_count", len(ids)) if isinstance(result, dict) else len(ids)
            self._count = max(0, self._count - int(removed))

    def _reads(self) -> str:
        return "Strong" if time.monotonic() < self._strong_reads_until else self._consistency

    def expression(self, query_filter: QueryFilter | None) -> str:
        if query_filter is None:
            return ""
        terms = []
        if query_filter.camera_ids:
            terms.append("camera_id in " + json.dumps(list(query_filter.camera_ids)))
        if query_filter.start_ns is not None:
            terms.append(f"stamp_ns >= {int(query_filter.start_ns)}")
        if query_filter.end_ns is not None:
            terms.append(f"stamp_ns <= {int(query_filter.end_ns)}")
        if query_filter.class_ids:
            terms.append(f"class_id in {[int(c) for c in query_filter.class_ids]}")
        if query_filter.zones:
            terms.append("zone in " + json.dumps(list(query_filter.zones)))
        if query_filter.region is not None:
            x0, y0, x1, y1 = (float(v) for v in query_filter.region)
            terms.append(f"has_pos == true and x >= {x0} and x <= {x1} and y >= {y0} and y <= {y1}")
        return " and ".join(terms)

    def _partitions_for(self, query_filter: QueryFilter | None) -> list[str] | None:
        if self._partitions is None or query_filter is None or not (query_filter.camera_ids or query_filter.start_ns is not None or
                                        query_filter.end_ns is not None):
            return None
        cameras = {_PARTITION_SAFE.sub("_", c) for c in query_filter.camera_ids}
        first = time.strftime("%Y%m%d", time.gmtime(query_filter.start_ns / 1e9)) \
            if query_filter.start_ns is not None else "00000000"
        last = time.strftime("%Y%m%d", time.gmtime(query_filter.end_ns / 1e9)) \
            if query_filter.end_ns is not None else "99999999"
        chosen = []
        for name in self._partitions:
            match = re.fullmatch(r"c_(.+)_(\d{8})", name)
            if match and (not cameras or match.group(1) in cameras) and first <= match.group(2) <= last:
                chosen.append(name)
        return chosen

    def search(self, query: np.ndarray, k: int, query_filter: QueryFilter | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        partitions = self._partitions_for(query_filter)
        if partitions == [] or self._count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        kwargs = {"partition_names": partitions} if partitions else {}
        expression = self.expression(query_filter)
        if expression and not self.lite and self._index_type != "FLAT":
            exact = self._exact_over_few(query, k, expression, kwargs)
            if exact is not None:
                return exact
        result = self._client.search(self.collection, data=[np.asarray(query, np.float32).tolist()], limit=int(k),
                                     filter=expression, output_fields=[], consistency_level=self._reads(),
                                     search_params={"metric_type": "IP", "params": self._search_params}, **kwargs)
        hits = result[0] if result else []
        return (np.array([int(h["id"]) for h in hits], np.int64),
                np.array([float(h["distance"]) for h in hits], np.float32))

    def _exact_over_few(self, query, k: int, expression: str, kwargs: dict):
        """(ids, scores) by exact inner product over the rows the filter keeps, when they are few; else None."""
        kept = int(self._client.query(self.collection, filter=expression, output_fields=["count(*)"],
                                      consistency_level=self._reads(), **kwargs)[0]["count(*)"])
        if kept > self.exact_filtered_below:
            return None
        if kept == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = self._client.query(self.collection, filter=expression, output_fields=["vector"], limit=kept,
                                  consistency_level=self._reads(), **kwargs)
        ids = np.array([int(r["id"]) for r in rows], np.int64)
        scores = np.asarray([r["vector"] for r in rows], np.float32) @ np.asarray(query, np.float32)
        best = np.argsort(-scores, kind="stable")[:int(k)]
        return ids[best], scores[best].astype(np.float32)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        rows = self._client.get(self.collection, ids=[int(i) for i in ids], output_fields=["vector"],
                                consistency_level=self._reads())
        by_id = {int(r["id"]): np.asarray(r["vector"], np.float32) for r in rows}
        if len(by_id) != len(set(int(i) for i in ids)):
            raise RetrievalError(RetrievalErrorCode.NOT_FOUND, "some ids are not in the Milvus collection")
        return np.stack([by_id[int(i)] for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)

    def existing_ids(self) -> set[int]:
        out: set[int] = set()
        iterator = self._client.query_iterator(self.collection, batch_size=4096, filter="", output_fields=["id"])
        while True:
            batch = iterator.next()
            if not batch:
                iterator.close()
                return out
            out.update(int(r["id"]) for r in batch)

    def save(self, directory: Path) -> None:
        self._client.flush(self.collection)

    def wait_indexed(self, timeout_s: float = 600.0) -> None:
        """Seal what was inserted and wait until the server's index covers every row (a server builds it in the
        background; searches meanwhile scan the unindexed rows by brute force)."""
        self._client.flush(self.collection)
        if self.lite:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            info = self._client.describe_index(self.collection, index_name="vector") or {}
            total = int(info.get("total_rows", 0))
            if total >= self._count and int(info.get("pending_index_rows", 0)) == 0 and \
                    int(info.get("indexed_rows", 0)) >= total:
                return
            if time.monotonic() > deadline:
                raise RetrievalError(RetrievalErrorCode.UNAVAILABLE, f"Milvus at {self.uri} did not index "
                                     f"{self.collection} within {timeout_s:.0f} s: {info}")
            time.sleep(0.5)

    def drop(self) -> None:
        """Delete the collection and everything in it from the server."""
        self._client.drop_collection(self.collection)
        self._count = 0

    def close(self) -> None:
        self._client.close()
