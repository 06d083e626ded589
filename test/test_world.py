import numpy as np
import pytest
import yaml

from perception_nodes.errors import ConfigError
from perception_nodes.world import CLASS_NAMES, World, load_scene
from perception_nodes.world.scene import available_scenes


def test_shipped_scenes_load_and_cover_required_variants():
    names = available_scenes()
    assert {"default", "overlap2", "night"} <= set(names)
    default = load_scene("default")
    assert len(default.cameras) == 4
    assert len(load_scene("overlap2").cameras) == 2
    night = load_scene("night")
    assert night.brightness < default.brightness and night.noise_sigma > default.noise_sigma


def test_rendering_is_deterministic_for_a_seed():
    a, b = World(load_scene("overlap2", seed=5)), World(load_scene("overlap2", seed=5))
    for frame in (0, 37):
        img_a, gt_a = a.render(1, frame)
        img_b, gt_b = b.render(1, frame)
        assert img_a.tobytes() == img_b.tobytes()
        assert [g.to_dict() for g in gt_a] == [g.to_dict() for g in gt_b]


def test_different_seeds_give_different_worlds():
    a, b = World(load_scene("default", seed=1)), World(load_scene("default", seed=2))
    assert [x.class_name for x in a.actors] != [x.class_name for x in b.actors] or \
        [x.speed for x in a.actors] != [x.speed for x in b.actors]


def test_ground_truth_is_consistent_with_the_geometry():
    world = World(load_scene("default", seed=3))
    checked = 0
    for frame in range(0, 200, 20):
        states = {s.global_id: s for s in world.object_states(frame)}
        for ci, cam in enumerate(world.cameras):
            image, boxes = world.render(ci, frame)
            assert image.shape == (cam.spec.height, cam.spec.width, 3) and image.dtype == np.uint8
            for box in boxes:
                x1, y1, x2, y2 = box.bbox
                assert 0 <= x1 < x2 <= cam.spec.width and 0 <= y1 < y2 <= cam.spec.height
                assert 0 < box.visible_fraction <= 1.0
                assert box.class_name in CLASS_NAMES and box.class_name == CLASS_NAMES[box.class_id]
                state = states[box.global_id]
                pixel, depth = cam.project(state.position[None, :])
                u, v = pixel[0]
                if depth[0] > 0 and box.visible_fraction > 0.9 and 0 < u < cam.spec.width and 0 < v < cam.spec.height:
                    # The centre of a fully visible object projects inside its box.
                    assert x1 - 1 <= u <= x2 + 1 and y1 - 1 <= v <= y2 + 1
                    checked += 1
    assert checked > 20


def test_boxes_are_tight_around_the_drawn_object():
    """A lone, fully visible object's box is the extent of the pixels it changed.

    Two pixels of slack: rasterisation rounds to whole pixels, and the lens-distortion remap
    interpolates one more pixel of the edge.
    """
    world = World(load_scene("default", seed=3))
    checked = 0
    for frame in range(0, 300, 15):
        states = [(a, p, yaw) for a, p, yaw, _ in world.states(frame)]
        for ci in range(len(world.cameras)):
            renderer = world.renderer(ci)
            image, boxes = renderer.render(states, frame, world.time_of(frame))
            empty, _ = renderer.render([], frame, world.time_of(frame))  # same sensor noise, no actors
            changed = np.any(image != empty, axis=2)
            for box in boxes:
                x1, y1, x2, y2 = box.bbox
                others = [b.bbox for b in boxes if b is not box]
                isolated = all(o[2] < x1 - 6 or o[0] > x2 + 6 or o[3] < y1 - 6 or o[1] > y2 + 6 for o in others)
                if box.visible_fraction < 1.0 or not isolated or y2 - y1 < 20 or x1 < 3 or y1 < 3 \
                        or x2 > image.shape[1] - 3 or y2 > image.shape[0] - 3:
                    continue
                ys, xs = np.nonzero(changed[int(y1) - 3:int(y2) + 4, int(x1) - 3:int(x2) + 4])
                drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) + [int(x1) - 3, int(y1) - 3] * 2
                assert np.allclose(drawn, box.bbox, atol=2.0), (box.to_dict(), drawn)
                checked += 1
    assert checked > 10


def test_objects_keep_one_identity_across_overlapping_cameras():
    world = World(load_scene("overlap2"))
    shared = 0
    for frame in range(0, 300, 10):
        ids = [{b.global_id for b in world.render(ci, frame)[1] if b.visible_fraction > 0.5} for ci in range(2)]
        shared += len(ids[0] & ids[1])
    assert shared > 10  # the same global ids show up in both cameras


def test_occlusion_reduces_visible_fraction(tmp_path):
    scene = yaml.safe_load(open(load_scene("overlap2").source_path))
    # A truck passing between the camera and a standing-still-ish person hides them.
    scene["traffic"] = {"count": 0, "classes": {"car": 1}, "scripted": [
        {"class": "person", "path": [[0.0, 2.0], [0.1, 2.0]], "speed": 0.001, "enter_time": 0.0},
        {"class": "truck", "path": [[-20.0, -8.0], [20.0, -8.0]], "speed": 5.0, "enter_time": 0.0},
    ]}
    scene["cameras"] = [scene["cameras"][0]]  # cam_south at y = -22 looking north
    path = tmp_path / "occlusion.yaml"
    path.write_text(yaml.safe_dump(scene))
    world = World(load_scene(path))
    fractions = []
    for frame in range(0, 80):
        _, boxes = world.render(0, frame)
        person = [b for b in boxes if b.class_name == "person"]
        fractions.append(person[0].visible_fraction if person else 0.0)
    assert max(fractions) > 0.9  # fully visible before/after the truck passes
    assert min(fractions) < 0.2  # hidden while the truck is in front


def test_actors_enter_and_leave():
    world = World(load_scene("default"))
    counts = [len(world.object_states(f)) for f in range(0, world.scene.frame_count, 10)]
    present = [{s.global_id for s in world.object_states(f)} for f in (0, world.scene.frame_count - 1)]
    assert min(counts) > 0
    assert present[0] != present[1]


def test_velocity_matches_position_change():
    world = World(load_scene("default"))
    s0 = {s.global_id: s for s in world.object_states(50)}
    s1 = {s.global_id: s for s in world.object_states(51)}
    for gid in set(s0) & set(s1):
        finite_difference = (s1[gid].position - s0[gid].position) * world.scene.fps
        if np.linalg.norm(finite_difference - s0[gid].velocity) > 1e-6:
            continue  # turned a path corner between the two frames
        np.testing.assert_allclose(finite_difference, s0[gid].velocity, atol=1e-6)


@pytest.mark.parametrize("mutation, fragment", [
    (lambda d: d.pop("cameras"), "cameras"),
    (lambda d: d["cameras"].append(dict(d["cameras"][0])), "unique"),
    (lambda d: d["traffic"].update(classes={"unicorn": 1.0}), "unknown classes"),
    (lambda d: d["cameras"][0].update(position=[1, 2]), "position"),
    (lambda d: d.update(fps="fast"), "fps"),
    (lambda d: d["cameras"][0].update(distortion=[0.1]), "distortion"),
])
def test_invalid_scenes_are_rejected_with_the_reason(tmp_path, mutation, fragment):
    data = yaml.safe_load(open(load_scene("default").source_path))
    mutation(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=fragment):
        load_scene(path)


def test_unknown_scene_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown scene"):
        load_scene("no_such_scene")
    path = tmp_path / "broken.yaml"
    path.write_text("cameras: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scene(path)


def test_vectorised_faces_match_the_face_by_face_rule():
    """The renderer's faces (back faces, faces behind the near plane and decal tops left out; Lambert shade) are
    those of the plain per-face rule, for every part of a scene's actors seen from every camera."""
    import numpy as np

    from perception_nodes.geometry import matrix_from_rpy
    from perception_nodes.world.render import _CORNERS, _DECALS, _FACES, LIGHT_DIRECTION, NEAR_PLANE_M

    world = World(load_scene("default", seed=11))
    for camera_index, camera in enumerate(world.cameras):
        renderer = world.renderer(camera_index)
        cam_pos = camera.T_map_optical.t
        for actor in world.actors[:8]:
            R, t = matrix_from_rpy(0, 0, 0.7), np.array([actor.path[0][0], actor.path[0][1], 1.0])
            faces = renderer._actor_faces(actor.parts, R, t, cam_pos)
            for index, part in enumerate(actor.parts):
                expected = []
                corners = _CORNERS * np.asarray(part.size) + np.asarray(part.center)
                points = corners @ R.T + t
                optical = camera.to_optical(points)
                for indices, normal in _FACES:
                    if part.kind in _DECALS and normal[2] != 0:
                        continue
                    n_world = R @ np.asarray(normal, dtype=np.float64)
                    if np.dot(n_world, cam_pos - points[list(indices)].mean(axis=0)) <= 0:
                        continue
                    if np.any(optical[list(indices), 2] < NEAR_PLANE_M):
                        continue
                    shade = 0.55 + 0.45 * max(0.0, float(np.dot(n_world, LIGHT_DIRECTION)))
                    expected.append((camera.project_pinhole(optical[list(indices)]),
                                     tuple(float(c) * shade for c in part.color)))
                got = faces[index]
                assert len(got) == len(expected)
                for (pixels, color, emissive), (want_pixels, want_color) in zip(got, expected):
                    assert np.array_equal(pixels, want_pixels) and color == want_color and not emissive
