"""The one description of the node graph, built from a site manifest (pure Python; never imports the world).

Both ``launch/perception.launch.py`` (launch_ros, real ROS installs) and the
project's runner (``perception up``) turn the same :class:`NodeSpec` list into
processes, so which nodes run, in which namespaces, with which parameter files,
remaps and respawn policy is written down once, here.

Layout for a site with cameras cam0..camN under namespace NS (default: none):
  /NS/site_publisher       calibration -> robot_description, /tf_static
  /NS/<camera_id>/camera   camera driver      -> image_raw, camera_info, ground_truth/detections
  /NS/detector             one detector for all cameras: <camera_id>/image_raw -> <camera_id>/detections
  /NS/<camera_id>/tracker  per-camera tracker detections -> tracks (without the detection stage it
                           tracks the synthetic camera's ground_truth/detections)
  /NS/localizer            every camera's tracks, CameraInfo and TF -> objects (map frame, global ids),
                           site_state, site_events, markers
  /NS/calibration_monitor  images vs the map's painted lines -> calibration/health (where the map has markings)
  /NS/risk                 objects + the manifest's risk rules -> risk/assessment, risk/command (fail-safe),
                           ~/explain, a decision log (with localization, where the manifest has a risk section)
  /NS/retrieval            every camera's images + tracks (+ objects) -> the best crop per track per window,
                           indexed; ~/query_by_image, ~/query_by_id, ~/query_by_embedding, ~/delete, ~/stats,
                           ~/snapshot (with tracking)
  /NS/monitor              every camera's camera_info/detections/tracks, objects, risk/assessment (header only)
                           and every node's health -> /diagnostics, ~/get_health, Prometheus on loopback
Calibration comes from the manifest's calibration_dir unless calibration_dir is
given: the site publisher builds the TF tree from it and every camera reads its
CameraInfo from the same files. A synthetic scene is a site whose cameras are
synthetic sources (config/sites/<scene>.yaml).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from perception_nodes.errors import GraphError
from perception_nodes.paths import package_path
from perception_nodes.site.manifest import SiteManifest, load_manifest
from perception_nodes.sources import SourceType

STAGES = ("site", "cameras", "detection", "tracking", "localization", "risk", "retrieval", "monitor")
# What runs when no stages are named: everything.
DEFAULT_STAGES = STAGES
DEFAULT_PARAMS_FILE = "perception.yaml"
SCENE_START_LEAD_S = 3.0


@dataclass
class NodeSpec:
    """One node process: what ``launch_ros.actions.Node`` and the runner need."""

    executable: str  # module name in perception_nodes.nodes, also the `ros2 run` executable
    name: str
    namespace: str = "/"
    params_files: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)  # overrides applied after the files
    remappings: list[tuple[str, str]] = field(default_factory=list)
    # Restart the process when it exits while the graph runs (launch_ros `respawn`, the runner's RespawnPolicy).
    respawn: bool = True
    # executable "container": the nodes this one process runs (nodes/container.py), each with its own spec.
    members: list["NodeSpec"] = field(default_factory=list)

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
    return node_parameters("detector", params_file)


def configured_detector_model(params_file: str | None = None) -> str:
    """The model the detector node runs with the params file (default: config/perception.yaml).

    The CLI's eval and bench commands measure this model unless told otherwise."""
    from perception_nodes.detection.registry import DEFAULT_DETECTOR_REF

    return str(detector_parameters(params_file).get("model") or DEFAULT_DETECTOR_REF)


def _require_model(params_file: str, model: str = "", manifest: str = "") -> str:
    """The model the detection stage runs; GraphError saying how to get one instead of starting a dead node."""
    from perception_nodes.detection.registry import ModelError, ModelRegistry

    values = detector_parameters(params_file)
    ref = model or configured_detector_model(params_file)
    try:
        ModelRegistry(manifest or values.get("manifest") or None).resolve(ref)
    except (ModelError, OSError) as exc:
        raise GraphError(f"the detection stage needs model {ref}: {exc}. Train one with "
                         f"'perception train detector --version 1', register your own in a model manifest "
                         f"(site manifest detector.manifest), or leave the stage out "
                         f"(--stages site,cameras,tracking,monitor)") from None
    return ref


def camera_parameters(camera, seed: int | None = None, camera_rate_hz: float | None = None) -> dict:
    """The camera node's parameters for one manifest camera."""
    source = camera.source
    params = {"source_type": source.type.value, "camera_id": camera.id, "loop": bool(source.loop),
              "camera_info_url": f"file://{camera.calibration}", "image_qos": camera.image_qos.value,
              "rate_hz": float(camera_rate_hz if camera_rate_hz is not None else camera.rate_hz)}
    if source.type is SourceType.SYNTHETIC:
        params["scene"] = source.target
        chosen = seed if seed is not None else source.seed
        if chosen is not None:
            params["seed"] = int(chosen)
    else:
        params["source"] = source.target
    return params


def detector_overrides(site: SiteManifest, model: str) -> dict:
    """The detector's parameters from the manifest: cameras with their QoS and priority, model and class map."""
    detector = site.detector
    overrides = {"cameras": [c.id for c in site.cameras],
                 "camera_priorities": [int(c.priority) for c in site.cameras],
                 "image_qos": [c.image_qos.value for c in site.cameras],
                 "model": model, "unmapped_classes": detector.unmapped.value}
    if detector.manifest:
        overrides["manifest"] = detector.manifest
    if detector.class_map:
        overrides["class_map"] = [f"{k}={v}" for k, v in detector.class_map.items()]
    return overrides


def build_graph(site: str | os.PathLike | SiteManifest, seed: int | None = None, stages=DEFAULT_STAGES,
                namespace: str = "", params_file: str | None = None, camera_rate_hz: float | None = None,
                calibration_dir: str | None = None, group_trackers: bool = False) -> list[NodeSpec]:
    """Node specs for a site (a manifest, its path, or a name under config/sites/).

    ``seed`` overrides the seed of the site's synthetic cameras; ``camera_rate_hz`` every camera's rate;
    ``group_trackers`` runs the per-camera trackers in one container process.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise GraphError(f"unknown stages {sorted(unknown)}; known: {list(STAGES)}")
    params = str(Path(params_file).resolve()) if params_file else str(config_dir() / DEFAULT_PARAMS_FILE)
    if not Path(params).is_file():
        raise GraphError(f"params file {params} does not exist")
    manifest = site if isinstance(site, SiteManifest) else load_manifest(site)
    calibration = Path(calibration_dir).resolve() if calibration_dir else manifest.calibration_dir
    if not (calibration / "site.yaml").is_file():
        raise GraphError(f"no calibration for site {manifest.name!r}: {calibration}/site.yaml does not exist")
    specs: list[NodeSpec] = []
    if "site" in stages:
        specs.append(NodeSpec("site_publisher", "site_publisher", _join(namespace), [params],
                              {"calibration_dir": str(calibration)}))
    if "cameras" in stages:
        # Synthetic cameras share one scene clock: frame 0 is due a few seconds from now (the processes' start).
        epoch_ns = time.time_ns() + int(SCENE_START_LEAD_S * 1e9)
        for cam in manifest.cameras:
            overrides = camera_parameters(cam, seed, camera_rate_hz)
            if cam.source.type is SourceType.SYNTHETIC:
                overrides["scene_epoch_ns"] = epoch_ns
            if calibration_dir:
                overrides["camera_info_url"] = f"file://{calibration / f'{cam.id}.yaml'}"
            specs.append(NodeSpec("camera", "camera", _join(namespace, cam.id), [params], overrides))
    if "detection" in stages:
        model = _require_model(params, manifest.detector.model, manifest.detector.manifest)
        overrides = detector_overrides(manifest, model)
        overrides["view_reference_dir"] = str(calibration)  # the cameras' stored views live with their calibration
        specs.append(NodeSpec("detector", "detector", _join(namespace), [params], overrides))
    if "tracking" in stages:
        source = [] if "detection" in stages else [("detections", "ground_truth/detections")]
        trackers = [NodeSpec("tracker", "tracker", _join(namespace, cam.id), [params], {"camera_id": cam.id},
                             remappings=list(source)) for cam in manifest.cameras]
        if group_trackers:
            specs.append(NodeSpec("container", "tracker_container", _join(namespace), members=trackers))
        else:
            specs.extend(trackers)
    semantic = manifest.map
    # Localization needs the map it localizes on: a site whose manifest draws none (a fresh `perception site new`)
    # runs without it until its map and extrinsic calibration exist.
    if "localization" in stages and (semantic.zones or semantic.stalls or semantic.lanes):
        specs.append(NodeSpec("localizer", "localizer", _join(namespace), [params],
                              {"site": str(manifest.path), "cameras": [c.id for c in manifest.cameras],
                               "map_frame": manifest.map_frame}))
        if semantic.markings:  # calibration health needs paint to check the cameras against
            specs.append(NodeSpec("calibration_monitor", "calibration_monitor", _join(namespace), [params],
                                  {"site": str(manifest.path), "cameras": [c.id for c in manifest.cameras],
                                   "map_frame": manifest.map_frame}))
        if "risk" in stages and manifest.risk is not None:
            specs.append(NodeSpec("risk", "risk", _join(namespace), [params],
                                  {"site": str(manifest.path), "map_frame": manifest.map_frame}))
    if "retrieval" in stages and "tracking" in stages:
        from perception_nodes.retrieval.index import default_store_dir

        specs.append(NodeSpec("retrieval", "retrieval", _join(namespace), [params],
                              {"cameras": [c.id for c in manifest.cameras],
                               "store_dir": str(default_store_dir() / manifest.name)}))
    if "monitor" in stages:
        specs.append(NodeSpec("monitor", "monitor", _join(namespace), [params],
                              monitor_overrides(manifest, specs, params, camera_rate_hz)))
    return specs


def node_parameters(node: str, params_file: str | None = None) -> dict:
    """A node's ``ros__parameters`` under ``/**/<node>`` in the params file (default: config/perception.yaml)."""
    import yaml

    path = params_file or str(config_dir() / DEFAULT_PARAMS_FILE)
    with open(path) as handle:
        return (yaml.safe_load(handle) or {}).get(f"/**/{node}", {}).get("ros__parameters", {}) or {}


def monitor_overrides(site: SiteManifest, specs: list[NodeSpec], params_file: str,
                      camera_rate_hz: float | None = None) -> dict:
    """What the monitor watches: each camera's streams at the rate the manifest (or the override) sets, and the
    map-frame topics at the localizer's publish rate, for the stages the graph runs."""
    executables = {s.executable for s in specs} | {m.executable for s in specs for m in s.members}
    watched = []
    if "camera" in executables:
        watched.append("capture")
    if "detector" in executables:
        watched.append("detections")
    if "tracker" in executables:
        watched.append("tracks")
    if "localizer" in executables:
        watched.append("objects")
    if "risk" in executables:
        watched.append("assessment")
    overrides: dict = {"stages": watched or [""]}
    if "camera" in executables:
        overrides["cameras"] = [c.id for c in site.cameras]
        overrides["camera_rates_hz"] = [float(camera_rate_hz if camera_rate_hz is not None else c.rate_hz)
                                        for c in site.cameras]
    if "localizer" in executables:
        overrides["objects_rate_hz"] = float(node_parameters("localizer", params_file).get("publish_rate_hz", 10.0))
    return overrides


def write_members_file(spec: NodeSpec, folder: str | os.PathLike, extra_parameters: dict | None = None) -> str:
    """The member list of a container spec for nodes/container.py (``members.yaml`` in ``folder``), each member
    with an overrides file for its parameters; the runner and the launch file both start containers from it."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    members = []
    for position, member in enumerate(spec.members):
        files = list(member.params_files)
        overrides = write_overrides(member, folder / f"{position:02d}_{member.name}_overrides.yaml",
                                    extra_parameters)
        if overrides:
            files.append(overrides)
        members.append({"executable": member.executable, "name": member.name, "namespace": member.namespace,
                        "params_files": files, "remappings": [list(r) for r in member.remappings]})
    path = folder / "members.yaml"
    path.write_text(yaml.safe_dump({"members": members}))
    return str(path)


def write_overrides(spec: NodeSpec, path: str | os.PathLike, extra_parameters: dict | None = None) -> str | None:
    """A params file (ros__parameters under the node's full name) with the spec's parameter overrides and
    ``extra_parameters``; None when there are none."""
    import yaml

    parameters = {**spec.parameters, **(extra_parameters or {})}
    if not parameters:
        return None
    Path(path).write_text(yaml.safe_dump({spec.fully_qualified_name: {"ros__parameters": parameters}}))
    return str(path)
