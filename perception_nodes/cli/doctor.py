"""`perception doctor`: is this environment able to run perception_nodes?"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from perception_nodes.cli.common import emit


def _check(name, fn, fix):
    try:
        detail = fn()
        return name, {"ok": True, "detail": detail}
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reported check
        return name, {"ok": False, "detail": f"{type(exc).__name__}: {exc}", "fix": fix}


def _python():
    if sys.version_info < (3, 10):
        raise RuntimeError(f"Python {sys.version.split()[0]} is older than 3.10")
    return sys.version.split()[0]


def _discovery():
    value = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    if value != "LOCALHOST":
        raise RuntimeError(f"ROS_AUTOMATIC_DISCOVERY_RANGE={value!r}; DDS would multicast beyond loopback")
    return "LOCALHOST"


def _rclpy():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, args=[])
    try:
        node = rclpy.create_node("perception_doctor", context=context)
        node.destroy_node()
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("ros-rclpy")
        except PackageNotFoundError:  # a ROS install, not the PyPI wheel
            release = "(system)"
        return f"rclpy {release} on {rclpy.get_rmw_implementation_identifier()}"
    finally:
        rclpy.shutdown(context=context)


def _interfaces():
    from perception_nodes.msg import DetectionArray, NodeHealth  # noqa: F401
    from perception_nodes.srv import GetHealth, QueryByImage  # noqa: F401

    import perception_nodes.msg as msgs

    return f"perception_nodes interfaces from {Path(msgs.__file__).parent.parent}"


def _tf2_msgs():
    from tf2_msgs.msg import TFMessage

    return f"tf2_msgs/TFMessage from {Path(sys.modules[TFMessage.__module__].__file__).parents[2]}"


def _vision_msgs():
    from vision_msgs.msg import Detection2DArray

    return f"vision_msgs/Detection2DArray from {Path(sys.modules[Detection2DArray.__module__].__file__).parents[2]}"


def _sites():
    from perception_nodes.site.manifest import available_sites, load_manifest

    names = available_sites()
    for name in names:
        load_manifest(name)  # ManifestError lists every problem
    return f"{len(names)} site manifests valid: {', '.join(names)}"


def _scenes():
    from perception_nodes.world.scene import available_scenes, load_scene

    names = available_scenes()
    for name in names:
        load_scene(name)
    if "default" not in names:
        raise RuntimeError("config/scenes/default.yaml is missing")
    return f"{len(names)} scenes: {', '.join(names)}"


def _opencv():
    import cv2

    return f"OpenCV {cv2.__version__}"


def _models():
    import yaml

    from perception_nodes.graph import config_dir

    manifest = config_dir().parent / "models" / "manifest.yaml"
    if not manifest.is_file():
        return "no model manifest yet (models/manifest.yaml): no stage needs a model file"
    entries = (yaml.safe_load(manifest.read_text()) or {}).get("models", [])
    for entry in entries:
        path = manifest.parent / entry["file"]
        if not path.is_file():
            raise RuntimeError(f"{entry['name']}@{entry['version']}: {path} is missing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise RuntimeError(f"{entry['name']}@{entry['version']}: sha256 mismatch for {path}")
    return f"{len(entries)} model files present with matching sha256"


def _retrieval_backend(params_file: str | os.PathLike | None = None) -> str:
    """The configured vector index can be opened: FAISS imports; milvus-lite imports; a Milvus server answers."""
    from perception_nodes.graph import DEFAULT_PARAMS_FILE, config_dir, node_parameters

    path = Path(params_file) if params_file else config_dir() / DEFAULT_PARAMS_FILE
    params = node_parameters("retrieval", str(path))
    backend, uri = str(params.get("backend", "faiss")), str(params.get("milvus_uri", "") or "")
    if backend == "faiss":
        import faiss

        return f"faiss {faiss.__version__} (embedded)"
    if backend != "milvus":
        raise RuntimeError(f"{path}: retrieval backend {backend!r} is neither faiss nor milvus")
    if not uri or uri.endswith(".db"):
        import milvus_lite  # noqa: F401 - milvus-lite runs the *.db file in process

        return f"milvus-lite ({uri or 'milvus_lite.db in the store directory'})"
    from pymilvus import MilvusClient

    try:
        client = MilvusClient(uri=uri, timeout=5.0)
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise RuntimeError(f"the Milvus server {uri} (retrieval milvus_uri in {path}) does not answer: {exc}") from None
    try:
        return f"Milvus server {uri}: {client.get_server_version()}"
    finally:
        client.close()


def run(_args) -> int:
    checks = dict([
        _check("python", _python, "install Python 3.10 or newer"),
        _check("discovery_localhost", _discovery, "enter the environment with '. tools/env.sh' "
               "(or export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)"),
        _check("rclpy", _rclpy, "run 'make setup' (installs the ROS 2 Kilted wheels) and '. tools/env.sh'"),
        _check("interfaces", _interfaces, "run 'make setup' (colcon build) and source install/setup.bash"),
        _check("tf2_msgs", _tf2_msgs, "run 'make setup' (builds compat/tf2_msgs when ROS has none)"),
        _check("vision_msgs", _vision_msgs, "run 'make setup' (builds compat/vision_msgs when ROS has none)"),
        _check("opencv", _opencv, "pip install -r requirements.txt (opencv-python-headless)"),
        _check("sites", _sites, "fix the manifest named in the detail (config/sites/; perception site check NAME)"),
        _check("scenes", _scenes, "fix the scene file named in the detail (config/scenes/)"),
        _check("models", _models, "restore the model files listed in models/manifest.yaml (git checkout models/)"),
        _check("retrieval_backend", _retrieval_backend, "start the Milvus server named by the retrieval node's "
               "milvus_uri (or set backend: faiss in config/perception.yaml); pip install -r requirements.txt"),
    ])
    ok = all(c["ok"] for c in checks.values())
    for name, check in checks.items():
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"{mark} {name}: {check['detail']}")
        if not check["ok"]:
            print(f"     fix: {check['fix']}")
    emit({"ok": ok, "checks": checks})
    return 0 if ok else 1
