"""compat/vision_msgs matches the vision_msgs 4.x message definitions field for field (names, types, order), so
its type hashes are the real package's and real vision_msgs consumers read what the nodes publish."""
import pytest

pytestmark = pytest.mark.node  # needs the built interfaces

# From the vision_msgs 4.x documentation (ros-perception/vision_msgs, ROS 2 branch).
VISION_MSGS_4 = {
    "Point2D": {"x": "double", "y": "double"},
    "Pose2D": {"position": "vision_msgs/Point2D", "theta": "double"},
    "BoundingBox2D": {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
    "BoundingBox2DArray": {"header": "std_msgs/Header", "boxes": "sequence<vision_msgs/BoundingBox2D>"},
    "BoundingBox3D": {"center": "geometry_msgs/Pose", "size": "geometry_msgs/Vector3"},
    "BoundingBox3DArray": {"header": "std_msgs/Header", "boxes": "sequence<vision_msgs/BoundingBox3D>"},
    "ObjectHypothesis": {"class_id": "string", "score": "double"},
    "ObjectHypothesisWithPose": {"hypothesis": "vision_msgs/ObjectHypothesis",
                                 "pose": "geometry_msgs/PoseWithCovariance"},
    "Classification": {"header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesis>"},
    "Detection2D": {"header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox2D", "id": "string"},
    "Detection2DArray": {"header": "std_msgs/Header", "detections": "sequence<vision_msgs/Detection2D>"},
    "Detection3D": {"header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox3D", "id": "string"},
    "Detection3DArray": {"header": "std_msgs/Header", "detections": "sequence<vision_msgs/Detection3D>"},
    "VisionClass": {"class_id": "uint16", "class_name": "string"},
    "LabelInfo": {"header": "std_msgs/Header", "class_map": "sequence<vision_msgs/VisionClass>", "threshold": "float"},
    "VisionInfo": {"header": "std_msgs/Header", "method": "string", "database_location": "string",
                   "database_version": "int32"},
}


@pytest.mark.parametrize("name", sorted(VISION_MSGS_4))
def test_fields_match_vision_msgs_4(name):
    import vision_msgs.msg

    fields = getattr(vision_msgs.msg, name).get_fields_and_field_types()
    assert list(fields.items()) == list(VISION_MSGS_4[name].items())


def test_detections_convert_to_detection2d_with_track_ids():
    from perception_nodes.msg import Track, TrackArray
    from perception_nodes.ros.convert import to_vision_msgs

    tracks = TrackArray(camera_id="cam0")
    tracks.header.stamp.sec, tracks.header.frame_id = 7, "cam0_optical_frame"
    track = Track(track_id=42, class_id=2, class_name="person", score=0.8)
    track.box.center_x, track.box.center_y, track.box.width, track.box.height = 100.0, 50.0, 20.0, 40.0
    tracks.tracks.append(track)
    out = to_vision_msgs(tracks, ids=["42"])
    assert out.header.stamp.sec == 7 and out.header.frame_id == "cam0_optical_frame"
    det = out.detections[0]
    assert det.id == "42" and det.results[0].hypothesis.class_id == "person"
    assert det.results[0].hypothesis.score == pytest.approx(0.8)
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y) == \
        (100.0, 50.0, 20.0, 40.0)
