"""Write a synthetic scene as a rosbag2 (MCAP) plus a ground-truth sidecar (pure Python).

Per camera the bag holds ``/<camera>/image_raw``, ``/<camera>/camera_info`` and
``/<camera>/ground_truth/detections``, stamped ``start_ns + frame / fps``. The
sidecar ``ground_truth.json`` holds the scene, the cameras (intrinsics and true
poses) and per frame the map-frame state of every object and every camera's
boxes, keyed by the same stamps.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from perception_nodes.bagio import BagWriter, typestore
from perception_nodes.calibration import CameraCalibration
from perception_nodes.errors import BagError
from perception_nodes.fileio import atomic_write_text
from perception_nodes.world import World
from perception_nodes.world.scene import Scene

GROUND_TRUTH_FILE = "ground_truth.json"
BAG_DIR = "bag"
DEFAULT_START_NS = 1_700_000_000_000_000_000


def _header(store, stamp_ns: int, frame_id: str):
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def write_scene(scene: Scene, out: str | os.PathLike, frames: int | None = None,
                start_ns: int = DEFAULT_START_NS) -> dict:
    """Render ``frames`` frames (default: the whole scene) of every camera into OUT/bag + OUT/ground_truth.json."""
    out = Path(out)
    if (out / BAG_DIR).exists():
        raise BagError(f"{out / BAG_DIR} already exists; choose a new --out")
    world = World(scene)
    count = scene.frame_count if frames is None else int(frames)
    store = typestore()
    T = store.types
    period_ns = int(round(1e9 / scene.fps))
    cameras_meta = []
    for cam in world.cameras:
        calib = CameraCalibration.from_camera_spec(cam.spec)
        cameras_meta.append({"id": cam.spec.id, "frame_id": cam.spec.optical_frame, "width": cam.spec.width,
                             "height": cam.spec.height, "K": calib.K.ravel().tolist(), "D": list(cam.spec.distortion),
                             "T_map_optical": cam.T_map_optical.matrix().tolist()})
    frames_meta = []
    seen_objects: set[int] = set()
    with BagWriter(out / BAG_DIR) as writer:
        for index in range(count):
            stamp = start_ns + index * period_ns
            states = world.object_states(index)
            frame_entry = {"index": index, "stamp_ns": stamp, "objects": [s.to_dict() for s in states], "cameras": {}}
            for ci, cam in enumerate(world.cameras):
                image, boxes = world.render(ci, index)
                frame_id = cam.spec.optical_frame
                header = _header(store, stamp, frame_id)
                ns = f"/{cam.spec.id}"
                img_msg = T["sensor_msgs/msg/Image"](header=header, height=image.shape[0], width=image.shape[1],
                                                    encoding="bgr8", is_bigendian=0, step=image.shape[1] * 3,
                                                    data=np.ascontiguousarray(image).reshape(-1))
                writer.write_message(f"{ns}/image_raw", "sensor_msgs/msg/Image", stamp, img_msg)
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=header, height=cam.spec.height, width=cam.spec.width, distortion_model="plumb_bob",
                    d=np.asarray(cam.spec.distortion, dtype=np.float64), k=cam.K.ravel().astype(np.float64),
                    r=np.eye(3).ravel(), p=np.hstack([cam.K, np.zeros((3, 1))]).ravel(),
                    binning_x=0, binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                writer.write_message(f"{ns}/camera_info", "sensor_msgs/msg/CameraInfo", stamp, info)
                detections = []
                for box in boxes:
                    x1, y1, x2, y2 = box.bbox
                    detections.append(T["perception_nodes/msg/Detection"](
                        box=T["perception_nodes/msg/BoundingBox2D"](center_x=(x1 + x2) / 2, center_y=(y1 + y2) / 2,
                                                                    width=x2 - x1, height=y2 - y1),
                        class_id=box.class_id, class_name=box.class_name, score=float(box.visible_fraction),
                        embedding=np.zeros(0, dtype=np.float32), embedding_model=""))
                    seen_objects.add(box.global_id)
                gt = T["perception_nodes/msg/DetectionArray"](header=header, camera_id=cam.spec.id,
                                                             model="ground_truth@synthetic", detections=detections)
                writer.write_message(f"{ns}/ground_truth/detections", "perception_nodes/msg/DetectionArray", stamp, gt)
                frame_entry["cameras"][cam.spec.id] = [b.to_dict() for b in boxes]
            frames_meta.append(frame_entry)
    sidecar = {"scene": scene.name, "scene_path": scene.source_path, "seed": scene.seed, "fps": scene.fps,
               "start_ns": start_ns, "frame_count": count, "cameras": cameras_meta, "frames": frames_meta}
    atomic_write_text(out / GROUND_TRUTH_FILE, json.dumps(sidecar, separators=(",", ":")))
    return {"out": str(out), "bag": str(out / BAG_DIR), "cameras": len(world.cameras), "frames": count,
            "objects": len(seen_objects), "messages": writer.count}


def load_ground_truth(out: str | os.PathLike) -> dict:
    """Read OUT/ground_truth.json; BagError if missing or damaged."""
    path = Path(out) / GROUND_TRUTH_FILE
    if not path.is_file():
        raise BagError(f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BagError(f"{path} is not valid JSON: {exc}") from None
    for key in ("frames", "cameras", "fps"):
        if key not in data:
            raise BagError(f"{path} has no '{key}'")
    return data
