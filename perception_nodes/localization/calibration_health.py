"""Calibration health from painted landmarks: is a camera still where its calibration says? (pure numpy + OpenCV)

Each camera's calibrated pose (the TF tree) and intrinsics (CameraInfo) project
the site's painted lines (``map.markings``: stall separators, lane edges) into
its image. A camera that was knocked (a bumped pole, a loose mount) sees those
lines somewhere else. For small angles a rotation of the camera moves the whole
image by about ``f * angle`` pixels, so the check is a search for the image
shift that best lays the projected lines onto what the image shows:

1. the image's thin bright structures: a white top-hat of the grey image (paint
   on asphalt), clipped, so large bright areas (sky, a white car) weigh little;
2. the projected lines: points every few centimetres along each marking,
   projected with the calibrated camera, kept where in front and in view;
3. the response summed along the projected lines for every shift within
   ``search_px`` (one correlation); the best shift, with a parabola through
   its neighbours for sub-pixel, converted to degrees by the focal length. A
   check counts only if the paint fixes the shift both ways: the fit's curvature
   at its peak must not be a ridge (one straight line fixes only the shift
   across it).

One check is noisy (cars park on the lines); the verdict is the median of the
last ``window`` checks: MISALIGNED when that exceeds ``warn_deg``, OK when it
is below, NOT_ENOUGH_LANDMARKS when too little of the paint is in view or the
best shift is not clearly better than the calibrated pose's own fit.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from perception_nodes.localization.lifting import CameraGeometry


class CalibrationState(IntEnum):
    """A camera's calibration verdict; 0 is never a verdict (nothing checked yet)."""

    UNKNOWN = 0
    OK = 1
    MISALIGNED = 2
    NOT_ENOUGH_LANDMARKS = 3


@dataclass
class CalibrationHealthParams:
    """Settings of the landmark check."""

    search_px: int = 48              # largest image shift searched (each way)
    sample_step_m: float = 0.05      # points along a marking
    tophat_px: int = 9               # structuring element: wider than a painted line's image, narrower than a car
    min_landmark_px: int = 150       # projected marking points in view needed for a check
    min_peak_gain: float = 1.03      # a best shift must beat the calibrated pose's fit by this factor to count
    window: int = 5                  # checks whose median makes the verdict
    warn_deg: float = 0.6            # median error that flags the camera
    max_depth_m: float = 80.0        # paint farther than this is too thin in the image to help
    min_conditioning: float = 0.02   # smallest / largest curvature of the fit at its peak

    def validate(self) -> None:
        if self.search_px < 2 or self.window < 1 or self.warn_deg <= 0 or self.sample_step_m <= 0:
            raise ValueError("search_px >= 2, window >= 1, warn_deg > 0 and sample_step_m > 0 required")


@dataclass
class AlignmentCheck:
    """One image's check: the shift (px) that best fits the paint, and what it means in degrees."""

    valid: bool
    shift_px: tuple[float, float] = (0.0, 0.0)
    error_deg: float = 0.0
    landmark_px: int = 0
    peak_gain: float = 1.0           # best fit / fit at the calibrated pose
    conditioning: float = 0.0        # how well the paint fixes the shift both ways (0: along a line, 1: a corner)
    reason: str = ""


@dataclass
class CalibrationStatus:
    """The verdict for one camera after its latest check."""

    camera_id: str
    state: CalibrationState
    error_deg: float                 # median over the window (0 while unknown)
    shift_px: tuple[float, float]
    checks: int
    stamp: float
    message: str
    landmark_px: int = 0


def marking_points(markings, step_m: float) -> np.ndarray:
    """Ground points (N, 3) every ``step_m`` along the markings' polylines (map frame, z = 0)."""
    out = []
    for marking in markings:
        line = np.asarray(marking.polyline if hasattr(marking, "polyline") else marking, dtype=np.float64)
        for a, b in zip(line[:-1], line[1:]):
            n = max(int(math.ceil(np.linalg.norm(b - a) / step_m)), 1)
            t = np.linspace(0.0, 1.0, n + 1)[:, None]
            out.append(a[None] * (1 - t) + b[None] * t)
    if not out:
        return np.zeros((0, 3))
    points = np.vstack(out)
    return np.column_stack([points[:, :2], np.zeros(len(points))])


def paint_response(image_bgr: np.ndarray, tophat_px: int) -> np.ndarray:
    """Thin bright structures of the image in [0, 1] (float32)."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (tophat_px, tophat_px))
    tophat = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel).astype(np.float32)
    # The floor drops the asphalt's own texture; the cap keeps one bright object from outweighing the paint.
    return np.clip((tophat - 12.0) / 50.0, 0.0, 1.0)


def _subpixel(values: np.ndarray, k: int) -> float:
    """Parabola vertex offset around index k of a 1-d array (0 at an edge)."""
    if k <= 0 or k >= len(values) - 1:
        return 0.0
    a, b, c = float(values[k - 1]), float(values[k]), float(values[k + 1])
    denominator = a - 2 * b + c
    return 0.0 if abs(denominator) < 1e-12 else 0.5 * (a - c) / denominator


def _peak_conditioning(scores: np.ndarray, ky: int, kx: int, step: int = 2) -> float:
    """Smallest over largest curvature of the score surface at its peak (finite differences)."""
    h, w = scores.shape
    y0, y1 = max(ky - step, 0), min(ky + step, h - 1)
    x0, x1 = max(kx - step, 0), min(kx + step, w - 1)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return 0.0
    f = lambda y, x: float(scores[y, x])  # noqa: E731
    c = f(ky, kx)
    dyy = (f(y1, kx) - 2 * c + f(y0, kx)) / ((y1 - ky) * (ky - y0) or 1)
    dxx = (f(ky, x1) - 2 * c + f(ky, x0)) / ((x1 - kx) * (kx - x0) or 1)
    dxy = (f(y1, x1) - f(y1, x0) - f(y0, x1) + f(y0, x0)) / ((y1 - y0) * (x1 - x0))
    eig = np.linalg.eigvalsh(np.array([[dxx, dxy], [dxy, dyy]]))
    curvatures = np.abs(eig)
    return float(curvatures.min() / curvatures.max()) if curvatures.max() > 1e-9 else 0.0


class LandmarkAligner:
    """Checks one camera's images against the site's markings projected with its calibration."""

    def __init__(self, camera: CameraGeometry, markings, params: CalibrationHealthParams | None = None):
        self.params = params or CalibrationHealthParams()
        self.params.validate()
        self.camera = camera
        self._template = None
        self._origin = (0, 0)
        self.landmark_px = 0
        self.set_camera(camera, markings)

    def set_camera(self, camera: CameraGeometry, markings) -> None:
        """(Re)project the markings (a new CameraInfo or calibrated pose)."""
        p = self.params
        self.camera = camera
        points = marking_points(markings, p.sample_step_m)
        pixels, depth = camera.project(points) if len(points) else (np.zeros((0, 2)), np.zeros(0))
        s = p.search_px
        keep = (depth > 0.5) & (depth < p.max_depth_m) & (pixels[:, 0] >= s) & (pixels[:, 0] < camera.width - s) & \
            (pixels[:, 1] >= s) & (pixels[:, 1] < camera.height - s)
        pixels = np.round(pixels[keep]).astype(int)
        unique = np.unique(pixels, axis=0) if len(pixels) else pixels
        self.landmark_px = len(unique)
        if self.landmark_px == 0:
            self._template = None
            return
        x0, y0 = unique.min(axis=0)
        x1, y1 = unique.max(axis=0)
        template = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.float32)
        template[unique[:, 1] - y0, unique[:, 0] - x0] = 1.0
        self._template, self._origin = template, (int(x0), int(y0))

    def check(self, image_bgr: np.ndarray) -> AlignmentCheck:
        """The best shift of the projected paint over this image (see the module docstring)."""
        p = self.params
        if self._template is None or self.landmark_px < p.min_landmark_px:
            return AlignmentCheck(False, landmark_px=self.landmark_px, reason="too little paint in view")
        if image_bgr.shape[0] != self.camera.height or image_bgr.shape[1] != self.camera.width:
            return AlignmentCheck(False, landmark_px=self.landmark_px,
                                  reason=f"image {image_bgr.shape[1]}x{image_bgr.shape[0]} is not the calibrated "
                                         f"{self.camera.width}x{self.camera.height}")
        response = paint_response(image_bgr, p.tophat_px)
        s = p.search_px
        x0, y0 = self._origin
        h, w = self._template.shape
        window = response[y0 - s:y0 + h + s, x0 - s:x0 + w + s]
        scores = cv2.matchTemplate(window, self._template, cv2.TM_CCORR)  # (2s+1, 2s+1): shift (dy, dx) + s
        at_zero = float(scores[s, s])
        k = int(np.argmax(scores))
        ky, kx = divmod(k, scores.shape[1])
        best = float(scores[ky, kx])
        gain = best / max(at_zero, 1e-6)
        dx = kx - s + _subpixel(scores[ky, :], kx)
        dy = ky - s + _subpixel(scores[:, kx], ky)
        if best <= 1e-6:
            return AlignmentCheck(False, landmark_px=self.landmark_px, reason="no paint seen")
        if gain < p.min_peak_gain and (abs(dx) > 1.5 or abs(dy) > 1.5):
            return AlignmentCheck(False, (dx, dy), landmark_px=self.landmark_px, peak_gain=gain,
                                  reason="no shift fits clearly better than the calibration")
        conditioning = _peak_conditioning(scores, ky, kx)
        if conditioning < p.min_conditioning:
            # One straight line (or parallel ones) fixes the shift across it only: along it any shift fits.
            return AlignmentCheck(False, (dx, dy), landmark_px=self.landmark_px, peak_gain=gain,
                                  conditioning=conditioning, reason="the paint in view runs one way only")
        focal = 0.5 * (self.camera.K[0, 0] + self.camera.K[1, 1])
        error = math.degrees(math.atan2(math.hypot(dx, dy), focal))
        return AlignmentCheck(True, (float(dx), float(dy)), error, self.landmark_px, gain, conditioning=conditioning)


class CalibrationMonitor:
    """Per camera: checks, a verdict from the median of the last ``window`` of them, and when it was flagged."""

    def __init__(self, markings, params: CalibrationHealthParams | None = None):
        self.markings = list(markings)
        self.params = params or CalibrationHealthParams()
        self.params.validate()
        self._aligners: dict[str, LandmarkAligner] = {}
        self._recent: dict[str, deque] = {}
        self.status: dict[str, CalibrationStatus] = {}
        self.flagged_at: dict[str, float] = {}

    def _aligner(self, camera: CameraGeometry) -> LandmarkAligner:
        aligner = self._aligners.get(camera.camera_id)
        if aligner is None:
            aligner = self._aligners[camera.camera_id] = LandmarkAligner(camera, self.markings, self.params)
        elif not (np.array_equal(aligner.camera.K, camera.K) and np.array_equal(aligner.camera.D, camera.D)
                  and np.allclose(aligner.camera.T_map_optical.matrix(), camera.T_map_optical.matrix())):
            aligner.set_camera(camera, self.markings)  # recalibrated: a fresh window
            self._recent.pop(camera.camera_id, None)
        return aligner

    def check(self, camera: CameraGeometry, image_bgr: np.ndarray, stamp: float) -> CalibrationStatus:
        """Check one image of ``camera`` (its calibrated geometry) and return the camera's verdict."""
        p = self.params
        result = self._aligner(camera).check(image_bgr)
        recent = self._recent.setdefault(camera.camera_id, deque(maxlen=p.window))
        if result.valid:
            recent.append(result)
        previous = self.status.get(camera.camera_id)
        if len(recent) < min(p.window, 3):
            state = CalibrationState.NOT_ENOUGH_LANDMARKS if not result.valid and not recent else (
                previous.state if previous else CalibrationState.UNKNOWN)
            status = CalibrationStatus(camera.camera_id, state, previous.error_deg if previous else 0.0,
                                       previous.shift_px if previous else (0.0, 0.0), len(recent), stamp,
                                       result.reason or "checking", result.landmark_px)
        else:
            error = float(np.median([r.error_deg for r in recent]))
            shift = (float(np.median([r.shift_px[0] for r in recent])), float(np.median([r.shift_px[1] for r in recent])))
            if error > p.warn_deg:
                state = CalibrationState.MISALIGNED
                message = (f"the painted lines are {error:.2f} deg ({shift[0]:+.1f}, {shift[1]:+.1f} px) off where the "
                           f"calibration projects them: the camera moved")
                self.flagged_at.setdefault(camera.camera_id, stamp)
            else:
                state, message = CalibrationState.OK, f"painted lines within {error:.2f} deg of the calibration"
            status = CalibrationStatus(camera.camera_id, state, error, shift, len(recent), stamp, message,
                                       result.landmark_px)
        self.status[camera.camera_id] = status
        return status

    def image_shift_px(self, camera_id: str) -> tuple[float, float] | None:
        """Where a misaligned camera's image lies against its calibration (px; None: not misaligned)."""
        status = self.status.get(camera_id)
        if status is None or status.state != CalibrationState.MISALIGNED:
            return None
        return status.shift_px

    def angle_sigma_rad(self, camera_id: str) -> float | None:
        """The extra angular uncertainty fusion should give a misaligned camera (None: not misaligned)."""
        status = self.status.get(camera_id)
        if status is None or status.state != CalibrationState.MISALIGNED:
            return None
        return math.radians(status.error_deg)
