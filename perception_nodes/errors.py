"""Domain exceptions of perception_nodes (pure Python, no ROS import).

Every error the project raises on bad input derives from :class:`PerceptionError`
so callers (nodes, the CLI) can log it and continue without catching unrelated bugs.
"""


class PerceptionError(Exception):
    """Base class of every error perception_nodes raises on purpose."""


class ConfigError(PerceptionError):
    """A configuration, scene or parameter file is missing, malformed or inconsistent."""


class ImageFormatError(PerceptionError):
    """An image message is malformed (size/step mismatch, unknown encoding, ...)."""


class SourceError(PerceptionError):
    """A camera source could not be opened or stopped delivering frames."""


class BagError(PerceptionError):
    """A bag could not be read or written."""


class GraphError(PerceptionError):
    """The node graph description is invalid, or a node of a running graph failed."""
