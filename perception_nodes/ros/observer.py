"""What `perception demo` measures: a subscriber that counts what a running graph delivers, the monitor's
view, and the demo session around them (the CLI prints its result)."""
from __future__ import annotations

import threading
import time

import numpy as np

from perception_nodes.runner import GraphRunner, RespawnPolicy, forward_signals


class GraphObserver:
    """In-process subscriber that measures what the graph delivers."""

    def __init__(self, rclpy, specs, namespace: str):
        from sensor_msgs.msg import Image

        from perception_nodes.msg import DetectionArray, TrackArray
        from perception_nodes.ros import qos

        self.node = rclpy.create_node("perception_demo_observer")
        self.lock = threading.Lock()
        self.frames: dict[str, int] = {}
        self.latency_ms: dict[str, list[float]] = {}
        self.first_last: dict[str, list[float]] = {}
        self.track_first_last: dict[str, list[float]] = {}
        self.gt_counts: dict[str, set] = {}
        self.track_msgs: dict[str, int] = {}
        self.track_ids: dict[str, set] = {}
        self.track_age_ms: dict[str, list[float]] = {}
        self.vehicle_tracks: dict[tuple[str, int], list[int]] = {}
        self.retrieval = next((s for s in specs if s.executable == "retrieval"), None)
        for spec in specs:
            if spec.executable != "camera":
                continue
            cam = spec.parameters["camera_id"]
            self.frames[cam], self.latency_ms[cam], self.gt_counts[cam] = 0, [], set()
            ns = spec.namespace.rstrip("/")
            # The camera's own image QoS: a RELIABLE subscription never matches a BEST_EFFORT camera.
            image_qos = qos.image_profile(spec.parameters.get("image_qos", "reliable"))
            self.node.create_subscription(Image, f"{ns}/image_raw", lambda m, c=cam: self._on_image(c, m), image_qos)
            self.node.create_subscription(DetectionArray, f"{ns}/ground_truth/detections",
                                          lambda m, c=cam: self._on_gt(c, m), qos.RESULTS)
            self.track_msgs[cam], self.track_ids[cam], self.track_age_ms[cam] = 0, set(), []
            self.node.create_subscription(TrackArray, f"{ns}/tracks", lambda m, c=cam: self._on_tracks(c, m), qos.RESULTS)
        self.localizer = next((s for s in specs if s.executable == "localizer"), None)
        self.objects_msgs = 0
        self.object_ids: set[int] = set()
        self.multi_camera_ids: set[int] = set()
        self.max_objects = 0
        self.object_age_ms: list[float] = []
        self.site_state = None
        self.site_events: list = []
        self.stall_changes = 0
        if self.localizer is not None:
            from perception_nodes.msg import LocalizedObjectArray, SiteEventArray, SiteState

            ns = self.localizer.namespace.rstrip("/")
            self.node.create_subscription(LocalizedObjectArray, f"{ns}/objects", self._on_objects, qos.RESULTS)
            self.node.create_subscription(SiteState, f"{ns}/site_state", self._on_site_state, qos.LATCHED)
            self.node.create_subscription(SiteEventArray, f"{ns}/site_events", self._on_events, qos.RESULTS)
        self.calibration_monitor = next((s for s in specs if s.executable == "calibration_monitor"), None)
        self.calibration: dict[str, object] = {}  # camera -> its latest CameraCalibrationHealth
        if self.calibration_monitor is not None:
            from perception_nodes.msg import CameraCalibrationHealth

            ns = self.calibration_monitor.namespace.rstrip("/")
            self.node.create_subscription(CameraCalibrationHealth, f"{ns}/calibration/health",
                                          lambda m: self.calibration.__setitem__(m.camera_id, m), qos.RESULTS)

        self.risk = next((s for s in specs if s.executable == "risk"), None)
        self.assessments: list = []
        self.commands: list = []
        if self.risk is not None:
            from perception_nodes.msg import ActuationCommand, RiskAssessment

            ns = self.risk.namespace.rstrip("/")
            self.node.create_subscription(RiskAssessment, f"{ns}/risk/assessment", self._on_assessment, qos.COMMANDS)
            self.node.create_subscription(ActuationCommand, f"{ns}/risk/command", self._on_command, qos.COMMANDS)

    def _on_assessment(self, msg) -> None:
        with self.lock:
            self.assessments.append((msg.assessment_id, msg.level, msg.fail_safe, msg.fail_safe_reason,
                                     [(r.rule_id, r.text) for r in msg.reasons[:3]]))

    def _on_command(self, msg) -> None:
        with self.lock:
            self.commands.append((msg.sequence, msg.command, msg.fail_safe, msg.reason))

    def risk_report(self) -> dict | None:
        """What the risk node decided: assessments per level, commands per kind, the reasons behind them."""
        if self.risk is None:
            return None
        from perception_nodes.risk.rules import Command, RiskLevel

        with self.lock:
            assessments, commands = list(self.assessments), list(self.commands)
        levels: dict[str, int] = {}
        for _, level, _, _, _ in assessments:
            name = RiskLevel(level).name if level in RiskLevel._value2member_map_ else str(level)
            levels[name] = levels.get(name, 0) + 1
        kinds: dict[str, int] = {}
        changes, last = [], None
        for sequence, command, fail_safe, reason in commands:
            name = Command(command).name if command in Command._value2member_map_ else str(command)
            kinds[name] = kinds.get(name, 0) + 1
            if name != last:
                changes.append({"sequence": sequence, "command": name, "fail_safe": bool(fail_safe),
                                "reason": reason[:160]})
                last = name
        rules: dict[str, int] = {}
        for *_, reasons in assessments:
            for rule_id, _ in reasons:
                rules[rule_id] = rules.get(rule_id, 0) + 1
        return {"assessments": len(assessments), "levels": levels, "commands": kinds,
                "fail_safe_assessments": sum(1 for a in assessments if a[2]), "rules_fired": rules,
                "command_changes": changes[:20], "decision_log": self.risk.parameters.get("decision_log", "")}

    def calibration_report(self) -> dict | None:
        """Each checked camera's latest calibration verdict and estimated error."""
        if self.calibration_monitor is None:
            return None
        from perception_nodes.localization.calibration_health import CalibrationState

        with self.lock:
            latest = dict(self.calibration)
        return {cam: {"state": CalibrationState(m.state).name if m.state in CalibrationState._value2member_map_
                      else "UNKNOWN", "error_deg": round(float(m.error_deg), 3)} for cam, m in sorted(latest.items())}

    def _on_objects(self, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self.lock:
            self.objects_msgs += 1
            confirmed = [o for o in msg.objects if o.state == o.STATE_CONFIRMED]
            self.max_objects = max(self.max_objects, len(confirmed))
            for o in confirmed:
                self.object_ids.add(int(o.global_id))
                if len({c.camera_id for c in o.contributors}) >= 2:
                    self.multi_camera_ids.add(int(o.global_id))
                seen = o.last_seen.sec * 1_000_000_000 + o.last_seen.nanosec
                self.object_age_ms.append((now - seen) / 1e6)

    def _on_site_state(self, msg) -> None:
        with self.lock:
            self.site_state = msg

    def _on_events(self, msg) -> None:
        with self.lock:
            self.site_events.extend(msg.events)
            self.stall_changes += sum(1 for e in msg.events if e.kind in (e.KIND_STALL_OCCUPIED, e.KIND_STALL_FREED))

    def _on_image(self, cam, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.frames[cam] += 1
            self.latency_ms[cam].append((now - stamp) / 1e6)
            span = self.first_last.setdefault(cam, [now, now])
            span[1] = now

    def _on_gt(self, cam, msg) -> None:
        with self.lock:
            self.gt_counts[cam].add(len(msg.detections))

    def _on_tracks(self, cam, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.track_msgs[cam] += 1
            self.track_age_ms[cam].append((now - stamp) / 1e6)  # capture -> tracks: the stamp is the capture time
            self.track_ids[cam].update(t.track_id for t in msg.tracks)
            for t in msg.tracks:  # per vehicle track: first and last stamp (the demo's drive-in/drive-out query)
                if t.class_name in ("car", "truck") and t.state == t.STATE_CONFIRMED:
                    seen = self.vehicle_tracks.setdefault((cam, int(t.track_id)), [stamp, stamp, 0])
                    seen[1], seen[2] = stamp, seen[2] + 1
            span = self.track_first_last.setdefault(cam, [now, now])
            span[1] = now

    def ready(self, tracking: bool) -> bool:
        """Every camera delivered a frame and, with tracking, a track message (the detector has its model)."""
        with self.lock:
            counts = self.track_msgs if tracking else self.frames
            return all(n > 0 for n in counts.values())

    def restart(self) -> None:
        """Forget everything counted so far: the report then covers the steady state only."""
        with self.lock:
            for cam in self.frames:
                self.frames[cam], self.latency_ms[cam], self.gt_counts[cam] = 0, [], set()
                self.track_msgs[cam], self.track_ids[cam], self.track_age_ms[cam] = 0, set(), []
            self.first_last.clear()
            self.track_first_last.clear()
            self.objects_msgs, self.max_objects, self.stall_changes = 0, 0, 0
            self.object_ids, self.multi_camera_ids, self.object_age_ms, self.site_events = set(), set(), [], []
            self.assessments, self.commands = [], []

    def localization_report(self) -> dict | None:
        """What the localizer delivered: objects on the map, ids seen by two cameras, stalls, events."""
        from perception_nodes.localization.scene_state import EventKind

        if self.localizer is None:
            return None
        with self.lock:
            ages = np.asarray(self.object_age_ms) if self.object_age_ms else np.zeros(1)
            stalls = list(self.site_state.stalls) if self.site_state is not None else []
            occupied = [s.stall_id for s in stalls if s.occupancy == s.OCCUPANCY_OCCUPIED]
            kinds: dict[str, int] = {}
            for e in self.site_events:
                name = EventKind(e.kind).name.lower() if e.kind in EventKind._value2member_map_ else "unknown"
                kinds[name] = kinds.get(name, 0) + 1
            return {"object_messages": self.objects_msgs, "distinct_global_ids": len(self.object_ids),
                    "global_ids_seen_by_two_cameras": len(self.multi_camera_ids),
                    "max_confirmed_objects": self.max_objects,
                    "last_seen_age_ms_p50": round(float(np.percentile(ages, 50)), 1),
                    "stalls": len(stalls), "stalls_occupied": len(occupied), "occupied": occupied[:12],
                    "events": kinds}

    def report(self) -> dict:
        with self.lock:
            cameras = {}
            for cam, count in self.frames.items():
                lat = np.asarray(self.latency_ms[cam]) if self.latency_ms[cam] else np.zeros(1)
                ages = np.asarray(self.track_age_ms[cam]) if self.track_age_ms[cam] else np.zeros(1)
                cameras[cam] = {"frames": count, "rate_hz": round(message_rate(count, self.first_last.get(cam)), 2),
                                "track_rate_hz": round(message_rate(self.track_msgs[cam], self.track_first_last.get(cam)), 2),
                                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
                                "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
                                "capture_to_tracks_ms_p50": round(float(np.percentile(ages, 50)), 1),
                                "capture_to_tracks_ms_p99": round(float(np.percentile(ages, 99)), 1),
                                "max_objects_in_frame": max(self.gt_counts[cam], default=0),
                                "track_messages": self.track_msgs[cam], "distinct_track_ids": len(self.track_ids[cam])}
            return cameras


def message_rate(count: int, span: list[float] | None) -> float:
    """Messages per second between the first and the last one (ns stamps)."""
    if count < 2 or not span or span[1] <= span[0]:
        return 0.0
    return (count - 1) / ((span[1] - span[0]) / 1e9)


def query_monitor(node, namespace: str, timeout: float = 5.0) -> dict:
    from perception_nodes.srv import GetHealth

    name = f"{namespace.rstrip('/')}/monitor/get_health" if namespace else "/monitor/get_health"
    client = node.create_client(GetHealth, name)
    if not client.wait_for_service(timeout_sec=timeout):
        return {"ok": False, "error": f"service {name} not available"}
    future = client.call_async(GetHealth.Request())
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)  # the caller's executor thread spins the node
    if not future.done():
        return {"ok": False, "error": f"{name} did not answer within {timeout} s"}
    response = future.result()
    return {"ok": response.status.code == 0,
            "nodes": {n.node_name: {"level": int(n.level), "processed": int(n.processed), "dropped": int(n.dropped),
                                    "errors": int(n.errors), "p50_ms": round(float(n.processing_ms_p50), 2)}
                      for n in response.nodes}}


def _call(node, srv_type, name: str, request, timeout: float = 10.0):
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        return None
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)  # the caller's executor thread spins the node
    return future.result() if future.done() else None


def query_retrieval(observer: GraphObserver) -> dict | None:
    """What the retrieval node indexed, and one drive-in/drive-out query: the vehicle track seen last, searched
    among the sightings from before that track began ("when did this vehicle drive in?")."""
    if observer.retrieval is None:
        return None
    from perception_nodes.srv import IndexStats, QueryById

    ns = observer.retrieval.namespace.rstrip("/")
    stats = _call(observer.node, IndexStats, f"{ns}/retrieval/stats", IndexStats.Request())
    if stats is None:
        return {"error": "the retrieval node did not answer ~/stats"}
    report = {"items": int(stats.items), "embedding_model": stats.embedding_model, "backend": stats.backend,
              "index_type": stats.index_type, "indexed_total": int(stats.indexed_total),
              "dropped_total": int(stats.dropped_total)}
    with observer.lock:
        tracks = sorted(((v[1], v[0], k) for k, v in observer.vehicle_tracks.items() if v[2] >= 10), reverse=True)
    for last, first, (camera_id, track_id) in tracks[:10]:
        request = QueryById.Request(id_kind=QueryById.Request.ID_TRACK, camera_id=camera_id, id=track_id, k=3,
                                    rerank=True)
        request.filter.end_time.sec, request.filter.end_time.nanosec = divmod(max(first - 1_000_000_000, 1),
                                                                              1_000_000_000)
        response = _call(observer.node, QueryById, f"{ns}/retrieval/query_by_id", request)
        if response is None or response.status.code != 0 or not response.hits:
            continue
        hit = response.hits[0]
        report["drive_in_out_query"] = {
            "query": {"camera_id": camera_id, "track_id": track_id},
            "answer": {"item_id": hit.item_id, "camera_id": hit.metadata.camera_id,
                       "track_id": int(hit.metadata.track_id), "global_id": int(hit.metadata.global_id),
                       "seconds_before_query": round((first - (hit.metadata.stamp.sec * 1_000_000_000 +
                                                               hit.metadata.stamp.nanosec)) / 1e9, 1),
                       "score": round(float(hit.score_final), 3), "moved_by": list(hit.moved_by),
                       "thumbnail_uri": hit.metadata.thumbnail_uri}}
        break
    return report


def run_demo_session(specs, *, duration: float, startup_timeout: float, tracking: bool, monitor: bool,
                     namespace: str = "", respawn: RespawnPolicy | None = None, log=print,
                     record_dir: str | None = None, record_topics: list[str] | None = None) -> dict:
    """Run the graph, wait until every camera delivers (tracks when ``tracking``), then count for ``duration``
    seconds; returns what arrived per camera, the monitor's view, and the runner's failures and restarts.
    With ``record_dir``, ``record_topics`` are recorded there (MCAP) while counting."""
    import rclpy
    import rclpy.executors

    rclpy.init(args=[])
    runner = GraphRunner(specs, respawn=respawn)
    forward_signals(runner)
    observer = GraphObserver(rclpy, specs, namespace)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(observer.node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    runner.start()
    spin.start()
    log(f"[demo] {len(specs)} nodes; waiting for the first {'tracks' if tracking else 'frames'} of every camera "
        f"(model loading)")
    started = time.monotonic()
    alive = True
    writer = recorder = None
    while alive and not observer.ready(tracking) and time.monotonic() - started < startup_timeout:
        alive = runner.wait(0.2)
    startup_s = time.monotonic() - started
    ready = observer.ready(tracking)
    if ready:
        log(f"[demo] every camera delivered after {startup_s:.1f} s; counting for {duration:.0f} s")
        observer.restart()
        if record_dir is not None and record_topics:
            from perception_nodes.bagio import BagWriter
            from perception_nodes.ros.bag import BagRecorder

            writer = BagWriter(record_dir)
            recorder = BagRecorder(observer.node, writer, record_topics)
        alive = alive and runner.wait(duration)
    else:
        log(f"[demo] not every camera delivered within {startup_timeout:.0f} s")
    health = query_monitor(observer.node, namespace) if monitor else {"ok": True}
    cameras = observer.report()
    localization = observer.localization_report()
    calibration = observer.calibration_report()
    risk = observer.risk_report()
    retrieval = query_retrieval(observer)
    executor.shutdown(timeout_sec=1.0)
    spin.join(timeout=5.0)  # no spinning thread may outlive the context
    recorded = None
    if writer is not None:
        writer.close()
        recorded = {"path": str(record_dir), "messages": dict(sorted(recorder.counts.items()))}
    runner.stop()
    observer.node.destroy_node()
    rclpy.shutdown()
    ok = ready and alive and not runner.given_up and all(c["frames"] > 0 for c in cameras.values()) and \
        health.get("ok", False) and (not tracking or all(c["track_messages"] > 0 for c in cameras.values()))
    if localization is not None:
        ok = ok and localization["object_messages"] > 0
    if risk is not None:
        ok = ok and risk["assessments"] > 0
    if retrieval is not None:
        ok = ok and retrieval.get("items", 0) > 0
    return {"ok": bool(ok), "startup_s": round(startup_s, 1), "duration_s": duration, "cameras": cameras,
            **({"localization": localization} if localization is not None else {}),
            **({"calibration_health": calibration} if calibration is not None else {}),
            **({"risk": risk} if risk is not None else {}),
            **({"retrieval": retrieval} if retrieval is not None else {}),
            **({"recorded": recorded} if recorded is not None else {}),
            "monitor": health, "failed_nodes": sorted({f.node for f in runner.failures}),
            "restarts": runner.restarts, "given_up": runner.given_up}
