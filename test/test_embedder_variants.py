"""The learned embedder's OpenVINO variants: registration, equivalence with ONNX Runtime, the fallback chain and
the card (no ROS)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from perception_nodes.detection.registry import ModelError, ModelRegistry
from perception_nodes.retrieval.embedder_variants import (VARIANTS_HEADING, register_openvino_embedder,
                                                          time_embedders, update_variants_section, variant_row)
from perception_nodes.reid.learned import EmbedderError, OnnxEmbedder, OpenVINOEmbedder
from perception_nodes.retrieval import embedders as embedders_module
from perception_nodes.retrieval.embedders import OPENVINO_EMBEDDER_BACKEND, load_embedder

pytest.importorskip("openvino")

SOURCE = "reid-fleet@1"


@pytest.fixture()
def registry(tmp_path):
    """A registry of its own holding a copy of the shipped embedder (the shipped manifest is never written)."""
    shipped = ModelRegistry()
    entry, path = shipped.verified_path(SOURCE)
    shutil.copyfile(path, tmp_path / path.name)
    own = ModelRegistry(tmp_path / "manifest.yaml")
    entry.file = tmp_path / path.name
    own.add(entry)
    return own


def _crops(n: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        crop = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
        crop[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = rng.integers(0, 255, 3)  # a body on a background
        crops.append(crop)
    return crops


def test_openvino_variant_is_registered_on_the_same_file_and_embeds_like_onnx_runtime(registry):
    variant = register_openvino_embedder(SOURCE, "fp32", registry, metrics={"vehicle_map": 0.5})
    source = registry.resolve(SOURCE)
    assert variant.ref == "reid-fleet-ov-fp32@1" and variant.backend == OPENVINO_EMBEDDER_BACKEND
    assert variant.sha256 == source.sha256 and variant.file == source.file
    reread = ModelRegistry(registry.manifest).resolve(variant.ref)   # the manifest on disk holds it
    assert reread.precision == "fp32" and reread.metrics == {"vehicle_map": 0.5}

    ov_embedder = load_embedder(variant.ref, registry=registry)
    ort_embedder = load_embedder(SOURCE, registry=registry)
    assert isinstance(ov_embedder, OpenVINOEmbedder) and isinstance(ort_embedder, OnnxEmbedder)
    assert ov_embedder.name == variant.ref and ov_embedder.dim == ort_embedder.dim
    crops = _crops() + [np.zeros((2, 2, 3), np.uint8)]       # the last has no usable pixels
    a, b = ov_embedder.embed_crops(crops), ort_embedder.embed_crops(crops)
    assert np.all(np.sum(a[:-1] * b[:-1], axis=1) > 0.9999)
    assert not a[-1].any() and not b[-1].any()
    image = np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 60, 90], [np.nan, 0, 5, 5]])
    rows = ov_embedder.embed(image, boxes)
    assert rows.shape == (2, ov_embedder.dim) and abs(np.linalg.norm(rows[0]) - 1) < 1e-5 and not rows[1].any()


def test_bf16_variant_stays_close_or_says_it_ran_fp32(registry):
    register_openvino_embedder(SOURCE, "bf16", registry)
    embedder = load_embedder("reid-fleet-ov-bf16@1", registry=registry)
    reference = load_embedder(SOURCE, registry=registry)
    if embedder.precision == "fp32":   # a CPU without bf16 runs FP32 and says so
        assert "bf16" in embedder.note
    else:
        assert embedder.precision == "bf16" and not embedder.note
    crops = _crops(seed=1)
    assert np.all(np.sum(embedder.embed_crops(crops) * reference.embed_crops(crops), axis=1) > 0.99)


def test_a_variant_openvino_cannot_load_falls_back_to_onnx_runtime_and_says_so(registry, monkeypatch):
    register_openvino_embedder(SOURCE, "fp32", registry)

    def refuse(*args, **kwargs):
        raise EmbedderError("OpenVINO is not installed (test)")

    monkeypatch.setattr(embedders_module, "OpenVINOEmbedder", refuse)
    embedder = load_embedder("reid-fleet-ov-fp32@1", registry=registry)
    assert isinstance(embedder, OnnxEmbedder) and embedder.name == "reid-fleet-ov-fp32@1"
    assert "fell back to ONNX Runtime" in embedder.note and "not installed" in embedder.note


def test_only_onnx_embedders_get_variants_and_only_known_precisions(registry, tmp_path):
    with pytest.raises(ModelError, match="precision"):
        register_openvino_embedder(SOURCE, "int4", registry)
    with pytest.raises(ModelError, match="quantised"):
        register_openvino_embedder(SOURCE, "int8", registry)   # the ONNX file is not quantised
    variant = register_openvino_embedder(SOURCE, "fp32", registry)
    with pytest.raises(ModelError, match="made from an ONNX embedder"):
        register_openvino_embedder(variant.ref, "bf16", registry)   # a variant of a variant
    with pytest.raises(EmbedderError, match="precision"):
        OpenVINOEmbedder(variant.file, "x@1", precision="int4")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(EmbedderError, match="could not be loaded by OpenVINO"):
        OpenVINOEmbedder(broken, "broken@1")


def test_timing_is_interleaved_on_the_same_crops_and_the_card_section_is_replaced(registry):
    crops = _crops(70)
    register_openvino_embedder(SOURCE, "fp32", registry)
    speed = time_embedders({"a": load_embedder(SOURCE, registry=registry),
                            "b": load_embedder("reid-fleet-ov-fp32@1", registry=registry)}, crops, rounds=1)
    assert set(speed) == {"a", "b"} and all(v["crops_per_s"] > 0 and v["batch64_p50_ms"] > 0 for v in speed.values())
    with pytest.raises(ValueError):
        time_embedders({"a": None}, [])

    variant = register_openvino_embedder(SOURCE, "fp32", registry, metrics={
        "vehicle_map": 0.85, "source_vehicle_map": 0.852, "vehicle_r1": 0.9, "person_map": 0.98,
        "drive_in_out_r1": 0.88, "crops_per_s": 900.0, "ratio_vs_onnxruntime": 1.1, "precision_run": "fp32"})
    card = "# card\n\n## Training\n\ntext\n\n## Limits\n\n- synthetic\n"
    once = update_variants_section(card, [variant_row(variant)])
    assert once.count(VARIANTS_HEADING) == 1 and "`reid-fleet-ov-fp32@1`" in once and "x1.1" in once
    twice = update_variants_section(once, ["| other |"])
    assert twice.count(VARIANTS_HEADING) == 1 and "`reid-fleet-ov-fp32@1`" not in twice and "| other |" in twice
    placed = update_variants_section("# c\n\n" + VARIANTS_HEADING + "\n\nold\n\n## Limits\n\n- x\n", ["| r |"])
    assert placed.index(VARIANTS_HEADING) < placed.index("## Limits") and "old" not in placed


def test_int8_variant_is_quantised_beside_the_model_registered_with_its_weights_and_close_to_fp32(registry):
    pytest.importorskip("nncf")
    from perception_nodes.retrieval.embedder_variants import quantize_int8_embedder

    with pytest.raises(ModelError, match="calibration crops"):
        quantize_int8_embedder(SOURCE, [], registry)
    variant = quantize_int8_embedder(SOURCE, _crops(32, seed=4), registry)
    assert variant.ref == "reid-fleet-ov-int8@1" and variant.precision == "int8"
    assert variant.file.suffix == ".xml" and variant.file.parent == registry.root
    assert list(variant.extra_files) == [variant.file.with_suffix(".bin").name]
    embedder = load_embedder(variant.ref, registry=registry)
    assert isinstance(embedder, OpenVINOEmbedder) and embedder.precision == "int8"
    crops = _crops(seed=5)
    rows, reference = embedder.embed_crops(crops), load_embedder(SOURCE, registry=registry).embed_crops(crops)
    cosine = np.sum(rows * reference, axis=1)   # calibrated on 32 toy crops: close, not equal
    assert cosine.mean() > 0.93 and cosine.min() > 0.8, cosine
    variant.file.with_suffix(".bin").write_bytes(b"tampered")    # a changed weights file is refused
    with pytest.raises(EmbedderError):
        load_embedder(variant.ref, registry=registry)
