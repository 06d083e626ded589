"""Site manifests: schema validation, the shipped sites, `perception site`, and the graph built from a manifest."""
import json
import textwrap

import numpy as np
import pytest

from conftest import last_json, run_cli
from perception_nodes.errors import ConfigError
from perception_nodes.graph import build_graph
from perception_nodes.site.manifest import (ImageQos, ManifestError, available_sites, load_manifest, parse_source,
                                             write_new_site)
from perception_nodes.sources import SourceType
from perception_nodes.taxonomy import ClassMap, SiteClass, UnmappedPolicy


def test_every_shipped_site_loads_and_matches_its_scene():
    from perception_nodes.world import load_scene

    assert set(available_sites()) >= {"default", "overlap2", "crossing", "night"}
    for name in available_sites():
        site = load_manifest(name)
        scene = load_scene(name)
        assert [c.id for c in site.cameras] == [c.id for c in scene.cameras]
        assert all(c.source.type is SourceType.SYNTHETIC and c.source.target == name for c in site.cameras)
        assert all(c.calibration.is_file() for c in site.cameras)
    default = load_manifest("default")
    assert len(default.map.stalls) == 16 and {z.kind.value for z in default.map.zones} >= {"parking", "walkway"}
    assert len(default.map.landmarks) == 3 and len(default.map.lanes) == 3 and default.map.gates


def _write(tmp_path, body: str, calibration_cameras=("cam_a",)):
    calib = tmp_path / "calib"
    calib.mkdir(exist_ok=True)
    (calib / "site.yaml").write_text(json.dumps({"map_frame": "map", "cameras": list(calibration_cameras)}))
    from perception_nodes.site.manifest import _template_calibration

    for cam in calibration_cameras:
        (calib / f"{cam}.yaml").write_text(_template_calibration(cam, "map"))
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_malformed_manifest_reports_every_problem_with_its_key(tmp_path):
    (tmp_path / "frames").mkdir()
    path = _write(tmp_path, """
        site: yard
        calibration_dir: calib
        cameras:
          - {id: cam_a, source: frames, image_qos: lossy, priority: 11}
          - {id: 2cam, source: "ftp://host/x"}
          - {id: cam_a, source: "synthetic:default", rate_hz: -3}
        detector: {class_map: {car: car, bus: lorry}, unmapped: keep}
        map:
          zones: [{name: z, kind: parking, polygon: [[0, 0], [6, 0], [0, 2], [3, 4]]}]
          stalls: [{id: s1, polygon: [[0, 0], [1, 0]]}, {id: s1, polygon: [[0, 0], [1, 0], [1, 1]], zone: nowhere}]
          lanes: [{name: l, polyline: [[0, 0], [5, 0]], direction: sideways}]
        """)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    problems = info.value.problems
    expected = ["image_qos", "priority", "2cam", "ftp", "rate_hz", "cameras[2].id", "calibration",
                "lorry", "detector.unmapped", "edges", "at least 3 points", "used twice", "nowhere", "sideways",
                "site.yaml lists cameras"]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert str(path) in str(info.value)
    assert all(":" in p for p in problems)  # each names its key


def test_site_check_and_up_refuse_a_broken_manifest_and_start_nothing(tmp_path):
    path = _write(tmp_path, """
        site: yard
        calibration_dir: calib
        cameras: [{id: cam_a, source: "nowhere.xyz"}]
        """)
    check = run_cli("site", "check", str(path), check=False)
    assert check.returncode == 1 and last_json(check.stdout)["ok"] is False
    assert "cameras[0] (cam_a).source" in check.stderr
    up = run_cli("up", "--site", str(path), "--duration", "1", check=False)
    assert up.returncode == 2 and "problem(s) in the site manifest" in up.stderr
    assert "started" not in up.stdout  # no process was started


def test_sources_in_short_and_long_form(tmp_path):
    (tmp_path / "imgs").mkdir()
    assert parse_source("synthetic:overlap2@5", tmp_path).seed == 5
    assert parse_source(0, tmp_path).type is SourceType.DEVICE
    assert parse_source("/dev/video2", tmp_path).type is SourceType.DEVICE
    assert parse_source("rtsp://127.0.0.1:8554/cam", tmp_path).type is SourceType.STREAM
    images = parse_source("imgs", tmp_path)
    assert images.type is SourceType.IMAGES and images.target == str((tmp_path / "imgs").resolve())
    assert parse_source("clip.mp4", tmp_path).type is SourceType.VIDEO
    assert parse_source({"type": "video", "target": "clip.avi", "loop": False}, tmp_path).loop is False
    for bad in ("clip.txt", "gopher://x", {"type": "laser"}, {"type": "stream"}, ""):
        with pytest.raises(ValueError):
            parse_source(bad, tmp_path)


def test_site_new_writes_a_manifest_that_builds_a_graph(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    result = run_cli("site", "new", "yard", "--camera", "gate=rtsp://127.0.0.1:8554/gate", "--camera",
                     "dock=frames", "--camera", "lot=synthetic:overlap2", "--dir", str(tmp_path / "sites"))
    manifest = last_json(result.stdout)["manifest"]
    site = load_manifest(manifest)
    assert [c.id for c in site.cameras] == ["gate", "dock", "lot"]
    assert "TEMPLATE" in (tmp_path / "sites" / "yard" / "calibration" / "gate.yaml").read_text()
    specs = build_graph(manifest, stages=("site", "cameras", "tracking", "monitor"))
    cams = {s.parameters["camera_id"]: s.parameters for s in specs if s.executable == "camera"}
    assert cams["gate"]["source_type"] == "stream" and cams["gate"]["source"] == "rtsp://127.0.0.1:8554/gate"
    assert cams["dock"]["source_type"] == "images" and cams["lot"]["scene"] == "overlap2"
    assert run_cli("site", "check", manifest).returncode == 0
    again = run_cli("site", "new", "yard", "--camera", "gate=0", "--dir", str(tmp_path / "sites"), check=False)
    assert again.returncode == 2 and "--force" in again.stderr  # an existing site is never overwritten silently


def test_graph_from_a_manifest_carries_qos_priority_and_class_map(tmp_path):
    path = _write(tmp_path, """
        site: yard
        calibration_dir: calib
        cameras:
          - {id: cam_a, source: "synthetic:overlap2", image_qos: sensor_data, priority: 3, rate_hz: 5}
          - {id: cam_b, source: "synthetic:overlap2"}
        detector: {model: yolov8n-lot-onnx@3, class_map: {car: car, truck: truck, person: person}, unmapped: other}
        """, calibration_cameras=("cam_a", "cam_b"))
    site = load_manifest(path)
    assert site.camera("cam_a").image_qos is ImageQos.SENSOR_DATA and site.camera("cam_a").priority == 3
    specs = build_graph(site, stages=("cameras", "detection"))
    detector = next(s for s in specs if s.executable == "detector").parameters
    assert detector["cameras"] == ["cam_a", "cam_b"] and detector["camera_priorities"] == [3, 1]
    assert detector["image_qos"] == ["sensor_data", "reliable"] and detector["unmapped_classes"] == "other"
    assert sorted(detector["class_map"]) == ["car=car", "person=person", "truck=truck"]
    camera = next(s for s in specs if s.executable == "camera" and s.parameters["camera_id"] == "cam_a").parameters
    assert camera["image_qos"] == "sensor_data" and camera["rate_hz"] == 5.0
    assert camera["camera_info_url"] == f"file://{(tmp_path / 'calib' / 'cam_a.yaml').resolve()}"


def test_site_from_scene_writes_the_scene_and_its_calibration(tmp_path):
    result = last_json(run_cli("site", "from-scene", "crossing", "--out", str(tmp_path)).stdout)
    site = load_manifest(result["manifest"])
    assert result["ok"] and [c.id for c in site.cameras] == result["cameras"]
    assert (tmp_path / "crossing" / "calibration" / "site.yaml").is_file()


COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light"]


def test_class_map_turns_a_coco_model_into_site_classes():
    mapping = ClassMap(COCO, {"person": "person", "bicycle": "bicycle", "car": "car", "motorcycle": "bicycle",
                              "bus": "truck", "truck": "truck"})
    rows = np.array([[0, 0, 1, 1, 0.9, COCO.index(name)] for name in ("car", "bus", "person", "boat", "motorcycle")]
                    + [[0, 0, 1, 1, 0.9, 99]])
    out = mapping.apply(rows)
    assert out[:, 5].tolist() == [SiteClass.CAR, SiteClass.TRUCK, SiteClass.PERSON, SiteClass.BICYCLE]
    other = ClassMap(COCO, {"car": "car"}, UnmappedPolicy.OTHER).apply(rows)
    assert other[:, 5].tolist() == [SiteClass.CAR] + [SiteClass.OTHER] * 4  # the index outside the model: dropped
    same_names = ClassMap(["car", "truck", "person", "bicycle"])  # the shipped models: identity
    assert same_names.table.tolist() == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="does not have"):
        ClassMap(COCO, {"lorry": "truck"})
    with pytest.raises(ConfigError, match="unknown site class"):
        ClassMap(COCO, {"bus": "lorry"})
    with pytest.raises(ConfigError, match="model_class=site_class"):
        ClassMap.from_pairs(COCO, ["bus"])


def test_write_new_site_rejects_bad_cameras_all_at_once(tmp_path):
    with pytest.raises(ManifestError) as info:
        write_new_site("yard", [("1x", "0"), ("gate", "nothing.txt")], tmp_path)
    assert len(info.value.problems) == 2
    assert not (tmp_path / "yard.yaml").exists()


def test_the_message_constants_are_the_site_taxonomy():
    from perception_nodes.msg import Detection

    assert [Detection.CLASS_CAR, Detection.CLASS_TRUCK, Detection.CLASS_PERSON, Detection.CLASS_BICYCLE,
            Detection.CLASS_OTHER] == [int(c) for c in SiteClass]
