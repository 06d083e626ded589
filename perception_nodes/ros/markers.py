"""RViz markers of the map: objects (footprints, ids, velocity arrows, covariance ellipses), camera frustums,
the site's zones and stalls (visualization_msgs/MarkerArray)."""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

CLASS_COLORS = {0: (0.2, 0.5, 1.0), 1: (0.6, 0.3, 1.0), 2: (1.0, 0.6, 0.1), 3: (0.2, 0.9, 0.4), 4: (0.7, 0.7, 0.7)}
ZONE_COLORS = {"parking": (0.3, 0.6, 1.0), "walkway": (0.9, 0.9, 0.2), "restricted": (1.0, 0.2, 0.2),
               "driving": (0.6, 0.6, 0.6), "loading": (1.0, 0.5, 0.0)}


def _color(rgb, alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def _yaw_quaternion(marker: Marker, yaw: float) -> None:
    marker.pose.orientation.z = math.sin(yaw / 2)
    marker.pose.orientation.w = math.cos(yaw / 2)


def object_markers(header, objects, lifetime_s: float = 0.5) -> MarkerArray:
    """Markers of LocalizedObject messages: footprint box, id text, velocity arrow, 2-sigma covariance ellipse.
    Coasting objects are drawn translucent."""
    out = MarkerArray()
    clear = Marker(header=header, action=Marker.DELETEALL)
    out.markers.append(clear)
    for obj in objects:
        rgb = CLASS_COLORS.get(int(obj.class_id), (0.7, 0.7, 0.7))
        alpha = 0.35 if obj.state == obj.STATE_COASTING else 0.8
        gid = int(obj.global_id)
        box = Marker(header=header, ns="footprints", id=gid, type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = obj.position
        _yaw_quaternion(box, float(obj.heading))
        box.scale.x, box.scale.y, box.scale.z = (max(float(v), 0.05) for v in (obj.extent.x, obj.extent.y, obj.extent.z))
        box.color = _color(rgb, alpha)
        text = Marker(header=header, ns="ids", id=gid, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position.x, text.pose.position.y = obj.position.x, obj.position.y
        text.pose.position.z = obj.position.z * 2 + 0.6
        text.scale.z = 0.8
        text.color = _color((1, 1, 1), 1.0)
        text.text = f"{gid} {obj.class_name}" + (" (coasting)" if obj.state == obj.STATE_COASTING else "")
        arrow = Marker(header=header, ns="velocity", id=gid, type=Marker.ARROW, action=Marker.ADD)
        start = Point(x=obj.position.x, y=obj.position.y, z=0.1)
        arrow.points = [start, Point(x=obj.position.x + obj.velocity.x, y=obj.position.y + obj.velocity.y, z=0.1)]
        arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.15, 0.3, 0.3
        arrow.color = _color(rgb, 1.0)
        ellipse = Marker(header=header, ns="covariance", id=gid, type=Marker.CYLINDER, action=Marker.ADD)
        cov = np.array(obj.position_covariance, dtype=np.float64).reshape(3, 3)[:2, :2]
        values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
        values = np.maximum(values, 1e-6)
        ellipse.pose.position.x, ellipse.pose.position.y, ellipse.pose.position.z = obj.position.x, obj.position.y, 0.02
        _yaw_quaternion(ellipse, math.atan2(vectors[1, 1], vectors[0, 1]))
        ellipse.scale.x = float(4 * math.sqrt(values[1]))  # 2 sigma each way along the major axis
        ellipse.scale.y = float(4 * math.sqrt(values[0]))
        ellipse.scale.z = 0.02
        ellipse.color = _color(rgb, 0.3)
        for marker in (box, text, arrow, ellipse):
            marker.lifetime.sec, marker.lifetime.nanosec = int(lifetime_s), int((lifetime_s % 1) * 1e9)
            out.markers.append(marker)
    return out


def _polygon_marker(header, ns: str, index: int, points, rgb, alpha=0.9, width=0.08, z=0.03) -> Marker:
    marker = Marker(header=header, ns=ns, id=index, type=Marker.LINE_STRIP, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.points = [Point(x=float(x), y=float(y), z=z) for x, y in list(points) + [points[0]]]
    marker.scale.x = width
    marker.color = _color(rgb, alpha)
    return marker


def site_markers(header, semantic_map, occupied: dict[str, bool] | None = None) -> MarkerArray:
    """Zones (outlines by kind), stalls (green free, red occupied, grey unknown), lanes and gates."""
    out = MarkerArray()
    for i, zone in enumerate(semantic_map.zones):
        kind = getattr(zone.kind, "value", str(zone.kind))
        out.markers.append(_polygon_marker(header, "zones", i, zone.polygon, ZONE_COLORS.get(kind, (0.8, 0.8, 0.8)),
                                           0.6, 0.05))
    for i, stall in enumerate(semantic_map.stalls):
        state = None if occupied is None else occupied.get(stall.id)
        rgb = (0.6, 0.6, 0.6) if state is None else ((1.0, 0.2, 0.2) if state else (0.2, 1.0, 0.3))
        out.markers.append(_polygon_marker(header, "stalls", i, stall.polygon, rgb, 0.9, 0.1, 0.05))
    for i, lane in enumerate(semantic_map.lanes):
        marker = Marker(header=header, ns="lanes", id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
        marker.pose.orientation.w = 1.0
        marker.points = [Point(x=float(x), y=float(y), z=0.02) for x, y in lane.polyline]
        marker.scale.x = 0.06
        marker.color = _color((1.0, 0.85, 0.2), 0.7)
        out.markers.append(marker)
    return out


def frustum_marker(header, index: int, camera, far_m: float = 30.0) -> Marker:
    """A camera's field of view as lines from its optical centre to the image corners' ground points
    (or ``far_m`` along the ray when a corner looks above the horizon). ``camera``: a CameraGeometry."""
    marker = Marker(header=header, ns="frustums", id=index, type=Marker.LINE_LIST, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    corners = np.array([[0, 0], [camera.width - 1, 0], [camera.width - 1, camera.height - 1],
                        [0, camera.height - 1]], dtype=np.float64)
    ground, valid = camera.intersect_plane(corners, 0.0)
    rays = camera.rays(corners)
    origin = camera.position
    ends = [ground[k] if valid[k] and np.linalg.norm(ground[k] - origin) < far_m * 3 else origin + rays[k] * far_m
            for k in range(4)]
    o = Point(x=float(origin[0]), y=float(origin[1]), z=float(origin[2]))
    for k in range(4):
        a = Point(x=float(ends[k][0]), y=float(ends[k][1]), z=float(ends[k][2]))
        b = Point(x=float(ends[(k + 1) % 4][0]), y=float(ends[(k + 1) % 4][1]), z=float(ends[(k + 1) % 4][2]))
        marker.points += [o, a, a, b]
    marker.scale.x = 0.05
    marker.color = _color((0.9, 0.9, 0.9), 0.8)
    return marker
