"""`perception render BAG --site S --out DIR`: a recorded run as pictures (no ROS: the bag is read with rosbags).

For every ``every``-th objects message: a bird's-eye PNG (``bev_NNNNN.png``) and, where the bag holds camera
images, a mosaic of every camera's latest frame with its tracks drawn (``cameras_NNNNN.png``); both also as
videos (``bev.mp4``, ``cameras.mp4``). Messages are told apart by type, so any namespace or remapping works.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

from perception_nodes.boxes import xyxy_of
from perception_nodes.errors import BagError
from perception_nodes.monitoring.bev import BirdsEyeView, ObjectView, VideoOut, annotate, mosaic, site_cameras
from perception_nodes.site.manifest import SiteManifest

OBJECTS = "perception_nodes/msg/LocalizedObjectArray"
SITE_STATE = "perception_nodes/msg/SiteState"
TRACKS = "perception_nodes/msg/TrackArray"
IMAGE = "sensor_msgs/msg/Image"
OCCUPIED = 2  # StallState.OCCUPANCY_OCCUPIED
FREE = 1


def _camera_of(topic: str) -> str:
    parts = [p for p in topic.split("/") if p]
    return parts[-2] if len(parts) >= 2 else topic


def render_bag(bag: str | Path, site: SiteManifest, out: str | Path, every: int = 1, max_frames: int = 0,
               fps: float = 5.0, px_per_m: float = 10.0, log=print) -> dict:
    from perception_nodes.bagio import read_messages, typestore
    from perception_nodes.image_codec import image_to_bgr8

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    view = BirdsEyeView(site, site_cameras(site), px_per_m=px_per_m)
    store = typestore()
    bev_video, camera_video = VideoOut(out / "bev.mp4", fps), VideoOut(out / "cameras.mp4", fps)
    latest_image: dict[str, tuple] = {}
    latest_tracks: dict[str, object] = {}
    occupied: dict[str, bool] = {}
    counts = {"objects_messages": 0, "bev_frames": 0, "camera_frames": 0, "unreadable": 0}
    first_stamp = None
    try:
        for message in read_messages(bag):
            if message.msgtype not in (OBJECTS, SITE_STATE, TRACKS, IMAGE):
                continue
            try:
                msg = store.deserialize_cdr(message.data, message.msgtype)
            except Exception:  # noqa: BLE001 - a corrupt message is counted and skipped, never the run
                counts["unreadable"] += 1
                continue
            if message.msgtype == IMAGE:
                # Kept by stamp: tracks arrive after their image, and are drawn on the frame they came from.
                images = latest_image.setdefault(_camera_of(message.topic), deque(maxlen=64))
                images.append((msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, msg))
            elif message.msgtype == TRACKS:
                latest_tracks[_camera_of(message.topic)] = msg
            elif message.msgtype == SITE_STATE:
                occupied = {s.stall_id: s.occupancy == OCCUPIED for s in msg.stalls
                            if s.occupancy in (OCCUPIED, FREE)}
            else:
                counts["objects_messages"] += 1
                if (counts["objects_messages"] - 1) % max(1, every):
                    continue
                if max_frames and counts["bev_frames"] >= max_frames:
                    break
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                first_stamp = stamp if first_stamp is None else first_stamp
                objects = [ObjectView.from_msg(o) for o in msg.objects]
                frame = view.render(objects, f"t = {stamp - first_stamp:6.1f} s   {len(objects)} objects", occupied)
                index = counts["bev_frames"]
                _write_png(out / f"bev_{index:05d}.png", frame)
                bev_video.write(frame)
                counts["bev_frames"] += 1
                if latest_image:
                    tiles = []
                    for cam in sorted(latest_image):
                        tracks = latest_tracks.get(cam)
                        image_msg = _frame_of(latest_image[cam], tracks)
                        if image_msg is None:
                            continue
                        try:
                            image = image_to_bgr8(image_msg)
                        except Exception:  # noqa: BLE001 - an undecodable image leaves its tile out
                            counts["unreadable"] += 1
                            continue
                        boxes = [(xyxy_of(t.box), int(t.track_id), t.class_name)
                                 for t in (tracks.tracks if tracks else [])]
                        tiles.append(annotate(image, boxes, cam))
                    if tiles:
                        grid = mosaic(tiles)
                        _write_png(out / f"cameras_{index:05d}.png", grid)
                        camera_video.write(grid)
                        counts["camera_frames"] += 1
    except (OSError, ValueError) as exc:
        raise BagError(f"{bag}: {exc}") from None
    finally:
        bev_video.close()
        camera_video.close()
    if counts["objects_messages"] == 0:
        raise BagError(f"{bag} holds no {OBJECTS} messages (record the localizer's objects topic)")
    videos = [str(v.path) for v in (bev_video, camera_video) if v.frames]
    log(f"[render] {counts['bev_frames']} bird's-eye frames, {counts['camera_frames']} camera mosaics in {out}; "
        f"videos: {', '.join(videos) or 'none'}")
    return {**counts, "out": str(out), "videos": videos}


def _frame_of(images: deque, tracks):
    """The image the tracks were computed on; without tracks (or once that image is gone), none is drawn."""
    if tracks is None:
        return images[-1][1] if images else None
    stamp = tracks.header.stamp.sec * 1_000_000_000 + tracks.header.stamp.nanosec
    return next((msg for image_stamp, msg in reversed(images) if image_stamp == stamp), None)


def _write_png(path: Path, image) -> None:
    import cv2

    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
