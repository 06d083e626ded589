"""Detector node: ultralytics YOLO on every camera, one batched forward pass per step.

Lifecycle node (the model is the expensive resource): configure loads the
registered model (name@version, sha256-checked; a missing or corrupt model fails
the transition with the reason, unless a fallback loads), activate starts the
worker. ``autostart`` drives both transitions itself where no lifecycle manager runs.

For each camera id in ``cameras``:
  subscribes <cam>/image_raw                  sensor_msgs/Image (qos.IMAGE, or BEST_EFFORT for a camera whose
                                              ``image_qos`` is sensor_data; overridable per topic)
  publishes  <cam>/detections                 perception_nodes/DetectionArray (source stamp + frame)
             <cam>/detections_2d              vision_msgs/Detection2DArray, the same detections (class name as
                                              the hypothesis' class_id, as yolo_ros and Isaac ROS consumers read it)
             <cam>/detections/shadow          shadow model's detections (shadow mode)
             <cam>/detections/image           annotated debug image (publish_debug_image)
  ~/shadow_agreement                          std_msgs/Float64: mean F1 of shadow vs primary over the last
                                              window, after every shadow pass
Drift: every frame's features go to a drift monitor holding the running model's reference (monitoring/drift.py,
config/drift.yaml); every ``drift_period_s`` the statistics are published in health (``drift.<feature>`` and
``drift_threshold.<feature>`` values) and a drifted feature turns the health WARN with its name.
Capture (``capture_dir``): frames where a tracker's proxy fired (<cam>/capture_request), the drift monitor
flagged, or the shadow disagreed are written with the reason, the model and the synthetic ground truth where a
camera publishes it (<cam>/ground_truth/detections) into a bounded bag (monitoring/capture.py), for
`perception train detector --extra-data`.
Services: ~/swap_model (perception_nodes/SwapModel): the new model loads on the runtime's loader thread while
the current one keeps serving and the executor keeps taking images in; the reply comes once it serves.

``class_id`` is always a site class (taxonomy.SiteClass): ``class_map`` maps the
model's classes onto the site taxonomy, so a user's model trained on other
classes (e.g. 80 COCO classes) publishes the same ids as the shipped model.
The image callbacks only keep the newest frame of each camera (older ones are
dropped and counted); a worker thread batches the newest frame of every camera
into one forward pass, off the executor (detection/batching.py: an idle worker
waits up to ``batch_wait_ms`` for the other live cameras of a step; when more
cameras wait than a pass takes, ``camera_priorities`` weigh how long each waited).
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import Float64
from vision_msgs.msg import Detection2DArray

from perception_nodes.boxes import set_xyxy
from perception_nodes.detection.backend import resolve_cpu_streams
from perception_nodes.detection.batching import FrameSlots
from perception_nodes.detection.registry import DEFAULT_DETECTOR_REF, ModelError, ModelRegistry
from perception_nodes.detection.runtime import DetectorRuntime, RuntimeConfig, default_loader
from perception_nodes.errors import PerceptionError
from perception_nodes.image_codec import image_to_bgr8, numpy_to_image
from perception_nodes.monitoring.drift import DriftMonitor, reduce_frame
from perception_nodes.ros import qos
from perception_nodes.ros.convert import to_vision_msgs
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import stamp_nanoseconds, stamp_seconds
from perception_nodes.stats import NodeCounters
from perception_nodes.taxonomy import SITE_CLASS_NAMES, UnmappedPolicy


class DetectorNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("detector", **kwargs)
        from perception_nodes.msg import DetectionArray, NodeHealth

        self._DetectionArray, self._NodeHealth = DetectionArray, NodeHealth
        params = ParameterSet(self)
        self.cameras = list(params.declare("cameras", ["cam0"], "Camera ids; topics <cam>/image_raw -> <cam>/detections.",
                                           read_only=True))
        priorities = list(params.declare(
            "camera_priorities", [0], "Per camera (parallel to cameras), 1..10: a frame of a priority-p camera counts "
            "as having waited p times as long when more cameras wait than a pass takes; [0]: all equal.",
            read_only=True, validator=lambda v: self._check_parallel("camera_priorities", v, lambda x: 0 <= x <= 10)))
        self.priorities = {cam: max(1, int(p)) for cam, p in zip(self.cameras, priorities)} if any(priorities) else {}
        image_qos = list(params.declare(
            "image_qos", [""], "Per camera (parallel to cameras): reliable or sensor_data, matching the camera's "
            "publisher; ['']: reliable for all.", read_only=True,
            validator=lambda v: self._check_parallel("image_qos", v, lambda x: x in ("",) + qos.IMAGE_QOS_CHOICES)))
        self.image_qos = {cam: (q or "reliable") for cam, q in zip(self.cameras, image_qos)} \
            if any(image_qos) else {cam: "reliable" for cam in self.cameras}
        self.config = RuntimeConfig(
            model=params.declare("model", DEFAULT_DETECTOR_REF, "Registered model name@version (name: highest version).",
                                 read_only=True),
            fallback_model=params.declare("fallback_model", "", "Model used when the primary fails or is too slow.",
                                          read_only=True),
            fallback_imgsz=params.declare("fallback_imgsz", 0, "Or: the primary at this smaller input size (0: no).",
                                          minimum=0, maximum=4096, read_only=True),
            imgsz=params.declare("imgsz", 0, "Inference input size; 0: the model's.", minimum=0, maximum=4096,
                                 read_only=True),
            conf=params.declare("confidence", 0.25, "Minimum detection score.", minimum=0.0, maximum=1.0,
                                read_only=True),
            iou=params.declare("iou", 0.7, "NMS IoU threshold.", minimum=0.0, maximum=1.0, read_only=True),
            device=params.declare("device", "cpu", "cpu or cuda:N.", read_only=True,
                                  validator=lambda v: None if v == "cpu" or v.startswith("cuda") else "cpu or cuda:N"),
            half=params.declare("half", False, "FP16 inference (GPU only).", read_only=True),
            latency_budget_ms=params.declare("latency_budget_ms", 0.0, "p95 batch latency budget; 0: none.",
                                             minimum=0.0, maximum=60000.0, read_only=True),
            budget_frames=params.declare("budget_frames", 10, "K: batches over budget before falling back.",
                                         minimum=1, maximum=10000, read_only=True),
            shadow_model=params.declare("shadow_model", "", "Candidate model run in shadow mode.", read_only=True),
            shadow_fraction=params.declare("shadow_fraction", 0.0, "Fraction of batches the shadow model also runs.",
                                           minimum=0.0, maximum=1.0, read_only=True),
            class_map=tuple(c for c in params.declare(
                "class_map", [""], "Model class -> site class pairs 'model_name=site_name' (site classes: "
                f"{', '.join(SITE_CLASS_NAMES)}); ['']: model classes named like site classes map onto them.",
                read_only=True) if c),
            unmapped=params.declare("unmapped_classes", "drop", "Model classes the class map leaves out: dropped, "
                                    "or published as 'other'.", choices=tuple(u.value for u in UnmappedPolicy),
                                    read_only=True),
        )
        class_filter = params.declare("class_filter", [-1], "Class ids to keep; [-1]: all.", read_only=True)
        self.config.classes = tuple(int(c) for c in class_filter if int(c) >= 0)
        self.max_batch = params.declare("max_batch", 8, "Most frames in one forward pass.", minimum=1, maximum=64)
        # On a CPU one ONNX Runtime pass over a batch costs what single passes cost; sessions running side by
        # side (one per core) are what makes a batch cheaper there (detection/backend.py has the figures).
        cpu_streams = params.declare("cpu_streams", 0, "ONNX models on the CPU: sessions a batch is split over, "
                                     "running side by side (0: one per core, at most one per camera; 1: one "
                                     "session runs the whole batch). A single frame always uses every core.",
                                     minimum=0, maximum=64, read_only=True)
        self.config.cpu_streams = resolve_cpu_streams(cpu_streams, min(len(self.cameras), self.max_batch))
        # Unsynchronised cameras deliver a step's frames a few ms apart; an idle worker waits this long for the
        # other live cameras so the step runs as one batch (a busy worker finds its slots full and never waits).
        batch_wait_ms = params.declare("batch_wait_ms", 30.0, "Longest wait of an idle worker for the other live "
                                       "cameras' frames before running a partial batch; 0: never wait.",
                                       minimum=0.0, maximum=10000.0, read_only=True)
        self.publish_debug_image = params.declare("publish_debug_image", False, "Publish <cam>/detections/image.")
        embedding = params.declare("appearance_embedding", "", "Per-detection appearance embedding for the tracker: "
                                   "'' (none), 'hsv-hist' (colour histogram of the box) or a registered embedder "
                                   "name@version (e.g. reid-fleet@1, models/manifest.yaml).", read_only=True)
        self.embedder = None
        if embedding:
            from perception_nodes.retrieval.embedders import load_embedder

            # A missing or corrupt embedder fails start-up with the reason (run_node reports it).
            self.embedder = load_embedder(embedding)
            if getattr(self.embedder, "note", ""):
                self.get_logger().warning(self.embedder.note)
        self.drift_enabled = params.declare("drift_monitoring", True, "Compare what the detector sees (image "
                                            "brightness and contrast, scores, boxes, classes, embeddings, each "
                                            "camera's view) with the model's drift reference; results in health.",
                                            read_only=True)
        self.drift_config_path = params.declare("drift_config", "", "Drift rules; empty: config/drift.yaml.",
                                                read_only=True)
        self.view_reference_dir = params.declare(
            "view_reference_dir", "", "Folder of the cameras' stored reference views (<camera>.view.png, the site's "
            "calibration folder: perception drift view-reference); a camera without one is compared with its "
            "first frames; empty: every camera.", read_only=True)
        self.drift_period_s = params.declare("drift_period_s", 5.0, "Seconds (of image stamps) between drift "
                                             "evaluations.", minimum=0.5, maximum=3600.0, read_only=True)
        self.capture_dir = params.declare("capture_dir", "", "Write frames where a proxy or the drift monitor "
                                          "fired (with the reason, the model and any ground truth) into a new bag "
                                          "folder under this directory; empty: off.", read_only=True)
        self.capture_max_mb = params.declare("capture_max_mb", 500.0, "Size bound of the capture bag; past it "
                                             "frames are counted as dropped.", minimum=1.0, maximum=1e6,
                                             read_only=True)
        self.capture_min_interval_s = params.declare("capture_min_interval_s", 1.0, "Least time between two "
                                                     "captured frames of one camera.", minimum=0.0, maximum=3600.0)
        self.capture_drift_period_s = params.declare("capture_drift_period_s", 30.0, "While drifting: one frame "
                                                     "per camera per this period.", minimum=1.0, maximum=86400.0)
        self.capture_shadow_below = params.declare("capture_shadow_agreement_below", 0.5, "Capture a frame whose "
                                                   "shadow/primary F1 is below this.", minimum=0.0, maximum=1.0)
        self.autostart = params.declare("autostart", True, "Configure and activate at start-up.", read_only=True)
        self.manifest = params.declare("manifest", "", "Model manifest; empty: the package's models/manifest.yaml.",
                                       read_only=True)
        params.on_change(self._on_params)

        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self.runtime: DetectorRuntime | None = None
        # A camera is live (waited for) while its last frame is under a second old.
        self._slots: FrameSlots[Image] = FrameSlots(gather_s=batch_wait_ms / 1000.0, live_s=1.0,
                                                    priorities=self.priorities)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._running = False
        self._camera_publishers: dict[str, tuple] = {}
        self._entities: list = []  # what configure created, destroyed by cleanup
        self._shadow_pub = None
        self._status = (NodeHealth.LEVEL_OK, "")
        self.drift: DriftMonitor | None = None
        self._drift_model = ""  # the model whose reference the drift monitor holds
        self._drift_drifted: list[str] = []
        self._drift_next_s = 0.0
        self._drift_captured: dict[str, float] = {}
        self._capture = None
        self.health = HealthReporter(self, self.counters, status=self._health_status)
        if self.autostart:
            # One-shot timer: transitions run after construction, inside the executor.
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # -- lifecycle ------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as exc:  # noqa: BLE001 - rclpy would turn this into a silent ERROR transition
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._status = (self._NodeHealth.LEVEL_ERROR, f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE

    def _configure(self) -> TransitionCallbackReturn:
        try:
            registry = ModelRegistry(self.manifest or None)
            warn = lambda m: self.get_logger().warning(m)  # noqa: E731
            runtime = DetectorRuntime(self.config, default_loader(registry, self.config, log=warn), log=warn)
            runtime.start()
        except (ModelError, PerceptionError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._status = (self._NodeHealth.LEVEL_ERROR, f"no model: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.runtime = runtime
        self._registry = registry
        self._fallbacks_seen = runtime.fallbacks
        if runtime.fallbacks:
            self.counters.set("fallbacks", runtime.fallbacks)
        self._report_model()
        group = MutuallyExclusiveCallbackGroup()
        for cam in self.cameras:
            pubs = (self.create_lifecycle_publisher(self._DetectionArray, f"{cam}/detections", qos.RESULTS,
                                                    qos_overriding_options=qos.overridable()),
                    self.create_lifecycle_publisher(self._DetectionArray, f"{cam}/detections/shadow", qos.RESULTS,
                                                    qos_overriding_options=qos.overridable()),
                    self.create_lifecycle_publisher(Image, f"{cam}/detections/image", qos.IMAGE,
                                                    qos_overriding_options=qos.overridable()),
                    self.create_lifecycle_publisher(Detection2DArray, f"{cam}/detections_2d", qos.RESULTS,
                                                    qos_overriding_options=qos.overridable()))
            self._camera_publishers[cam] = pubs
            self._entities.extend(pubs)
            self._entities.append(self.create_subscription(
                Image, f"{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), qos.image_profile(self.image_qos[cam]),
                callback_group=group, qos_overriding_options=qos.overridable()))
        if self.capture_dir:
            self._start_capture(group)
        self._shadow_pub = self.create_lifecycle_publisher(Float64, "~/shadow_agreement", qos.RESULTS,
                                                           qos_overriding_options=qos.overridable())
        self._entities.append(self._shadow_pub)
        from perception_nodes.srv import SwapModel

        self._entities.append(self.create_service(SwapModel, "~/swap_model", self._swap,
                                                  callback_group=MutuallyExclusiveCallbackGroup()))
        self.get_logger().info(f"model registry {registry.manifest}")
        self.get_logger().info(f"configured with {self.runtime.primary.ref} for cameras {self.cameras} "
                               f"({self.runtime.primary.streams} CPU stream(s) per batch; classes "
                               f"{self.runtime.primary.class_map.describe()})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._stop.clear()
        self._slots.reopen()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="detector", daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Undo configure: the worker, every publisher, subscription and service it created, and the models
        (their threads and sessions), so configure can run again."""
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for entity in self._entities:
            destroy = {"Subscription": self.destroy_subscription, "Service": self.destroy_service}.get(
                type(entity).__name__, None)
            if destroy is None:  # lifecycle publishers
                self.destroy_lifecycle_publisher(entity)
            else:
                destroy(entity)
        self._entities.clear()
        self._camera_publishers.clear()
        self._shadow_pub = None
        self.drift, self._drift_model, self._drift_drifted = None, "", []
        self._close_capture()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    def _halt(self) -> None:
        self._running = False
        self._stop.set()
        self._slots.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def close(self) -> None:
        self._halt()
        self._close_capture()
        if self.runtime is not None:
            self.runtime.close()

    def _close_capture(self) -> None:
        """The capture bag's metadata is written on close."""
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    # -- parameters, service ------------------------------------------------------------------------
    def _on_params(self, changed: dict) -> None:
        self.max_batch = int(changed.get("max_batch", self.max_batch))
        self.publish_debug_image = bool(changed.get("publish_debug_image", self.publish_debug_image))

    def _report_model(self) -> None:
        rt = self.runtime
        if rt.fell_back:
            self._status = (self._NodeHealth.LEVEL_WARN, f"running fallback {rt.primary.ref}: {rt.fallback_reason}")
        else:
            self._status = (self._NodeHealth.LEVEL_OK, "")
        if self.drift_enabled:
            self._load_drift(rt.primary.ref)

    def _load_drift(self, running: str) -> None:
        """A drift monitor holding the running model's reference (the reference follows swaps and fallbacks).
        Without one, only each camera's view is watched, and the log says so."""
        model = "@".join(running.split("@")[:2])  # "name@version@imgsz" runs the same model at another size
        if model == self._drift_model and self.drift is not None:
            return
        from perception_nodes.monitoring.drift import DriftConfig, DriftReference, default_config_path

        try:
            config = DriftConfig.load(self.drift_config_path or default_config_path())
        except PerceptionError as exc:
            self.get_logger().error(f"drift monitoring off: {exc}")
            self.drift = None
            return
        reference = None
        try:
            path = self._registry.resolve(model).drift_reference_path()
            if path is None:
                self.get_logger().warning(f"{model} has no drift reference (perception drift reference --model "
                                          f"{model}): only the cameras' views are watched for drift")
            else:
                reference = DriftReference.load(path)
        except PerceptionError as exc:
            self.get_logger().warning(f"drift reference of {model} not loaded: {exc}")
        self.drift = DriftMonitor(reference, config, view_references=self._stored_views())
        self._drift_model = model
        self._drift_drifted = []

    def _stored_views(self) -> dict:
        """The cameras' stored reference views; a missing or unreadable one is logged and that camera falls back
        to its first frames."""
        from perception_nodes.monitoring.drift import load_view_reference, view_reference_path

        if not self.view_reference_dir:
            return {}
        views, missing = {}, []
        for cam in self.cameras:
            path = view_reference_path(self.view_reference_dir, cam)
            if not path.is_file():
                missing.append(cam)
                continue
            try:
                views[cam] = load_view_reference(path)
            except PerceptionError as exc:
                self.get_logger().warning(f"{cam}: stored reference view not used: {exc}")
                missing.append(cam)
        if missing:
            self.get_logger().info(f"no stored reference view for {missing} in {self.view_reference_dir} (perception "
                                   "drift view-reference --site S): their first frames are their reference")
        return views

    # -- capture for the next training round ---------------------------------------------------------
    def _start_capture(self, group) -> None:
        from pathlib import Path

        from perception_nodes.monitoring.capture import CaptureWriter, FrameRing
        from perception_nodes.msg import CaptureRequest

        folder = Path(self.capture_dir) / time.strftime("capture-%Y%m%d-%H%M%S")
        self._capture = CaptureWriter(folder, int(self.capture_max_mb * 1e6))
        self._ring = FrameRing(depth=10)
        self._last_capture: dict[str, float] = {}
        for cam in self.cameras:
            self._entities.append(self.create_subscription(
                CaptureRequest, f"{cam}/capture_request", self._on_capture_request, qos.RESULTS,
                callback_group=group, qos_overriding_options=qos.overridable()))
            # A synthetic camera's ground truth rides along, so captured frames can be trained on directly.
            self._entities.append(self.create_subscription(
                self._DetectionArray, f"{cam}/ground_truth/detections",
                lambda m, c=cam: self._ring.add_truth(c, stamp_nanoseconds(m.header.stamp), m), qos.RESULTS,
                callback_group=group, qos_overriding_options=qos.overridable()))
        self.get_logger().info(f"capturing frames where proxies or drift fire into {folder}")

    def _on_capture_request(self, request) -> None:
        self._capture_frame(request.camera_id, stamp_nanoseconds(request.header.stamp), request.reason,
                            request.detail)

    def _capture_frame(self, camera: str, stamp_ns: int, reason: str, detail: str = "") -> None:
        """Write one frame (found in the ring by its stamp) with its reason; rate-limited per camera."""
        from rclpy.serialization import serialize_message

        if self._capture is None:
            return
        now = time.monotonic()
        if now - self._last_capture.get(camera, -1e9) < self.capture_min_interval_s:
            self.counters.count("capture_rate_limited")
            return
        found = self._ring.find(camera, stamp_ns)
        if found is None:
            self._capture.counts.not_found += 1
            self.counters.count("capture_not_found")
            return
        stamp, frame, truth = found
        from perception_nodes.msg import CaptureRequest

        request = CaptureRequest(camera_id=camera, reason=reason,
                                 detail=f"{detail}; model {self.runtime.primary.ref if self.runtime else '?'}")
        request.header = frame.header
        try:
            written = self._capture.write(camera, stamp, serialize_message(frame),
                                          serialize_message(truth) if truth is not None else None,
                                          serialize_message(request))
        except OSError as exc:
            self.counters.on_error("capture")
            self.log.error("capture", f"capture not written: {exc}")
            return
        if written:
            self._last_capture[camera] = now
            self.counters.count(f"captured_{reason.split(':')[0]}")
        elif self._capture.counts.dropped_full:
            self.counters.set("capture_dropped_full", self._capture.counts.dropped_full)

    def _health_status(self) -> tuple[int, str]:
        level, message = self._status
        if self._drift_drifted:
            note = "drift: " + ", ".join(self._drift_drifted)
            return max(level, self._NodeHealth.LEVEL_WARN), f"{message}; {note}" if message else note
        return level, message

    def _observe_drift(self, frames, sources, results, embeddings_by_frame) -> None:
        if self.drift is None:
            return
        latest = 0.0
        for image, (cam, msg), rows, embeddings in zip(frames, sources, results, embeddings_by_frame):
            stamp = stamp_seconds(msg.header.stamp)
            latest = max(latest, stamp)
            self.drift.observe(cam, stamp, reduce_frame(image), np.asarray(rows).reshape(-1, 6), image.shape[1],
                               image.shape[0], embeddings)
        if latest < self._drift_next_s:
            return
        if latest < self._drift_next_s - 10 * self.drift_period_s:  # the stamps jumped back (a bag loop)
            self.drift = DriftMonitor(self.drift.reference, self.drift.config,
                                      view_references=self.drift.view_references)
        self._drift_next_s = latest + self.drift_period_s
        report = self.drift.evaluate(latest)
        values = {}
        for name, feature in report.features.items():
            if feature.statistic is not None:
                values[f"drift.{name}"] = feature.statistic
                values[f"drift_threshold.{name}"] = feature.threshold
        self.counters.set_values(values)
        if report.drifted != self._drift_drifted:
            self.get_logger().warning(f"drift: {', '.join(report.drifted) or 'none'} (was: "
                                      f"{', '.join(self._drift_drifted) or 'none'})")
        self._drift_drifted = report.drifted
        if report.drifted and self._capture is not None:
            now = time.monotonic()
            for cam, msg in sources:
                if now - self._drift_captured.get(cam, -1e9) >= self.capture_drift_period_s:
                    self._drift_captured[cam] = now
                    self._capture_frame(cam, stamp_nanoseconds(msg.header.stamp), "drift: " + ", ".join(report.drifted))

    def _check_parallel(self, name: str, values, valid) -> str | None:
        if list(values) in ([0], [""]):
            return None
        if len(values) != len(self.cameras):
            return f"{name} needs one entry per camera ({len(self.cameras)}), got {len(values)}"
        bad = [v for v in values if not valid(v)]
        return f"invalid entries {bad}" if bad else None

    async def _swap(self, request, response):
        """Load the requested model off the executor (images keep flowing to the current model), then reply."""
        from perception_nodes.msg import ServiceStatus

        if self.runtime is None:
            response.status.code, response.status.message = ServiceStatus.UNAVAILABLE, "node is not configured"
            return response
        pending = self.runtime.swap_async(request.model)
        while not pending.done():
            await _LoadPoll()
        try:
            model = pending.result()
        except ModelError as exc:
            response.status.code, response.status.message = ServiceStatus.INVALID_REQUEST, str(exc)
            response.active_model = self.runtime.primary.ref
            return response
        self.counters.count("swaps")
        self._report_model()
        self.get_logger().info(f"swapped to {model.ref}")
        response.status.code, response.active_model = ServiceStatus.OK, model.ref
        return response

    # -- data path ---------------------------------------------------------------------------------
    def _on_image(self, camera: str, msg: Image) -> None:
        if not self._running:
            return
        self.counters.on_received()
        if self._slots.put(camera, msg):
            self.counters.on_dropped(1, "superseded")  # a newer frame replaces one never processed
            self.counters.count(f"superseded_{camera}")  # per camera: who is losing frames under overload

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._slots.take(self.max_batch)
            if not batch:
                continue
            began = time.perf_counter()
            frames, sources = [], []
            for cam, msg in batch:
                try:
                    image = image_to_bgr8(msg)
                    if image.size == 0:
                        raise PerceptionError("zero-size image")
                    frames.append(image)
                    sources.append((cam, msg))
                except PerceptionError as exc:
                    self.counters.on_error("bad_image")
                    self.log.warn(f"bad_image_{cam}", f"{cam}: frame skipped: {exc}")
            if not frames:
                continue
            try:
                model, results, shadow = self.runtime.infer(frames)
            except Exception as exc:  # noqa: BLE001 - a failed pass drops the batch, the node goes on
                self.counters.on_error("inference")
                self.log.error("inference", f"inference failed: {exc}")
                continue
            elapsed = time.perf_counter() - began
            primary_ms = self.runtime.last_primary_ms
            self.counters.count("batches")  # before publishing: a subscriber that got the results sees the pass
            if self.runtime.fallbacks != self._fallbacks_seen:  # installed on the loader thread since the last pass
                self._fallbacks_seen = self.runtime.fallbacks
                self.counters.set("fallbacks", self._fallbacks_seen)
                self._report_model()
                self.get_logger().warning(f"fell back to {model.ref}: {self.runtime.fallback_reason}")
            if self._capture is not None:
                for cam, msg in sources:
                    self._ring.add_frame(cam, stamp_nanoseconds(msg.header.stamp), msg)
            embeddings_by_frame = []
            try:
                for index, ((cam, msg), rows) in enumerate(zip(sources, results)):
                    pubs = self._camera_publishers[cam]
                    embeddings = self.embedder.embed(frames[index], np.asarray(rows).reshape(-1, 6)[:, :4]) \
                        if self.embedder is not None else None
                    embeddings_by_frame.append(embeddings)
                    detections = self._to_msg(cam, msg, rows, model, embeddings)
                    self.counters.count(f"served_{cam}")
                    pubs[0].publish(detections)
                    pubs[3].publish(to_vision_msgs(detections))
                    if shadow is not None:
                        pubs[1].publish(self._to_msg(cam, msg, shadow[index], self.runtime.shadow))
                        if self._capture is not None:
                            f1 = self.runtime.last_shadow_agreements[index]
                            if f1 < self.capture_shadow_below:
                                self._capture_frame(cam, stamp_nanoseconds(msg.header.stamp), "shadow_disagreement",
                                                    f"shadow {self.runtime.shadow.ref} F1 {f1:.2f}")
                    if self.publish_debug_image:
                        pubs[2].publish(self._annotate(frames[index], rows, model, msg))
                    self.counters.on_processed(elapsed / len(sources))
            except Exception as exc:  # noqa: BLE001
                if not self.context.ok():
                    return  # ROS shut down (Ctrl-C) while this pass ran: its results have nowhere to go
                self.counters.on_error("publish")
                self.log.error("publish", f"publishing detections failed: {exc}")
                continue
            try:
                self._observe_drift(frames, sources, results, embeddings_by_frame)
            except Exception as exc:  # noqa: BLE001 - drift is an observer: it never stops detection
                self.counters.on_error("drift")
                self.log.error("drift", f"drift evaluation failed: {exc}")
            if shadow is not None:
                self.counters.count("shadow_batches")
                agreement = self.shadow_agreement
                if agreement is not None:
                    self._shadow_pub.publish(Float64(data=agreement))
                    self.counters.set("shadow_agreement_permille", int(round(agreement * 1000)))
                    self.counters.set_value("proxy.shadow_disagreement", 1.0 - agreement)
            # Only the primary's own pass counts against the budget (the shadow's pass is timed apart).
            if self.runtime.record_latency(primary_ms):
                self.get_logger().warning("latency budget exceeded: loading the fallback while the primary serves")

    def _to_msg(self, cam, source, rows, model, embeddings=None):
        from perception_nodes.msg import Detection

        out = self._DetectionArray(header=source.header, camera_id=cam, model=model.ref)
        for index, (x1, y1, x2, y2, score, cls) in enumerate(np.asarray(rows).reshape(-1, 6)):
            det = Detection(class_id=int(cls), score=float(score), class_name=SITE_CLASS_NAMES[int(cls)])
            set_xyxy(det.box, x1, y1, x2, y2)
            if embeddings is not None and np.any(embeddings[index]):
                det.embedding = embeddings[index].tolist()
                det.embedding_model = self.embedder.name
            out.detections.append(det)
        return out

    def _annotate(self, image, rows, model, source):
        import cv2

        canvas = image.copy()
        for x1, y1, x2, y2, score, cls in np.asarray(rows).reshape(-1, 6):
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), (0, 255, 0), 1)
            name = SITE_CLASS_NAMES[int(cls)]
            cv2.putText(canvas, f"{name} {score:.2f}", (int(x1), max(10, int(y1) - 2)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35, (0, 255, 0), 1)
        return numpy_to_image(canvas, "bgr8", header=source.header)

    @property
    def shadow_agreement(self) -> float | None:
        values = self.runtime.shadow_agreement if self.runtime else []
        return float(np.mean(values)) if values else None


class _LoadPoll:
    """Awaitable that hands the executor back for one spin. rclpy resumes a pending coroutine on every spin
    without waiting, so a short pause here keeps a swap that loads for seconds from spinning a core while the
    executor goes on taking images in between."""

    def __await__(self):
        time.sleep(0.005)
        yield


def main(args=None) -> int:
    return run_node(DetectorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
