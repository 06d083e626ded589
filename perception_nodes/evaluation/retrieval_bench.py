"""``perception bench retrieval``: query latency and recall against exact search at growing index sizes,
unfiltered and with selective filters, insert throughput, re-ranking cost; FAISS and Milvus side by side.

Vectors are a mixture of clusters (objects seen many times) in the embedder's dimension; queries are new
sightings of indexed objects (fresh noise around the index's own cluster centres), which is what a retrieval
query is. Metadata spreads the vectors over 100 cameras and a day, so a camera is a 1 % filter and a camera
plus a tenth of the day 0.1 %.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from perception_nodes.retrieval.backends import AnnKind, FaissBackend
from perception_nodes.retrieval.index import RetrievalIndex
from perception_nodes.retrieval.rerank import STAGE_ORDER, QueryContext, Reranker
from perception_nodes.retrieval.types import Hit, Observation, QueryFilter

T0 = 1_764_633_600_000_000_000
DAY_NS = 86_400 * 10**9
CAMERAS = 100


SIGHTINGS_PER_OBJECT = 20
SIGHTING_NOISE = 0.6


def cluster_centres(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """One centre per object for an index of ``n`` sightings."""
    return rng.standard_normal((max(n // SIGHTINGS_PER_OBJECT, 1), dim)).astype(np.float32)


def sightings(centres: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors, each a noisy sighting of a random object."""
    out = centres[rng.integers(len(centres), size=n)]
    out = out + SIGHTING_NOISE * rng.standard_normal(out.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def clustered_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    return sightings(cluster_centres(n, dim, rng), n, rng)


def observations(n: int, rng: np.random.Generator) -> list[Observation]:
    cams = rng.integers(CAMERAS, size=n)
    stamps = T0 + rng.integers(DAY_NS, size=n)
    return [Observation(f"cam{c:02d}", int(s), 0, "car") for c, s in zip(cams, stamps)]


def _percentiles(values_ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(values_ms, 50)), 3), "p99_ms": round(float(np.percentile(values_ms, 99)), 3)}


def _exact_top(vectors: np.ndarray, keep: np.ndarray | None, query: np.ndarray, k: int) -> set[int]:
    rows = np.arange(len(vectors)) if keep is None else np.flatnonzero(keep)
    scores = vectors[rows] @ query
    top = rows[np.argsort(-scores)[:k]]
    return set((top + 1).tolist())


def _measure(search, vectors, obs_cam, obs_stamp, queries, k=10, filters: tuple[str, ...] | None = None) -> dict:
    out = {}
    cases = {
        "unfiltered": (None, None),
        "filter_1pct": (QueryFilter(camera_ids=("cam07",)), obs_cam == 7),
        "filter_0.1pct": (QueryFilter(camera_ids=("cam07",), start_ns=T0, end_ns=T0 + DAY_NS // 10),
                          (obs_cam == 7) & (obs_stamp <= T0 + DAY_NS // 10)),
    }
    for name, (flt, keep) in cases.items():
        if filters is not None and name not in filters:
            continue
        latencies, answers = [], []
        # Every query timed first, the exact answers after: an exact scan of the whole index between two timed
        # queries would leave the BLAS threads spinning and the caches cold, and its cost in the next query's time.
        for q in queries:
            started = time.perf_counter()
            ids, _ = search(q, k, flt)
            latencies.append((time.perf_counter() - started) * 1e3)
            answers.append(ids)
        recalls = []
        for q, ids in zip(queries, answers):
            truth = _exact_top(vectors, keep, q, k)
            recalls.append(len(truth & set(int(i) for i in ids)) / max(len(truth), 1))
        out[name] = {**_percentiles(latencies), "recall_at_10": round(float(np.mean(recalls)), 4),
                     "selected": int(len(vectors) if keep is None else keep.sum())}
    return out


def _line(entry: dict) -> str:
    return "; ".join(f"{k} p50 {v['p50_ms']} p99 {v['p99_ms']} ms R@10 {v['recall_at_10']}"
                     for k, v in entry.items() if isinstance(v, dict))


def bench_retrieval(sizes: list[int], dim: int, queries: int = 300, milvus_max: int = 100_000,
                    insert_items: int = 50_000, ef_sweep: tuple[int, ...] = (),
                    ann_kinds: tuple[AnnKind, ...] = (AnnKind.IVF, AnnKind.HNSW),
                    probe_sweep: tuple[float, ...] = (), milvus_uri: str = "", log=print) -> dict:
    """Run the benchmark. At sizes that use an approximate index, every kind in ``ann_kinds`` is built and
    measured on the same vectors and queries (the first is reported as ``faiss``, the others as
    ``faiss_<kind>``, with the p99 ratio to the first); ``ef_sweep`` also measures unfiltered HNSW search at
    each efSearch given, ``probe_sweep`` unfiltered IVF search at each share of cells scanned. Milvus runs
    embedded (milvus-lite) unless ``milvus_uri`` names a server or cluster (HNSW, partitions per camera and day;
    each size gets its own collection, dropped afterwards)."""
    rng = np.random.default_rng(0)
    result: dict = {"dim": dim, "sizes": {}, "queries": queries}
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        # Insert throughput through the real path: durable SQLite commit + vector index, batches of 1000.
        vectors = clustered_vectors(insert_items, dim, rng)
        obs = observations(insert_items, rng)
        index = RetrievalIndex(f"{tmp}/insert", "bench@1", dim)
        started = time.perf_counter()
        for i in range(0, insert_items, 1000):
            index.insert(obs[i:i + 1000], vectors[i:i + 1000])
        result["inserts_per_s"] = round(insert_items / (time.perf_counter() - started))
        # Re-ranking cost: all stages over a shortlist of k = 100 from this index.
        reranker = Reranker(STAGE_ORDER)
        costs = []
        for q in vectors[:100]:
            hits = index.search(q, 100)
            fresh = [Hit(h.item_id, h.score_initial, h.score_initial, h.rank_initial, h.observation) for h in hits]
            track = index.vectors([h.item_id for h in hits[:8]])  # a query track of 8 sightings (query_track)
            started = time.perf_counter()
            reranker.rerank(QueryContext(q, obs[0], track_vectors=track), fresh, index.vectors)
            costs.append((time.perf_counter() - started) * 1e3)
        result["rerank_k100"] = _percentiles(costs)
        index.close()
        log(f"[bench] inserts {result['inserts_per_s']}/s (durable, batches of 1000); re-ranking k=100 "
            f"p50 {result['rerank_k100']['p50_ms']} ms p99 {result['rerank_k100']['p99_ms']} ms")
        for n in sizes:
            centres = cluster_centres(n, dim, rng)
            vectors = sightings(centres, n, rng)
            cams = rng.integers(CAMERAS, size=n)
            stamps = T0 + rng.integers(DAY_NS, size=n)
            obs = [Observation(f"cam{c:02d}", int(s), 0, "car") for c, s in zip(cams, stamps)]
            qs = sightings(centres, queries, rng)
            entry: dict = {}
            for position, kind in enumerate(ann_kinds):
                backend = FaissBackend(dim, ann=kind)
                started = time.perf_counter()
                for i in range(0, n, 100_000):
                    backend.load_rows(np.arange(i + 1, min(i + 100_000, n) + 1), vectors[i:i + 100_000],
                                      obs[i:i + 100_000])
                backend.finish_load(None)
                exact = backend.index_type.startswith("Flat")
                key = "faiss" if position == 0 else f"faiss_{kind.value}"
                entry[key] = {"index_type": backend.index_type, "build_s": round(time.perf_counter() - started, 1),
                              **_measure(backend.search, vectors, cams, stamps, qs)}
                log(f"[bench] {n} vectors FAISS {backend.index_type} (built in {entry[key]['build_s']} s): "
                    + _line(entry[key]))
                if position:
                    entry[f"{kind.value}_vs_{ann_kinds[0].value}_p99_ratio"] = round(
                        entry[key]["unfiltered"]["p99_ms"] / max(entry["faiss"]["unfiltered"]["p99_ms"], 1e-6), 2)
                sweep_values = ef_sweep if kind is AnnKind.HNSW else probe_sweep
                if sweep_values and not exact:
                    attribute = "ef_search" if kind is AnnKind.HNSW else "ivf_probe_share"
                    default, sweep = getattr(backend, attribute), {}
                    for value in sweep_values:
                        setattr(backend, attribute, type(default)(value))
                        sweep[str(value)] = _measure(backend.search, vectors, cams, stamps, qs,
                                                     filters=("unfiltered",))["unfiltered"]
                        log(f"[bench] {n} vectors {kind.value} {attribute} {value}: p50 {sweep[str(value)]['p50_ms']} "
                            f"p99 {sweep[str(value)]['p99_ms']} ms R@10 {sweep[str(value)]['recall_at_10']}")
                    setattr(backend, attribute, default)
                    entry[f"faiss_{kind.value}_sweep"] = sweep
                del backend
                if exact:  # below the approximate size every kind is the same exact search
                    break
            if n <= milvus_max:
                from perception_nodes.retrieval.backends import MilvusBackend

                where = "server" if milvus_uri else "milvus-lite"
                collection = f"bench_{n}_{os.getpid()}_{int(time.time())}"
                milvus = MilvusBackend(dim, milvus_uri or f"{tmp}/milvus_{n}.db", collection)
                started = time.perf_counter()
                for i in range(0, n, 5000):
                    milvus.add(np.arange(i + 1, min(i + 5000, n) + 1), vectors[i:i + 5000], obs[i:i + 5000])
                if milvus_uri:  # a server indexes in the background: built once every row is sealed and indexed
                    milvus.wait_indexed()
                build = time.perf_counter() - started
                entry["milvus"] = {"index_type": f"milvus {milvus.index_kind} ({where})",
                                   "build_s": round(build, 1), "inserts_per_s": round(n / build),
                                   **_measure(milvus.search, vectors, cams, stamps, qs[:min(queries, 100)])}
                if milvus_uri:
                    milvus.drop()
                milvus.close()
                ratio = entry["milvus"]["unfiltered"]["p50_ms"] / max(entry["faiss"]["unfiltered"]["p50_ms"], 1e-6)
                entry["milvus_vs_faiss_p50_ratio"] = round(ratio, 2)
                log(f"[bench] {n} vectors Milvus ({where}): " + _line(entry["milvus"])
                    + f"; p50 ratio to FAISS {entry['milvus_vs_faiss_p50_ratio']}")
            result["sizes"][str(n)] = entry
    return result
