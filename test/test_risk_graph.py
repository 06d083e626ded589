"""The risk node in a running graph: it decides on the localizer's objects, and when the localizer is killed
mid-run the fail-safe command follows within one deadline period of the objects going stale."""
import io
import time

import pytest

from conftest import spin_until
from perception_nodes.graph import build_graph
from perception_nodes.runner import GraphRunner

pytestmark = pytest.mark.graph


def test_risk_fails_safe_within_a_deadline_when_the_localizer_is_killed(ros_context, domain_id, tmp_path):
    from rclpy.executors import SingleThreadedExecutor

    from perception_nodes.msg import ActuationCommand, LocalizedObjectArray, RiskAssessment
    from perception_nodes.nodes.risk import command_qos
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    specs = build_graph("parking2", stages=("site", "cameras", "tracking", "localization", "risk"))
    risk = next(s for s in specs if s.executable == "risk")
    deadline = float(risk.parameters.setdefault("input_deadline_s", 0.5))
    risk.parameters["decision_log"] = str(tmp_path / "decisions")
    for spec in specs:
        spec.respawn = False
    objects_at, commands, assessments = [], [], []
    node = rclpy.create_node("risk_probe", context=context)
    node.create_subscription(LocalizedObjectArray, "/objects", lambda m: objects_at.append(time.monotonic()),
                             qos.RESULTS)
    node.create_subscription(ActuationCommand, "/risk/command", lambda m: commands.append((time.monotonic(), m)),
                             command_qos(deadline))
    node.create_subscription(RiskAssessment, "/risk/assessment", assessments.append, qos.COMMANDS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    with GraphRunner(specs, domain_id=domain_id, output=io.StringIO()) as runner:
        # Up: the localizer's objects arrive and the risk node decides on them (not in fail-safe).
        # The probe must see the objects too (its reader can match the localizer's writer later than the risk
        # node's does on a loaded machine): the kill is timed against the last objects it saw.
        assert spin_until(executor, lambda: sum(1 for _, c in commands if not c.fail_safe) >= 20
                          and len(objects_at) >= 5, 60.0), \
            (len(objects_at), [(c.command, c.reason) for _, c in commands[-3:]], runner.failures)
        live = [c for _, c in commands if not c.fail_safe]
        assert all(c.command != ActuationCommand.COMMAND_NONE for c in live)
        assert all(a.level != RiskAssessment.LEVEL_UNKNOWN for a in assessments)
        assert any(a.objects_evaluated > 0 for a in assessments if not a.fail_safe)  # it saw the lot's objects
        sequences = [c.sequence for _, c in commands]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        localizer = next(e for e in runner.processes if e.spec.executable == "localizer")
        localizer.process.kill()
        killed = time.monotonic()
        assert spin_until(executor, lambda: any(c.fail_safe for t, c in commands if t > killed), 10.0), \
            [(c.command, c.reason) for _, c in commands[-3:]]
    executor.shutdown(timeout_sec=1.0)
    last_objects = max(t for t in objects_at if t <= killed + 0.5)
    first_fail, fail = next((t, c) for t, c in commands if t > killed and c.fail_safe)
    # Stale at last_objects + deadline; the fail-safe command within one deadline period after that.
    assert first_fail - last_objects <= 2 * deadline + 0.25, (first_fail - last_objects, deadline)
    assert fail.command == ActuationCommand.COMMAND_STOP and "no objects for" in fail.reason
    assert fail.assessment.fail_safe and fail.assessment.level >= RiskAssessment.LEVEL_HIGH
