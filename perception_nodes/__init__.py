"""perception_nodes: multi-camera perception for ROS 2.

The generated interface modules (``perception_nodes.msg``, ``perception_nodes.srv``)
live in the colcon install space, while the hand-written modules may be imported
from a source checkout (``pip install -e .``). Extending ``__path__`` lets one
import name span both places, so the pure-Python core works without a ROS build
and the message types are found once the workspace is built and sourced.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821 - set by the import system

__version__ = "0.1.0"
