"""Conversions between our messages and the standard ones published beside them."""
from __future__ import annotations

from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose


def to_vision_msgs(detections, ids: list[str] | None = None) -> Detection2DArray:
    """A DetectionArray (or TrackArray, with ``ids``) as vision_msgs/Detection2DArray: the same stamp and frame;
    one hypothesis per object, class_id = the site class name, score = the detector's score; ``id`` = the
    track id where there is one."""
    out = Detection2DArray(header=detections.header)
    items = detections.detections if hasattr(detections, "detections") else detections.tracks
    for index, item in enumerate(items):
        det = Detection2D(header=detections.header, id=ids[index] if ids else "")
        det.bbox.center.position.x, det.bbox.center.position.y = float(item.box.center_x), float(item.box.center_y)
        det.bbox.size_x, det.bbox.size_y = float(item.box.width), float(item.box.height)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = item.class_name or str(item.class_id)
        hypothesis.hypothesis.score = float(item.score)
        det.results.append(hypothesis)
        out.detections.append(det)
    return out
