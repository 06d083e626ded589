"""`perception site check|new|from-scene`: site manifests."""
from __future__ import annotations

import sys

from perception_nodes.cli.common import emit


def run_check(args) -> int:
    from perception_nodes.site.manifest import ManifestError, load_manifest, manifest_summary

    try:
        site = load_manifest(args.site)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        emit({"ok": False, "path": exc.path, "problems": exc.problems})
        return 1
    from perception_nodes.risk.rules import RiskConfigError, parse_risk_config

    try:
        risk = parse_risk_config(site.risk, site.map, str(site.path))
    except RiskConfigError as exc:
        print(str(exc), file=sys.stderr)
        emit({"ok": False, "path": str(site.path), "problems": exc.problems})
        return 1
    summary = manifest_summary(site)
    summary["risk_rules"] = [rule.id for rule in risk.rules]
    for cam, info in summary["cameras"].items():
        print(f"{cam}: {info['source']} {info['target']} at {info['rate_hz'] or 'source'} Hz, "
              f"image QoS {info['image_qos']}, priority {info['priority']}")
    print(f"map: {summary['map']}")
    print(f"risk rules: {', '.join(summary['risk_rules']) or 'none'}")
    emit({"ok": True, **summary})
    return 0


def _camera_pairs(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        cam, sep, source = value.partition("=")
        if not sep:
            from perception_nodes.errors import ConfigError

            raise ConfigError(f"--camera {value!r} must read ID=SOURCE (e.g. gate=rtsp://10.0.0.5/stream1)")
        pairs.append((cam.strip(), source.strip()))
    return pairs


def run_new(args) -> int:
    from perception_nodes.site.manifest import write_new_site

    written = write_new_site(args.name, _camera_pairs(args.camera), args.dir, map_frame=args.map_frame,
                             model=args.model, rate_hz=args.rate_hz, force=args.force)
    for path in written:
        print(f"wrote {path}")
    manifest = written[-1]
    print(f"next: edit the calibration templates, then 'perception site check {manifest}' and "
          f"'perception up --site {manifest}'")
    emit({"ok": True, "manifest": str(manifest), "files": [str(p) for p in written]})
    return 0


def run_from_scene(args) -> int:
    from perception_nodes.site.manifest import load_manifest
    from perception_nodes.sources.synthetic import write_site_for_scene
    from perception_nodes.world import load_scene

    manifest = write_site_for_scene(load_scene(args.scene), args.out)
    site = load_manifest(manifest)
    emit({"ok": True, "manifest": str(manifest), "cameras": [c.id for c in site.cameras],
          "stalls": len(site.map.stalls), "zones": len(site.map.zones)})
    return 0


def add_parsers(sub) -> None:
    from perception_nodes.site.manifest import SCHEMA_HELP

    site = sub.add_parser("site", help="site manifests: check one, start a new one, or write a synthetic scene's")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    check = site_sub.add_parser("check", help="validate a site manifest; every problem with its key and fix")
    check.add_argument("site", help="site name under config/sites/ or a manifest path")
    check.set_defaults(func=run_check)
    new = site_sub.add_parser("new", help="write a site manifest and calibration templates for your cameras",
                              description="Manifest schema:\n" + SCHEMA_HELP,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    new.add_argument("name", help="site name (the manifest is DIR/NAME.yaml)")
    new.add_argument("--camera", action="append", default=[], metavar="ID=SOURCE",
                     help="a camera: ID=0 or /dev/video0 (device), a video file, an image directory, "
                          "rtsp://... (stream) or synthetic:SCENE; repeat per camera")
    new.add_argument("--dir", default="sites", help="folder for NAME.yaml and NAME/calibration/ (default: sites)")
    new.add_argument("--map-frame", default="map")
    new.add_argument("--model", default="", help="detector model name@version (default: the params file's)")
    new.add_argument("--rate-hz", type=float, default=0.0, help="camera rate (0: the source's own)")
    new.add_argument("--force", action="store_true", help="overwrite an existing manifest and templates")
    new.set_defaults(func=run_new)
    from_scene = site_sub.add_parser("from-scene", help="write a synthetic scene's manifest and true calibration")
    from_scene.add_argument("scene", help="scene name under config/scenes/ or a scene YAML path")
    from_scene.add_argument("--out", required=True, help="folder for SCENE.yaml and SCENE/calibration/")
    from_scene.set_defaults(func=run_from_scene)
