"""Risk reasoning (pure core, no rclpy): the site's rules on localized objects -> explained assessments and
debounced commands that fail safe. The ``risk`` node is the thin ROS layer over :class:`RiskEngine`."""
DECISION_TOPIC = "/risk/decision"  # the decision log's topic: the risk node writes it, `perception explain` reads it

from perception_nodes.risk.coverage import CoverageModel  # noqa: E402
from perception_nodes.risk.engine import Assessment, Evaluation, EvaluationState, InputStatus, ObjectState, RiskEngine
from perception_nodes.risk.rules import Command, RiskConfig, RiskConfigError, RiskLevel, Rule, RuleKind, parse_risk_config

__all__ = ["DECISION_TOPIC", "Assessment", "Command", "CoverageModel", "Evaluation", "EvaluationState", "InputStatus", "ObjectState",
           "RiskConfig", "RiskConfigError", "RiskEngine", "RiskLevel", "Rule", "RuleKind", "parse_risk_config"]
