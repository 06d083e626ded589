"""launch/perception.launch.py under launch_pytest (real ROS installs; launch is not on PyPI)."""
import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not installed here (not on PyPI); it runs on a ROS 2 install")

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_pytest.tools import process as process_tools  # noqa: E402

from conftest import REPO  # noqa: E402


@launch_pytest.fixture
def launch_description():
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(REPO / "launch" / "perception.launch.py")),
        launch_arguments={"scene": "overlap2", "stages": "cameras,monitor"}.items())
    return LaunchDescription([include, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
async def test_launch_starts_every_node_of_the_graph(launch_context):
    from launch.actions import ExecuteProcess

    def started(output):
        return "publishing synthetic scene overlap2 camera" in output

    processes = [a for a in launch_context.launch_description.describe_sub_entities() if isinstance(a, ExecuteProcess)]
    for proc in processes:
        await process_tools.wait_for_output(proc, started, timeout=30)
