"""Model registry: models/manifest.yaml lists every shipped or user-supplied model.

Each entry: name, version, file (relative to the manifest), sha256, classes,
input size, metrics, and the model card. Models are loaded by ``name@version``
(``name`` alone: the highest version). A file whose sha256 differs from the
manifest is refused: a node must never run a model other than the one named.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from perception_nodes.errors import ConfigError, PerceptionError
from perception_nodes.fileio import atomic_write_yaml, read_yaml_mapping
from perception_nodes.paths import package_path

MANIFEST = "manifest.yaml"
DEFAULT_DETECTOR = "yolov8n-lot"  # the shipped detector's name; its highest version unless one is named
# What a detector runs when no parameter names a model: the version config/perception.yaml runs (a test keeps the
# two equal). Not simply the highest version: a newer version is promoted only once it is better where it counts.
DEFAULT_DETECTOR_REF = "yolov8n-lot-ov-int8@3"


class ModelError(PerceptionError):
    """A model is unknown, missing, corrupt (sha256 mismatch) or unloadable."""


@dataclass
class ModelEntry:
    name: str
    version: str
    file: Path
    sha256: str
    classes: list[str]
    input_size: int
    metrics: dict = field(default_factory=dict)
    card: str = ""
    backend: str = "ultralytics"  # ultralytics (.pt, .onnx through ONNX Runtime) or openvino (.onnx / .xml)
    precision: str = "fp32"  # openvino: fp32, bf16 or int8 (the inference precision it runs at)
    extra_files: dict = field(default_factory=dict)  # files the model needs beside `file` (OpenVINO IR .bin): sha256
    drift_reference: str = ""  # reference feature distributions (monitoring/drift.py), relative to the manifest

    def drift_reference_path(self) -> Path | None:
        return self.file.parent / self.drift_reference if self.drift_reference else None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version_key(version: str):
    return tuple(int(p) if p.isdigit() else p for p in version.replace("-", ".").split("."))


class ModelRegistry:
    def __init__(self, manifest: str | os.PathLike | None = None):
        self.manifest = Path(manifest) if manifest else default_manifest()
        self.root = self.manifest.parent
        self.entries: list[ModelEntry] = []
        if self.manifest.is_file():
            data = read_yaml_mapping(self.manifest, "model manifest")
            for i, raw in enumerate(data.get("models", []) or []):
                try:
                    self.entries.append(ModelEntry(str(raw["name"]), str(raw["version"]), self.root / raw["file"],
                                                   str(raw["sha256"]), list(raw["classes"]), int(raw["input_size"]),
                                                   dict(raw.get("metrics", {})), str(raw.get("card", "")),
                                                   str(raw.get("backend", "ultralytics")),
                                                   str(raw.get("precision", "fp32")),
                                                   dict(raw.get("extra_files", {}) or {}),
                                                   str(raw.get("drift_reference", "") or "")))
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(f"{self.manifest}: model entry {i} needs name, version, file, sha256, classes, "
                                      "input_size") from None

    def resolve(self, ref: str) -> ModelEntry:
        """``name@version`` or ``name`` (highest version) -> entry; ModelError when unknown."""
        name, _, version = ref.partition("@")
        candidates = [e for e in self.entries if e.name == name and (not version or e.version == version)]
        if not candidates:
            known = ", ".join(e.ref for e in self.entries) or "none"
            raise ModelError(f"model {ref!r} is not in {self.manifest} (known: {known})")
        return max(candidates, key=lambda e: _version_key(e.version))

    def verified_path(self, ref: str) -> tuple[ModelEntry, Path]:
        """The model file, after checking it exists and matches its sha256."""
        entry = self.resolve(ref)
        if not entry.file.is_file():
            raise ModelError(f"{entry.ref}: file {entry.file} is missing")
        for path, expected in [(entry.file, entry.sha256)] + [(entry.file.parent / name, digest)
                                                              for name, digest in entry.extra_files.items()]:
            if not path.is_file():
                raise ModelError(f"{entry.ref}: file {path} is missing")
            actual = sha256_of(path)
            if actual != expected:
                raise ModelError(f"{entry.ref}: sha256 of {path} is {actual[:12]}..., the manifest says "
                                 f"{expected[:12]}...; refusing to load a different model")
        return entry, entry.file

    def add(self, entry: ModelEntry) -> None:
        """Register (or replace) an entry and rewrite the manifest atomically."""
        self.entries = [e for e in self.entries if e.ref != entry.ref] + [entry]
        data = {"models": [{"name": e.name, "version": e.version, "file": os.path.relpath(e.file, self.root),
                            "sha256": e.sha256, "classes": e.classes, "input_size": e.input_size,
                            "metrics": e.metrics, "card": e.card,
                            **({"backend": e.backend, "precision": e.precision} if e.backend != "ultralytics"
                               else {}), **({"extra_files": e.extra_files} if e.extra_files else {}),
                            **({"drift_reference": e.drift_reference} if e.drift_reference else {})}
                           for e in self.entries]}
        atomic_write_yaml(self.manifest, data, "# Model registry: perception_nodes loads models by name@version and "
                                               "checks sha256.\n")


def default_manifest() -> Path:
    override = os.environ.get("PERCEPTION_MODELS_DIR")
    if override:
        return Path(override) / MANIFEST
    try:
        return package_path("models") / MANIFEST
    except ConfigError:
        return package_path("config").parent / "models" / MANIFEST
