"""BoxMOT trackers as FrameTrackers, fed exactly what our tracker is fed (peer comparison).

BoxMOT is an optional peer: it is installed by `make setup` (requirements-peers.txt)
and imported only here.
"""
from __future__ import annotations

import logging

import numpy as np

from perception_nodes.evaluation.mot import FrameData

PEERS = ("bytetrack", "botsort", "ocsort")


def _make_boxmot(name: str, fps: float, with_embeddings: bool = False):
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
        # Static cameras: no camera-motion compensation. No ReID model can be downloaded here; when the
        # evaluation computes appearance embeddings, BoT-SORT gets the same ones our tracker gets.
        return BotSort(use_embeddings=with_embeddings, use_cmc=False, frame_rate=frame_rate, device="cpu")
    if name == "ocsort":
        return OcSort()
    raise ValueError(f"unknown peer tracker {name!r}; one of {PEERS}")


# Of the peers, only BoT-SORT has an appearance term; ByteTrack and OC-SORT are motion-only by design.
USES_EMBEDDINGS = {"botsort"}


def _with_embeddings(frame: FrameData, index: int):
    """BoxMOT's Detections (boxes, scores, classes, embeddings) for one frame."""
    import torch
    from boxmot.structures.detections import Detections
    from boxmot.structures.geometry import Boxes

    dets = frame.detections.astype(np.float32).reshape(-1, 6)
    embeddings = np.asarray(frame.embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(dets):
        # Rows given flat. (A frame without detections has (0, dim) rows already: numpy cannot infer a row
        # length from an empty array, so it is only reshaped when it is not in that form.)
        embeddings = embeddings.reshape(len(dets), -1) if len(dets) else embeddings.reshape(0, 0)
    embeddings = embeddings.copy()
    blank = ~np.any(embeddings != 0, axis=1)
    if blank.any():
        # A detection without appearance (a box too small to sample) gets the same neutral vector as any other
        # such detection; BoxMOT requires every row to carry one.
        embeddings[blank] = 1.0 / np.sqrt(embeddings.shape[1])
    return Detections(geometry=Boxes(torch.from_numpy(dets[:, :4].copy())), scores=torch.from_numpy(dets[:, 4].copy()),
                      class_ids=torch.from_numpy(dets[:, 5].astype(np.int64)), sample_id=f"frame{index}",
                      embeddings=torch.from_numpy(embeddings))


def peer_factory(name: str, fps: float, image_size: tuple[int, int], with_embeddings: bool = False):
    """A FrameTracker over a BoxMOT tracker; ``with_embeddings`` feeds BoT-SORT the frames' embeddings."""
    blank = np.zeros((image_size[1], image_size[0], 3), dtype=np.uint8)
    appearance = with_embeddings and name in USES_EMBEDDINGS

    def make():
        tracker = _make_boxmot(name, fps, appearance)
        frames = 0

        def step(frame: FrameData):
            nonlocal frames
            frames += 1
            image = frame.image if frame.image is not None else blank
            if appearance:
                if frame.embeddings is None:
                    raise ValueError(f"{name} was built to use embeddings; frame {frames} has none")
                tracks = tracker.update(_with_embeddings(frame, frames), image)
                return tracks.track_ids.numpy().astype(int), tracks.geometry.values.numpy().reshape(-1, 4)
            out = tracker.update(frame.detections.astype(np.float32) if len(frame.detections) else
                                 np.zeros((0, 6), np.float32), image)
            out = np.asarray(out).reshape(-1, 8) if np.size(out) else np.zeros((0, 8))
            return out[:, 4].astype(int), out[:, :4]

        return step

    return make
