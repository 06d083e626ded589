"""BoxMOT trackers as FrameTrackers, fed exactly what our tracker is fed (peer comparison).

BoxMOT is an optional peer: it is installed by `make setup` (requirements-peers.txt)
and imported only here.
"""
from __future__ import annotations

import logging

import numpy as np

from perception_nodes.tracking.evaluation import FrameData

PEERS = ("bytetrack", "botsort", "ocsort")


def _make_boxmot(name: str, fps: float):
    # BoxMOT logs every construction at INFO; keep eval output readable.
    logging.getLogger("boxmot").setLevel(logging.WARNING)
    try:
        from loguru import logger as _loguru  # older BoxMOT releases log through loguru

        _loguru.remove()
    except ImportError:
        pass
    from boxmot import BotSort, ByteTrack, OcSort

    frame_rate = max(1, int(round(fps)))
    if name == "bytetrack":
        return ByteTrack(frame_rate=frame_rate)
    if name == "botsort":
        # Static cameras: no camera-motion compensation; no ReID model (none can be downloaded here).
        return BotSort(use_embeddings=False, use_cmc=False, frame_rate=frame_rate, device="cpu")
    if name == "ocsort":
        return OcSort()
    raise ValueError(f"unknown peer tracker {name!r}; one of {PEERS}")


def peer_factory(name: str, fps: float, image_size: tuple[int, int]):
    blank = np.zeros((image_size[1], image_size[0], 3), dtype=np.uint8)

    def make():
        tracker = _make_boxmot(name, fps)

        def step(frame: FrameData):
            image = frame.image if frame.image is not None else blank
            out = tracker.update(frame.detections.astype(np.float32) if len(frame.detections) else
                                 np.zeros((0, 6), np.float32), image)
            out = np.asarray(out).reshape(-1, 8) if np.size(out) else np.zeros((0, 8))
            return out[:, 4].astype(int), out[:, :4]

        return step

    return make
