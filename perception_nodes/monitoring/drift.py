"""Model and camera drift: online windows of what the detector sees, compared with a stored reference.

Features (``FEATURES``), each tested in the way that suits it:
- per frame: ``image_brightness`` and ``image_contrast`` (mean and standard deviation of a reduced grey image),
  ``detections_per_frame``;
- per detection: ``detection_score``, ``box_size`` (sqrt of the box area over the image's), ``box_center_x`` and
  ``box_center_y`` (in image widths and heights), ``class_mix`` (categorical);
- per detection with an appearance embedding: ``embedding`` (maximum mean discrepancy of the embeddings reduced
  by the reference's PCA);
- per camera: ``view_shift_px``, the image's translation against the camera's own reference view (phase
  correlation of reduced grey images; the median over the window): a camera that was knocked or moved.

Numerical features use Evidently's large-sample default, the Wasserstein distance normalised by the reference's
standard deviation, with the KS p-value and the PSI reported beside it; the class mix uses the Jensen-Shannon
distance, with the chi-squared p-value and the PSI beside it. Each feature has its own threshold
(``config/drift.yaml``); the figures behind them are in the README with the command that prints them.

The reference of the model features comes from the model's validation data and is stored with the model version
(``DriftReference``, a JSON file named by the registry entry). The view reference is each camera's own, since a
view belongs to a camera, not to a model: stored with the site's calibration (``<calibration_dir>/<camera>.view.png``,
written by `perception drift view-reference --site S` when the camera was calibrated), so that a camera already
moved when the graph starts is caught; where none is stored, the median of the camera's first frames.
"""
from __future__ import annotations

import enum
import json
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception_nodes.errors import ConfigError

REDUCED_SIZE = (160, 120)  # grey image the frame features are computed on (width, height)
REFERENCE_SAMPLES = 4000  # most samples a reference keeps per numerical feature
PSI_BINS = 10
EMBEDDING_COMPONENTS = 8
MMD_SAMPLES = 300  # most samples of each side in one MMD evaluation (O(n^2))


class Method(str, enum.Enum):
    WASSERSTEIN = "wasserstein"  # Wasserstein-1 distance over the reference's standard deviation
    JENSEN_SHANNON = "jensenshannon"  # categorical: Jensen-Shannon distance (base 2, in [0, 1])
    MMD = "mmd"  # maximum mean discrepancy, RBF kernel at the median distance of the reference
    SHIFT_PX = "shift_px"  # median view translation against the camera's reference, full-resolution pixels


class Kind(str, enum.Enum):
    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    EMBEDDING = "embedding"
    VIEW = "view"


FEATURES: dict[str, Kind] = {
    "image_brightness": Kind.NUMERICAL,
    "image_contrast": Kind.NUMERICAL,
    "detections_per_frame": Kind.NUMERICAL,
    "detection_score": Kind.NUMERICAL,
    "box_size": Kind.NUMERICAL,
    "box_center_x": Kind.NUMERICAL,
    "box_center_y": Kind.NUMERICAL,
    "class_mix": Kind.CATEGORICAL,
    "embedding": Kind.EMBEDDING,
    "view_shift_px": Kind.VIEW,
}
# Smallest change of each numerical feature worth a look, in its unit (see FeatureRule.scale_floor).
DEFAULT_SCALE_FLOORS = {"image_brightness": 0.02, "image_contrast": 0.01, "detections_per_frame": 0.5,
                        "detection_score": 0.02, "box_size": 0.005, "box_center_x": 0.01, "box_center_y": 0.01}
_DEFAULT_METHOD = {Kind.NUMERICAL: Method.WASSERSTEIN, Kind.CATEGORICAL: Method.JENSEN_SHANNON,
                   Kind.EMBEDDING: Method.MMD, Kind.VIEW: Method.SHIFT_PX}


@dataclass(frozen=True)
class FeatureRule:
    """When one feature counts as drifted: ``statistic >= threshold`` over at least ``min_samples``."""

    threshold: float
    min_samples: int = 30
    # Numerical features: the Wasserstein distance is divided by max(reference std, scale_floor), so a feature
    # that barely varies in the reference (a static day scene's brightness) is not flagged for a change too small
    # to matter. In the feature's own unit.
    scale_floor: float = 0.0


@dataclass
class DriftConfig:
    """Window, per-feature rules and the view reference's length (``config/drift.yaml``)."""

    window_s: float = 60.0
    # The model features are judged only once the frames span this much time: a few seconds of one scene hold a
    # handful of objects, which no reference distribution looks like (at 2 Hz x 4 cameras the sample counts are
    # reached after 5 s and the first window flagged box positions in the demo).
    min_window_s: float = 10.0
    rules: dict[str, FeatureRule] = field(default_factory=lambda: {
        name: FeatureRule(0.1, scale_floor=DEFAULT_SCALE_FLOORS.get(name, 0.0))
        for name, kind in FEATURES.items() if kind is not Kind.VIEW} | {"view_shift_px": FeatureRule(4.0, 5)})
    view_reference_frames: int = 10  # frames of each camera whose median is its reference view
    view_sample_period_s: float = 1.0  # one view comparison per camera per this period (phase correlation)
    # The view's median over a shorter window: a knocked camera is a step, not a slow change of distribution,
    # and the median of the last few comparisons sees it once half of them are past it.
    view_window_s: float = 10.0

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DriftConfig":
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"drift config {path}: {exc}") from None
        config = cls()
        config.window_s = float(data.get("window_s", config.window_s))
        config.min_window_s = float(data.get("min_window_s", config.min_window_s))
        config.view_reference_frames = int(data.get("view_reference_frames", config.view_reference_frames))
        config.view_sample_period_s = float(data.get("view_sample_period_s", config.view_sample_period_s))
        config.view_window_s = float(data.get("view_window_s", config.view_window_s))
        for name, raw in (data.get("features") or {}).items():
            if name not in FEATURES:
                raise ConfigError(f"drift config {path}: unknown feature {name!r}; known: {sorted(FEATURES)}")
            if not isinstance(raw, dict) or "threshold" not in raw:
                raise ConfigError(f"drift config {path}: features.{name} needs a threshold")
            config.rules[name] = FeatureRule(float(raw["threshold"]),
                                             int(raw.get("min_samples", config.rules[name].min_samples)),
                                             float(raw.get("scale_floor", config.rules[name].scale_floor)))
        if config.window_s <= 0 or config.view_reference_frames < 1 or config.view_sample_period_s <= 0 or \
                config.view_window_s <= 0:
            raise ConfigError(f"drift config {path}: window_s, view_reference_frames and view_sample_period_s "
                              "must be positive")
        if not 0 <= config.min_window_s <= config.window_s:
            raise ConfigError(f"drift config {path}: min_window_s must be between 0 and window_s "
                              f"({config.window_s}), got {config.min_window_s}")
        return config


def default_config_path() -> Path:
    from perception_nodes.paths import package_path

    return package_path("config") / "drift.yaml"


# -- features of one frame -------------------------------------------------------------------------------
def reduce_frame(image_bgr: np.ndarray) -> np.ndarray:
    """The reduced grey image (float32 in [0, 1]) every frame feature is computed on."""
    import cv2

    small = cv2.resize(image_bgr, REDUCED_SIZE, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return grey.astype(np.float32) / 255.0


def detection_features(rows: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Per-detection features of one frame's rows (x1, y1, x2, y2, score, class)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    w = np.clip(rows[:, 2] - rows[:, 0], 0, None)
    h = np.clip(rows[:, 3] - rows[:, 1], 0, None)
    return {"detection_score": rows[:, 4],
            "box_size": np.sqrt(w * h / float(width * height)),
            "box_center_x": (rows[:, 0] + rows[:, 2]) / (2.0 * width),
            "box_center_y": (rows[:, 1] + rows[:, 3]) / (2.0 * height),
            "class_mix": rows[:, 5].astype(np.int64)}


VIEW_REFERENCE_SUFFIX = ".view.png"


def view_reference_path(calibration_dir: str | os.PathLike, camera: str) -> Path:
    """Where a camera's stored reference view lives: beside its calibration."""
    return Path(calibration_dir) / f"{camera}{VIEW_REFERENCE_SUFFIX}"


def median_view(reduced_frames) -> np.ndarray:
    """A camera's reference view: the per-pixel median of reduced frames (moving objects drop out)."""
    if not len(reduced_frames):
        raise ConfigError("a reference view needs at least one frame")
    return np.median(np.stack(reduced_frames), axis=0).astype(np.float32)


def view_reference_from_frames(frames_bgr) -> np.ndarray:
    """A camera's reference view from full frames (``median_view`` of their reduced images)."""
    return median_view([reduce_frame(frame) for frame in frames_bgr])


def _check_view(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.shape != (REDUCED_SIZE[1], REDUCED_SIZE[0]) or not np.all(np.isfinite(image)):
        raise ConfigError(f"{what}: a reference view is a finite {REDUCED_SIZE[0]}x{REDUCED_SIZE[1]} grey image, "
                          f"got shape {image.shape}")
    return image


def save_view_reference(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a reference view as a 16-bit grey PNG, atomically (a reader never sees half a file)."""
    import cv2

    path = Path(path)
    image = _check_view(image, str(path))
    staged = path.with_name(path.name + ".tmp.png")
    if not cv2.imwrite(str(staged), np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)):
        raise ConfigError(f"could not write {staged}")
    os.replace(staged, path)
    return path


def load_view_reference(path: str | os.PathLike) -> np.ndarray:
    """A stored reference view; ConfigError when the file is missing, unreadable or not a reference view."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no reference view at {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 2:
        raise ConfigError(f"{path} is not a 16-bit grey reference view (perception drift view-reference writes one)")
    return _check_view(image.astype(np.float32) / 65535.0, str(path))


def view_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """Length of the translation of ``current`` against ``reference`` (reduced grey images), in reduced pixels
    (the caller scales it to the camera's resolution)."""
    import cv2

    window = _hanning(reference.shape)
    (dx, dy), _ = cv2.phaseCorrelate(reference.astype(np.float64), current.astype(np.float64), window)
    return float(math.hypot(dx, dy))


_HANNING: dict[tuple, np.ndarray] = {}


def _hanning(shape: tuple) -> np.ndarray:
    import cv2

    if shape not in _HANNING:
        _HANNING[shape] = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_64F)
    return _HANNING[shape]


# -- statistics ------------------------------------------------------------------------------------------
def wasserstein_normalised(reference: np.ndarray, current: np.ndarray, scale_floor: float = 0.0) -> float:
    """Wasserstein-1 distance over max(the reference's standard deviation, ``scale_floor``)."""
    from scipy.stats import wasserstein_distance

    scale = max(float(np.std(reference)), float(scale_floor), 1e-12)
    return float(wasserstein_distance(reference, current) / scale)


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index over the reference's quantile bins (< 0.1 stable, >= 0.2 significant)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5]) if edges.size else np.array([-0.5, 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / max(reference.size, 1)
    actual = np.histogram(current, edges)[0] / max(current.size, 1)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def categorical_psi(reference_counts: dict[int, int], current_counts: dict[int, int]) -> float:
    keys = sorted(set(reference_counts) | set(current_counts))
    expected = np.array([reference_counts.get(k, 0) for k in keys], dtype=np.float64)
    actual = np.array([current_counts.get(k, 0) for k in keys], dtype=np.float64)
    expected = np.clip(expected / max(expected.sum(), 1), 1e-4, None)
    actual = np.clip(actual / max(actual.sum(), 1), 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def jensen_shannon(reference_counts: dict[int, int], current_counts: dict[int, int]) -> float:
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(reference_counts) | set(current_counts))
    p = np.array([reference_counts.get(k, 0) for k in keys], dtype=np.float64)
    q = np.array([current_counts.get(k, 0) for k in keys], dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def chi_square_pvalue(reference_counts: dict[int, int], current_counts: dict[int, int]) -> float:
    from scipy.stats import chisquare

    keys = sorted(set(reference_counts) | set(current_counts))
    ref = np.array([reference_counts.get(k, 0) for k in keys], dtype=np.float64) + 0.5
    cur = np.array([current_counts.get(k, 0) for k in keys], dtype=np.float64)
    expected = ref / ref.sum() * cur.sum()
    return float(chisquare(cur + 0.0, expected).pvalue) if cur.sum() else 1.0


def mmd_rbf(reference: np.ndarray, current: np.ndarray, bandwidth: float) -> float:
    """Biased MMD^2 estimate with an RBF kernel exp(-d^2 / (2 bandwidth^2)), square-rooted (>= 0)."""
    def kernel(a, b):
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.clip(d2, 0, None) / (2.0 * bandwidth * bandwidth))

    value = kernel(reference, reference).mean() + kernel(current, current).mean() - 2 * kernel(reference, current).mean()
    return float(math.sqrt(max(value, 0.0)))


# -- the reference ----------------------------------------------------------------------------------------
@dataclass
class DriftReference:
    """Reference distributions of one model version's features on data it was validated on."""

    model: str
    numerical: dict[str, np.ndarray]
    categorical: dict[str, dict[int, int]]
    embedding_mean: np.ndarray | None = None  # PCA of the reference embeddings
    embedding_components: np.ndarray | None = None
    embedding_projected: np.ndarray | None = None
    embedding_bandwidth: float = 1.0
    provenance: dict = field(default_factory=dict)  # scene, seeds, frames, command

    @classmethod
    def from_samples(cls, model: str, samples: "FeatureSamples", provenance: dict | None = None,
                     seed: int = 0) -> "DriftReference":
        rng = np.random.default_rng(seed)
        numerical = {}
        for name, values in samples.numerical.items():
            array = np.asarray(values, dtype=np.float64)
            if array.size > REFERENCE_SAMPLES:
                array = rng.choice(array, REFERENCE_SAMPLES, replace=False)
            numerical[name] = array
        reference = cls(model, numerical, {k: dict(v) for k, v in samples.categorical.items()},
                        provenance=dict(provenance or {}))
        if len(samples.embeddings) >= 2 * EMBEDDING_COMPONENTS:
            emb = np.asarray(samples.embeddings, dtype=np.float64)
            mean = emb.mean(0)
            _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
            components = vt[:EMBEDDING_COMPONENTS]
            projected = (emb - mean) @ components.T
            if len(projected) > MMD_SAMPLES:
                projected = projected[rng.choice(len(projected), MMD_SAMPLES, replace=False)]
            distances = np.sqrt(np.clip(np.sum((projected[:, None] - projected[None]) ** 2, -1), 0, None))
            reference.embedding_mean, reference.embedding_components = mean, components
            reference.embedding_projected = projected
            reference.embedding_bandwidth = float(np.median(distances[distances > 0])) if np.any(distances > 0) \
                else 1.0
        return reference

    def to_json(self) -> str:
        data = {"model": self.model, "provenance": self.provenance,
                "numerical": {k: np.round(v, 6).tolist() for k, v in self.numerical.items()},
                "categorical": {k: {str(c): int(n) for c, n in v.items()} for k, v in self.categorical.items()}}
        if self.embedding_components is not None:
            data["embedding"] = {"mean": np.round(self.embedding_mean, 6).tolist(),
                                 "components": np.round(self.embedding_components, 6).tolist(),
                                 "projected": np.round(self.embedding_projected, 6).tolist(),
                                 "bandwidth": self.embedding_bandwidth}
        return json.dumps(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DriftReference":
        try:
            data = json.loads(Path(path).read_text())
            reference = cls(str(data["model"]),
                             {k: np.asarray(v, dtype=np.float64) for k, v in data["numerical"].items()},
                             {k: {int(c): int(n) for c, n in v.items()} for k, v in data["categorical"].items()},
                             provenance=dict(data.get("provenance", {})))
            if "embedding" in data:
                emb = data["embedding"]
                reference.embedding_mean = np.asarray(emb["mean"], dtype=np.float64)
                reference.embedding_components = np.asarray(emb["components"], dtype=np.float64)
                reference.embedding_projected = np.asarray(emb["projected"], dtype=np.float64)
                reference.embedding_bandwidth = float(emb["bandwidth"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"drift reference {path} is unreadable or malformed: {exc}") from None
        unknown = (set(reference.numerical) | set(reference.categorical)) - set(FEATURES)
        if unknown:
            raise ConfigError(f"drift reference {path}: unknown features {sorted(unknown)}")
        return reference


@dataclass
class FeatureSamples:
    """Feature values gathered from frames (what a reference is built from)."""

    numerical: dict[str, list] = field(default_factory=lambda: {n: [] for n, k in FEATURES.items()
                                                                 if k is Kind.NUMERICAL})
    categorical: dict[str, dict[int, int]] = field(default_factory=lambda: {"class_mix": {}})
    embeddings: list = field(default_factory=list)

    def add_frame(self, reduced: np.ndarray, rows: np.ndarray, width: int, height: int,
                  embeddings: np.ndarray | None = None) -> None:
        self.numerical["image_brightness"].append(float(reduced.mean()))
        self.numerical["image_contrast"].append(float(reduced.std()))
        rows = np.asarray(rows).reshape(-1, 6)
        self.numerical["detections_per_frame"].append(float(len(rows)))
        for name, values in detection_features(rows, width, height).items():
            if name == "class_mix":
                for value in values.tolist():
                    self.categorical["class_mix"][value] = self.categorical["class_mix"].get(value, 0) + 1
            else:
                self.numerical[name].extend(values.tolist())
        if embeddings is not None and len(embeddings):
            self.embeddings.extend(np.asarray(embeddings, dtype=np.float64).reshape(len(rows), -1).tolist())


# -- the online monitor -----------------------------------------------------------------------------------
@dataclass
class FeatureDrift:
    """One feature's window against its reference."""

    feature: str
    method: Method
    statistic: float | None  # None: too few samples, or no reference for it
    threshold: float
    samples: int
    drifted: bool
    psi: float | None = None
    p_value: float | None = None  # KS (numerical) or chi-squared (categorical)
    camera: str = ""  # the worst camera, for view_shift_px


@dataclass
class DriftReport:
    at_s: float
    features: dict[str, FeatureDrift]

    @property
    def drifted(self) -> list[str]:
        return sorted(name for name, f in self.features.items() if f.drifted)


class DriftMonitor:
    """Sliding windows of every feature, judged against the reference and the per-feature rules.

    ``observe`` takes one frame's reduced image, detections and embeddings with its time (stamp seconds); feed
    it from one thread. ``evaluate`` compares the current window with the reference. ``view_references``: stored
    reference views by camera (``load_view_reference``); a camera without one takes the median of its first frames.
    """

    def __init__(self, reference: DriftReference | None, config: DriftConfig | None = None,
                 image_size_px: tuple[int, int] | None = None, view_references: dict[str, np.ndarray] | None = None):
        self.reference = reference
        self.config = config or DriftConfig()
        self.view_references = {cam: _check_view(image, f"reference view of {cam}")
                                for cam, image in (view_references or {}).items()}
        self._numerical: dict[str, deque] = {name: deque() for name, k in FEATURES.items() if k is Kind.NUMERICAL}
        self._classes: deque = deque()
        self._embeddings: deque = deque()
        self._view_frames: dict[str, list[np.ndarray]] = {}
        self._view_reference: dict[str, np.ndarray] = dict(self.view_references)
        self._view_shifts: dict[str, deque] = {}
        self._view_last_s: dict[str, float] = {}
        self._full_width: dict[str, int] = {}
        self.frames_total = 0
        self.first_frame_s: float | None = None

    def observe(self, camera: str, t_s: float, reduced: np.ndarray, rows: np.ndarray, width: int, height: int,
                embeddings: np.ndarray | None = None) -> None:
        self.frames_total += 1
        if self.first_frame_s is None:
            self.first_frame_s = t_s
        self._numerical["image_brightness"].append((t_s, float(reduced.mean())))
        self._numerical["image_contrast"].append((t_s, float(reduced.std())))
        rows = np.asarray(rows).reshape(-1, 6)
        self._numerical["detections_per_frame"].append((t_s, float(len(rows))))
        if len(rows):
            features = detection_features(rows, width, height)
            for name, values in features.items():
                target = self._classes if name == "class_mix" else self._numerical[name]
                target.append((t_s, values))
        if embeddings is not None and len(embeddings) and self.reference is not None \
                and self.reference.embedding_components is not None:
            emb = np.asarray(embeddings, dtype=np.float64).reshape(len(rows), -1)
            if emb.shape[1] == self.reference.embedding_mean.size:
                self._embeddings.append((t_s, (emb - self.reference.embedding_mean)
                                         @ self.reference.embedding_components.T))
        self._observe_view(camera, t_s, reduced, width)

    def _observe_view(self, camera: str, t_s: float, reduced: np.ndarray, width: int) -> None:
        last = self._view_last_s.get(camera)
        if last is not None and 0 <= t_s - last < self.config.view_sample_period_s:
            return
        self._view_last_s[camera] = t_s
        self._full_width[camera] = width
        if camera not in self._view_reference:
            frames = self._view_frames.setdefault(camera, [])
            frames.append(reduced)
            if len(frames) >= self.config.view_reference_frames:
                self._view_reference[camera] = median_view(frames)
                del self._view_frames[camera]
            return
        shift = view_shift(self._view_reference[camera], reduced) * width / reduced.shape[1]
        self._view_shifts.setdefault(camera, deque()).append((t_s, shift))

    def reset_view(self, camera: str | None = None) -> None:
        """Forget a camera's reference view, a stored one too (after a deliberate move and recalibration: store a
        new one with `perception drift view-reference`); None: every camera. The first frames after are the
        reference then."""
        for cam in ([camera] if camera else list(self._view_reference) + list(self._view_frames)):
            self.view_references.pop(cam, None)
            self._view_reference.pop(cam, None)
            self._view_frames.pop(cam, None)
            self._view_shifts.pop(cam, None)

    def _prune(self, now_s: float) -> None:
        for windows, length in (([*self._numerical.values(), self._classes, self._embeddings], self.config.window_s),
                                (list(self._view_shifts.values()), self.config.view_window_s)):
            horizon = now_s - length
            for window in windows:
                while window and window[0][0] < horizon:
                    window.popleft()

    def evaluate(self, now_s: float) -> DriftReport:
        self._prune(now_s)
        out: dict[str, FeatureDrift] = {}
        # Not judged yet (statistic None) while the frames span less than min_window_s.
        ref = self.reference if self.first_frame_s is not None and \
            now_s - self.first_frame_s >= self.config.min_window_s else None
        for name, window in self._numerical.items():
            rule = self.config.rules[name]
            current = _flatten(window)
            statistic = p_value = psi_value = None
            if ref is not None and name in ref.numerical and ref.numerical[name].size and \
                    current.size >= rule.min_samples:
                statistic = wasserstein_normalised(ref.numerical[name], current, rule.scale_floor)
                p_value = ks_pvalue(ref.numerical[name], current)
                psi_value = psi(ref.numerical[name], current)
            out[name] = FeatureDrift(name, Method.WASSERSTEIN, statistic, rule.threshold, int(current.size),
                                     statistic is not None and statistic >= rule.threshold, psi_value, p_value)
        rule = self.config.rules["class_mix"]
        classes = _flatten(self._classes).astype(np.int64)
        counts = {int(c): int(n) for c, n in zip(*np.unique(classes, return_counts=True))} if classes.size else {}
        statistic = p_value = psi_value = None
        if ref is not None and ref.categorical.get("class_mix") and classes.size >= rule.min_samples:
            statistic = jensen_shannon(ref.categorical["class_mix"], counts)
            p_value = chi_square_pvalue(ref.categorical["class_mix"], counts)
            psi_value = categorical_psi(ref.categorical["class_mix"], counts)
        out["class_mix"] = FeatureDrift("class_mix", Method.JENSEN_SHANNON, statistic, rule.threshold,
                                        int(classes.size), statistic is not None and statistic >= rule.threshold,
                                        psi_value, p_value)
        rule = self.config.rules["embedding"]
        statistic, count = None, sum(len(e) for _, e in self._embeddings)
        if ref is not None and ref.embedding_projected is not None and count >= rule.min_samples:
            current = np.concatenate([e for _, e in self._embeddings])
            if len(current) > MMD_SAMPLES:
                current = current[np.linspace(0, len(current) - 1, MMD_SAMPLES).astype(int)]
            statistic = mmd_rbf(ref.embedding_projected, current, ref.embedding_bandwidth)
        out["embedding"] = FeatureDrift("embedding", Method.MMD, statistic, rule.threshold, count,
                                        statistic is not None and statistic >= rule.threshold)
        rule = self.config.rules["view_shift_px"]
        worst, worst_camera, worst_count = None, "", 0
        for camera, shifts in self._view_shifts.items():
            if len(shifts) < rule.min_samples:
                continue
            median = float(np.median([s for _, s in shifts]))
            if worst is None or median > worst:
                worst, worst_camera, worst_count = median, camera, len(shifts)
        out["view_shift_px"] = FeatureDrift("view_shift_px", Method.SHIFT_PX, worst, rule.threshold, worst_count,
                                            worst is not None and worst >= rule.threshold, camera=worst_camera)
        return DriftReport(now_s, out)


def _flatten(window: deque) -> np.ndarray:
    if not window:
        return np.zeros(0)
    parts = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for _, v in window]
    return np.concatenate(parts) if parts else np.zeros(0)
