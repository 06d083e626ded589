"""The one description of the node graph (pure Python).

Both ``launch/perception.launch.py`` (launch_ros, real ROS installs) and the
project's runner (``perception up``) turn the same :class:`NodeSpec` list into
processes, so which nodes run, in which namespaces, with which parameter files
and remaps is written down once, here.

Layout for a scene with cameras cam0..camN under namespace NS (default: none):
  /NS/site_publisher       calibration -> robot_description, /tf_static
  /NS/<camera_id>/camera   camera driver      -> image_raw, camera_info, ground_truth/detections
  /NS/detector             one detector for all cameras: <camera_id>/image_raw -> <camera_id>/detections
  /NS/<camera_id>/tracker  per-camera tracker detections -> tracks (without the detection stage it
                           tracks the synthetic camera's ground_truth/detections)
  /NS/monitor              health aggregator  -> /diagnostics, ~/get_health
Calibration comes from config/calibration/<scene name>/ unless calibration_dir
is given: the site publisher builds the TF tree from it and every camera reads
its CameraInfo from the same files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from perception_nodes.errors import GraphError
from perception_nodes.paths import package_path
from perception_nodes.world.scene import load_scene

STAGES = ("site", "cameras", "detection", "tracking", "monitor")
# What runs when no stages are named: everything.
DEFAULT_STAGES = STAGES
DEFAULT_PARAMS_FILE = "perception.yaml"


@dataclass
class NodeSpec:
    """One node process: what ``launch_ros.actions.Node`` and the runner need."""

    executable: str  # module name in perception_nodes.nodes, also the `ros2 run` executable
    name: str
    namespace: str = "/"
    params_files: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)  # overrides applied after the files
    remappings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


def config_dir() -> Path:
    return package_path("config")


def _join(*parts: str) -> str:
    cleaned = [p.strip("/") for p in parts if p and p.strip("/")]
    return "/" + "/".join(cleaned)


def detector_parameters(params_file: str | None = None) -> dict:
    """The detector's ``ros__parameters`` in the params file (default: config/perception.yaml)."""
    import yaml

    path = params_file or str(config_dir() / DEFAULT_PARAMS_FILE)
    with open(path) as handle:
        return (yaml.safe_load(handle) or {}).get("/**/detector", {}).get("ros__parameters", {}) or {}


def configured_detector_model(params_file: str | None = None) -> str:
    """The model the detector node runs with the params file (default: config/perception.yaml).

    The CLI's eval and bench commands measure this model unless told otherwise."""
    from perception_nodes.detection.registry import DEFAULT_DETECTOR_REF

    return str(detector_parameters(params_file).get("model") or DEFAULT_DETECTOR_REF)


def _require_model(params_file: str) -> None:
    """The detection stage needs its model registered; say how to get one instead of starting a dead node."""
    from perception_nodes.detection.registry import ModelError, ModelRegistry

    values = detector_parameters(params_file)
    ref = configured_detector_model(params_file)
    try:
        ModelRegistry(values.get("manifest") or None).resolve(ref)
    except (ModelError, OSError) as exc:
        raise GraphError(f"the detection stage needs model {ref}: {exc}. Train one with "
                         f"'perception train detector --version 1', or leave the stage out "
                         f"(--stages site,cameras,tracking,monitor)") from None


def build_graph(scene: str = "default", seed: int | None = None, stages=DEFAULT_STAGES, namespace: str = "",
                params_file: str | None = None, camera_rate_hz: float | None = None,
                calibration_dir: str | None = None) -> list[NodeSpec]:
    """Node specs for a scene: one camera driver per scene camera plus the enabled stages."""
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise GraphError(f"unknown stages {sorted(unknown)}; known: {list(STAGES)}")
    params = str(Path(params_file).resolve()) if params_file else str(config_dir() / DEFAULT_PARAMS_FILE)
    if not Path(params).is_file():
        raise GraphError(f"params file {params} does not exist")
    loaded = load_scene(scene, seed=seed)
    calibration = Path(calibration_dir).resolve() if calibration_dir else package_path("config/calibration") / loaded.name
    if not (calibration / "site.yaml").is_file():
        raise GraphError(f"no calibration for scene {loaded.name!r}: {calibration}/site.yaml does not exist "
                         f"(create it with: perception calibrate export --scene {loaded.name} --out {calibration})")
    specs: list[NodeSpec] = []
    if "site" in stages:
        specs.append(NodeSpec("site_publisher", "site_publisher", _join(namespace), [params],
                              {"calibration_dir": str(calibration)}))
    if "cameras" in stages:
        for cam in loaded.cameras:
            overrides = {"source_type": "synthetic", "scene": loaded.source_path, "camera_id": cam.id,
                         "seed": int(loaded.seed), "camera_info_url": f"file://{calibration / f'{cam.id}.yaml'}"}
            if camera_rate_hz is not None:
                overrides["rate_hz"] = float(camera_rate_hz)
            specs.append(NodeSpec("camera", "camera", _join(namespace, cam.id), [params], overrides))
    if "detection" in stages:
        _require_model(params)
        specs.append(NodeSpec("detector", "detector", _join(namespace), [params],
                              {"cameras": [cam.id for cam in loaded.cameras]}))
    if "tracking" in stages:
        source = [] if "detection" in stages else [("detections", "ground_truth/detections")]
        for cam in loaded.cameras:
            specs.append(NodeSpec("tracker", "tracker", _join(namespace, cam.id), [params], {"camera_id": cam.id},
                                  remappings=list(source)))
    if "monitor" in stages:
        specs.append(NodeSpec("monitor", "monitor", _join(namespace), [params]))
    return specs
