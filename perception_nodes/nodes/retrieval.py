"""Retrieval node: indexes the best crop of every track per time window, and answers visual-search queries.

Lifecycle node (the index is the expensive resource): configure loads the embedder and opens the index (FAISS
embedded or Milvus; a missing or corrupt vector index is rebuilt from the metadata store with a warning),
activate starts the indexing worker, cleanup closes both.

For each camera id in ``cameras``:
  subscribes <cam>/image_raw    sensor_msgs/Image (qos.IMAGE): the newest few frames are kept to cut crops from
             <cam>/tracks       perception_nodes/TrackArray (qos.RESULTS): the tracks of a frame; their boxes are
                                cut from the frame with the same stamp
  subscribes objects            perception_nodes/LocalizedObjectArray (qos.RESULTS), when localization runs: the
                                global id, map position, heading and zone of each (camera, track)
Services (perception_nodes/srv): ~/query_by_image, ~/query_by_id, ~/query_by_embedding, ~/delete, ~/stats,
~/snapshot (into the store's own snapshots/ folder; the request names it, never a path).

The callbacks only pair tracks with their frame and queue the pair (bounded, drop-oldest, counted); the worker
scores crops (size, sharpness, wholeness, track score), keeps the best per track per ``window_s``, embeds the
winners in one batch and inserts them in one durable transaction.
"""
from __future__ import annotations

import collections
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import Image

from perception_nodes.boxes import set_xyxy, xyxy_of
from perception_nodes.errors import PerceptionError
from perception_nodes.image_codec import image_to_bgr8
from perception_nodes.retrieval.crops import CropSelector, crop_quality, cut_crop
from perception_nodes.retrieval.embedders import HSV_HIST, embed_crops, load_embedder
from perception_nodes.retrieval.index import RetrievalIndex, default_store_dir
from perception_nodes.retrieval.rerank import (QueryContext, Reranker, TravelTimeModel, parse_stages,
                                               travel_pairs_from_global_ids, travel_pairs_from_neighbours)
from perception_nodes.retrieval.types import (MAX_K, Observation, QueryFilter, RetrievalError, RetrievalErrorCode,
                                              check_k, invalid)
from perception_nodes.ros import qos
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import stamp_nanoseconds
from perception_nodes.stats import NodeCounters

MAX_QUERY_IMAGE_PIXELS = 4096 * 4096
FRAMES_KEPT_PER_CAMERA = 8       # tracks arrive a detector pass after their frame; a few frames cover the lag
QUERY_TRACK_SPAN_S = 300.0       # a query item's track sightings within this of it pool the query (query_track)
OBJECT_LINK_MAX_AGE_S = 2.0      # a (camera, track) -> object link older than this is not used
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RetrievalNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("retrieval", **kwargs)
        from perception_nodes.msg import NodeHealth

        self._NodeHealth = NodeHealth
        params = ParameterSet(self)
        self.cameras = list(params.declare("cameras", ["cam0"], "Camera ids whose tracks are indexed.",
                                           read_only=True))
        self.store_dir = params.declare("store_dir", "", "Index folder (metadata, thumbnails, vector index, "
                                        "snapshots); empty: $PERCEPTION_RETRIEVAL_DIR or ~/.local/share/"
                                        "perception_nodes/retrieval.", read_only=True)
        self.embedder_ref = params.declare("embedder", HSV_HIST, "'hsv-hist' or a registered embedder "
                                           "name[@version] (models/manifest.yaml).", read_only=True)
        self.backend = params.declare("backend", "faiss", "Vector index: faiss (embedded) or milvus.",
                                      choices=("faiss", "milvus"), read_only=True)
        self.ann_index = params.declare("ann_index", "ivf", "FAISS: the approximate index above "
                                        "50,000 items, ivf (inverted lists) or hnsw (a graph).",
                                        choices=("ivf", "hnsw"), read_only=True)
        self.milvus_uri = params.declare("milvus_uri", "", "Milvus: a server URI, or a milvus-lite *.db file; "
                                         "empty: milvus_lite.db in store_dir.", read_only=True)
        self.window_s = params.declare("window_s", 2.0, "One crop per track per window (the best).",
                                       minimum=0.1, maximum=600.0, read_only=True)
        self.min_side_px = params.declare("min_side_px", 24.0, "Smallest box side worth indexing (px).",
                                          minimum=2.0, maximum=4096.0, read_only=True)
        self.min_track_hits = params.declare("min_track_hits", 3, "Index confirmed tracks with this many hits.",
                                             minimum=1, maximum=1000, read_only=True)
        self.queue_size = params.declare("queue_size", 16, "Frames waiting for the worker; the oldest is dropped "
                                         "(and counted) beyond it.", minimum=1, maximum=1024, read_only=True)
        self.thumbnail_quality = params.declare("thumbnail_jpeg_quality", 85, "JPEG quality of stored crops; 0: "
                                                "no thumbnails.", minimum=0, maximum=100, read_only=True)
        self.stages = parse_stages(params.declare(
            "rerank_stages", "all", "Re-ranking stages a query with rerank=true runs: all, none or a comma list of "
            "context, query_track, expansion, kreciprocal, augmentation, spatiotemporal, scene.", read_only=True,
            validator=lambda v: self._check_stages(v)))
        self.travel_refit_s = params.declare("travel_refit_s", 30.0, "How often the camera-pair travel-time model "
                                             "is re-learned from the index.", minimum=1.0, maximum=86400.0)
        self.autostart = params.declare("autostart", True, "Configure and activate at start-up.", read_only=True)

        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self.index: RetrievalIndex | None = None
        self.embedder = None
        self.travel = TravelTimeModel()
        self._frames: dict[str, collections.OrderedDict] = {c: collections.OrderedDict() for c in self.cameras}
        self._links: dict[tuple[str, int], tuple[float, object]] = {}
        self._queue: collections.deque = collections.deque()
        self._queue_lock = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._entities: list = []
        self._indexed_total = 0
        self._status = (NodeHealth.LEVEL_OK, "")
        self.health = HealthReporter(self, self.counters, status=lambda: self._status)
        if self.autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    @staticmethod
    def _check_stages(value: str) -> str | None:
        try:
            parse_stages(value)
        except RetrievalError as exc:
            return str(exc)
        return None

    # -- lifecycle ------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.embedder = load_embedder(self.embedder_ref)
            directory = Path(self.store_dir) if self.store_dir else default_store_dir()
            options = {"ann": self.ann_index} if self.backend == "faiss" else {}
            self.index = RetrievalIndex(directory, self.embedder.name, self.embedder.dim, backend=self.backend,
                                        milvus_uri=self.milvus_uri, **options)
        except (PerceptionError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._status = (self._NodeHealth.LEVEL_ERROR, f"configure failed: {exc}")
            self.embedder = None
            return TransitionCallbackReturn.FAILURE
        for warning in self.index.warnings + ([self.embedder.note] if getattr(self.embedder, "note", "") else []):
            self.get_logger().warning(warning)
        self._refit_travel()
        from perception_nodes.msg import LocalizedObjectArray, TrackArray
        from perception_nodes.srv import DeleteItems, IndexStats, QueryByEmbedding, QueryById, QueryByImage, \
            SnapshotIndex

        for cam in self.cameras:
            # Images: the camera's reliable keep-last-1 profile; a missed frame only means no crop from it.
            self._entities.append(self.create_subscription(Image, f"{cam}/image_raw",
                                                           lambda m, c=cam: self._on_image(c, m), qos.IMAGE,
                                                           qos_overriding_options=qos.overridable()))
            self._entities.append(self.create_subscription(TrackArray, f"{cam}/tracks",
                                                           lambda m, c=cam: self._on_tracks(c, m), qos.RESULTS,
                                                           qos_overriding_options=qos.overridable()))
        self._entities.append(self.create_subscription(LocalizedObjectArray, "objects", self._on_objects,
                                                       qos.RESULTS, qos_overriding_options=qos.overridable()))
        for srv_type, name, handler in ((QueryByImage, "~/query_by_image", self._query_by_image),
                                        (QueryById, "~/query_by_id", self._query_by_id),
                                        (QueryByEmbedding, "~/query_by_embedding", self._query_by_embedding),
                                        (DeleteItems, "~/delete", self._delete),
                                        (IndexStats, "~/stats", self._stats),
                                        (SnapshotIndex, "~/snapshot", self._snapshot)):
            self._entities.append(self.create_service(srv_type, name, handler))
        self._refit_timer = self.create_timer(self.travel_refit_s, self._refit_travel)
        self.get_logger().info(f"index {self.index.directory} ({self.backend}, {len(self.index)} items of "
                               f"{self.embedder.name}) for cameras {self.cameras}")
        self._status = (self._NodeHealth.LEVEL_OK, "")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="retrieval-indexer", daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _halt(self) -> None:
        self._stop.set()
        with self._queue_lock:
            self._queue_lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def _release(self) -> None:
        for entity in self._entities:
            if type(entity).__name__ == "Service":
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._entities.clear()
        if getattr(self, "_refit_timer", None) is not None:
            self.destroy_timer(self._refit_timer)
            self._refit_timer = None
        if self.index is not None:
            self.index.close()
            self.index = None
        self.embedder = None

    def destroy_node(self):
        self._halt()
        self._release()
        super().destroy_node()

    # -- inputs ---------------------------------------------------------------------------------
    def _on_image(self, camera_id: str, msg) -> None:
        frames = self._frames[camera_id]
        frames[stamp_nanoseconds(msg.header.stamp)] = msg
        while len(frames) > FRAMES_KEPT_PER_CAMERA:
            frames.popitem(last=False)

    def _on_objects(self, msg) -> None:
        now = time.monotonic()
        for obj in msg.objects:
            for ref in obj.contributors:
                self._links[(ref.camera_id, int(ref.track_id))] = (now, obj)
        if len(self._links) > 4096:
            cutoff = now - OBJECT_LINK_MAX_AGE_S
            self._links = {k: v for k, v in self._links.items() if v[0] >= cutoff}

    def _on_tracks(self, camera_id: str, msg) -> None:
        self.counters.on_received()
        image = self._frames[camera_id].get(stamp_nanoseconds(msg.header.stamp))
        if image is None:
            self.counters.on_dropped(reason="no_frame_for_tracks")
            return
        tracks = [t for t in msg.tracks if t.state == t.STATE_CONFIRMED and t.frames_since_update == 0
                  and t.hits >= self.min_track_hits and min(t.box.width, t.box.height) >= self.min_side_px]
        if not tracks:
            return
        links = {}
        now = time.monotonic()
        for t in tracks:
            link = self._links.get((camera_id, int(t.track_id)))
            if link is not None and now - link[0] <= OBJECT_LINK_MAX_AGE_S:
                links[int(t.track_id)] = link[1]
        with self._queue_lock:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.counters.on_dropped(reason="queue_full")
            self._queue.append((camera_id, stamp_nanoseconds(msg.header.stamp), image, tracks, links))
            self._queue_lock.notify()

    # -- worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        selector = CropSelector(window_s=self.window_s, min_side_px=self.min_side_px)
        latest_ns = 0
        while not self._stop.is_set():
            with self._queue_lock:
                if not self._queue:
                    self._queue_lock.wait(timeout=0.5)
                item = self._queue.popleft() if self._queue else None
            emitted = []
            if item is not None:
                started = time.perf_counter()
                try:
                    emitted += self._offer(selector, *item)
                    latest_ns = max(latest_ns, item[1])
                except Exception as exc:  # noqa: BLE001 - a bad frame must not stop indexing
                    self.counters.on_error("crop_failed")
                    self.log.warning("crop", f"could not cut crops from {item[0]}: {exc}")
                self.counters.on_processed(time.perf_counter() - started)
            if latest_ns:  # tracks that went quiet: their window closes
                emitted += selector.flush(older_than_ns=latest_ns - int(self.window_s * 1e9))
            if emitted:
                self._insert([payload for _, payload in emitted])
        final = selector.flush()
        if final:
            self._insert([payload for _, payload in final])

    def _offer(self, selector: CropSelector, camera_id: str, stamp_ns: int, image_msg, tracks, links) -> list:
        image = image_to_bgr8(image_msg)
        out = []
        for t in tracks:
            box = xyxy_of(t.box)
            quality = crop_quality(image, box, confidence=float(t.score))
            if quality <= 0:
                continue
            crop, inner = cut_crop(image, box)
            obj = links.get(int(t.track_id))
            zone, heading, xy, global_id = "", None, None, 0
            if obj is not None:
                global_id = int(obj.global_id)
                xy = (float(obj.position.x), float(obj.position.y))
                heading = float(obj.heading) if obj.heading_known else None
                zone = obj.zones[0] if len(obj.zones) else ""
            obs = Observation(camera_id=camera_id, stamp_ns=stamp_ns, class_id=int(t.class_id),
                              class_name=t.class_name, track_id=int(t.track_id), global_id=global_id, map_xy=xy,
                              heading=heading, zone=zone, box=tuple(float(v) for v in box), quality=quality)
            out += selector.offer((camera_id, int(t.track_id)), stamp_ns, quality, (crop, inner, obs))
        return out

    def _insert(self, payloads: list) -> None:
        index, embedder = self.index, self.embedder
        if index is None or embedder is None:
            return
        try:
            vectors = embed_crops(embedder, [crop for crop, _, _ in payloads], [inner for _, inner, _ in payloads])
            usable = np.linalg.norm(vectors, axis=1) > 1e-6
            thumbnails = None
            if self.thumbnail_quality:
                thumbnails = [cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.thumbnail_quality])[1]
                              .tobytes() for (crop, _, _), ok in zip(payloads, usable) if ok]
            observations = [obs for (_, _, obs), ok in zip(payloads, usable) if ok]
            if (~usable).any():
                self.counters.on_dropped(int((~usable).sum()), reason="no_appearance")
            ids = index.insert(observations, vectors[usable], thumbnails)
            self._indexed_total += len(ids)
            self.counters.count("indexed", len(ids))
        except Exception as exc:  # noqa: BLE001 - log, count and keep indexing
            self.counters.on_error("insert_failed")
            self.log.warning("insert", f"could not index {len(payloads)} crops: {exc}")

    def _refit_travel(self) -> None:
        index = self.index
        if index is None:
            return
        try:
            ids, observations, vectors = index.recent(5000)
            pairs = travel_pairs_from_global_ids(observations)
            if not pairs:
                pairs = travel_pairs_from_neighbours(ids, vectors, observations)
            self.travel = TravelTimeModel().fit(pairs)
        except Exception as exc:  # noqa: BLE001 - keep the previous model
            self.log.warning("travel", f"travel-time model not refitted: {exc}")

    # -- services -------------------------------------------------------------------------------
    def _answer(self, response, work):
        from perception_nodes.msg import ServiceStatus

        if self.index is None or self.embedder is None:
            response.status.code = ServiceStatus.UNAVAILABLE
            response.status.message = "the index is not configured (lifecycle state is not active/inactive)"
            return response
        try:
            work(response)
            response.status.code = ServiceStatus.OK
        except RetrievalError as exc:
            response.status.code = int(exc.code)
            response.status.message = str(exc)
        except PerceptionError as exc:
            response.status.code = ServiceStatus.INVALID_REQUEST
            response.status.message = str(exc)
        except Exception as exc:  # noqa: BLE001 - a service never dies on a request
            self.get_logger().error(f"retrieval request failed: {type(exc).__name__}: {exc}")
            response.status.code = ServiceStatus.INTERNAL_ERROR
            response.status.message = f"{type(exc).__name__}: {exc}"
        return response

    def _filter(self, msg) -> QueryFilter:
        start = stamp_nanoseconds(msg.start_time) or None
        end = stamp_nanoseconds(msg.end_time) or None
        region = (msg.region_min_x, msg.region_min_y, msg.region_max_x, msg.region_max_y) if msg.use_region else None
        flt = QueryFilter(tuple(msg.camera_ids), start, end, region, tuple(int(c) for c in msg.class_ids),
                          tuple(msg.zones))
        unknown = set(flt.camera_ids) - set(self.cameras)
        if unknown:
            raise invalid(f"filter names unknown cameras {sorted(unknown)}; this node indexes {self.cameras}")
        flt.validate()
        return flt

    def _run_query(self, response, vector, k: int, flt: QueryFilter, rerank: bool,
                   observation: Observation | None = None, exclude: frozenset[int] = frozenset(),
                   track_vectors: np.ndarray | None = None) -> None:
        k = check_k(k)
        reranker = Reranker(self.stages, travel=self.travel) if rerank and self.stages else None
        wanted = min(MAX_K, max(k, reranker.config.shortlist if reranker else k) + len(exclude))
        hits = [h for h in self.index.search(vector, wanted, flt) if h.item_id not in exclude]
        if reranker is not None:
            hits = reranker.rerank(QueryContext(np.asarray(vector, np.float32), observation, exclude, track_vectors),
                                   hits, self.index.vectors)
        response.hits = [self._hit_msg(h) for h in hits[:k]]

    def _hit_msg(self, hit):
        from perception_nodes.msg import RetrievalHit

        msg = RetrievalHit()
        msg.item_id = str(hit.item_id)
        msg.score_initial, msg.score_final, msg.rank_initial = hit.score_initial, hit.score_final, hit.rank_initial
        msg.moved_by = list(hit.moved_by)
        o, m = hit.observation, msg.metadata
        m.camera_id = o.camera_id
        m.stamp.sec, m.stamp.nanosec = divmod(o.stamp_ns, 1_000_000_000)
        m.global_id, m.track_id, m.class_id, m.class_name = o.global_id, o.track_id, o.class_id, o.class_name
        m.has_map_position = o.map_xy is not None
        if o.map_xy is not None:
            m.map_position.x, m.map_position.y = o.map_xy
        m.heading_known = o.heading is not None
        m.heading = float(o.heading or 0.0)
        m.zone = o.zone
        set_xyxy(m.box, *o.box)
        m.quality = o.quality
        m.thumbnail_uri = self.index.store.thumbnail_path(o.thumbnail).resolve().as_uri() if o.thumbnail else ""
        m.embedding_model = self.index.embedder
        return msg

    def _query_by_image(self, request, response):
        def work(response):
            if request.image.width == 0 or request.image.height == 0:
                raise invalid("the query image is empty")
            if request.image.width * request.image.height > MAX_QUERY_IMAGE_PIXELS:
                raise invalid(f"the query image is {request.image.width}x{request.image.height}; at most "
                              f"{MAX_QUERY_IMAGE_PIXELS} pixels")
            image = image_to_bgr8(request.image)
            h, w = image.shape[:2]
            vector = self.embedder.embed(image, np.array([[0.0, 0.0, float(w), float(h)]]))[0]
            if np.linalg.norm(vector) < 1e-6:
                raise invalid("the query image has no usable pixels for the embedder")
            self._run_query(response, vector, request.k, self._filter(request.filter), request.rerank)

        return self._answer(response, work)

    def _query_by_id(self, request, response):
        def work(response):
            kind = request.id_kind
            if kind == request.ID_GLOBAL:
                ids = self.index.items_of(global_id=int(request.id))
            elif kind == request.ID_TRACK:
                if request.camera_id not in self.cameras:
                    raise invalid(f"ID_TRACK needs camera_id, one of {self.cameras}; got {request.camera_id!r}")
                ids = self.index.items_of(camera_id=request.camera_id, track_id=int(request.id))
            elif kind == request.ID_ITEM:
                ids = [int(request.id)] if self.index.observations([int(request.id)]) else []
            else:
                raise invalid(f"id_kind must be ID_GLOBAL (0), ID_TRACK (1) or ID_ITEM (2), got {kind}")
            if not ids:
                raise RetrievalError(RetrievalErrorCode.NOT_FOUND, f"no indexed items for id {request.id} "
                                     f"(kind {kind}{', camera ' + request.camera_id if request.camera_id else ''})")
            vectors = self.index.vectors(ids)
            vector = vectors.mean(axis=0)
            newest = self.index.observations([ids[-1]])[ids[-1]]
            track_vectors = None
            if kind == request.ID_ITEM and newest.track_id:  # one sighting: its track's others pool the query
                same_track = self.index.items_of(camera_id=newest.camera_id, track_id=newest.track_id)
                # a tracker restarted since may have reused the id: only the sightings near this one in time
                near = [i for i, o in self.index.observations(same_track).items()
                        if abs(o.stamp_ns - newest.stamp_ns) <= QUERY_TRACK_SPAN_S * 1e9]
                track_vectors = self.index.vectors(near) if near else None
            self._run_query(response, vector, request.k, self._filter(request.filter), request.rerank,
                            observation=newest, exclude=frozenset(ids), track_vectors=track_vectors)

        return self._answer(response, work)

    def _query_by_embedding(self, request, response):
        def work(response):
            self.index.check_embedder(request.embedding_model)
            if not request.embedding_model:
                raise invalid(f"embedding_model is required (this index holds {self.index.embedder})")
            self._run_query(response, np.asarray(request.embedding, np.float32), request.k,
                            self._filter(request.filter), request.rerank)

        return self._answer(response, work)

    def _delete(self, request, response):
        def work(response):
            try:
                ids = [int(i) for i in request.item_ids]
            except ValueError:
                raise invalid(f"item ids are integers (RetrievalHit.item_id), got {list(request.item_ids)}") from None
            response.deleted = self.index.delete(ids)

        return self._answer(response, work)

    def _stats(self, request, response):
        def work(response):
            stats = self.index.stats()
            response.items, response.dimension = stats.items, stats.dimension
            response.items_other_embedders = sum(stats.other_embedders.values())
            response.embedding_model, response.index_type = stats.embedder, stats.index_type
            response.backend = self.backend
            response.memory_bytes = stats.memory_bytes
            response.indexed_total = self._indexed_total
            response.dropped_total = self.counters.snapshot().dropped
            response.last_snapshot.sec, response.last_snapshot.nanosec = divmod(stats.last_snapshot_ns, 1_000_000_000)

        return self._answer(response, work)

    def _snapshot(self, request, response):
        def work(response):
            if request.name and not SNAPSHOT_NAME.match(request.name):
                raise invalid(f"snapshot name {request.name!r} must be a plain name (letters, digits, '.', '-', "
                              "'_'; no path)")
            path = self.index.snapshot(request.name)
            response.path, response.items = str(path), len(self.index)

        return self._answer(response, work)


def main(args=None) -> int:
    return run_node(RetrievalNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
