"""BagPlayer options in one process: lockstep, /clock, remap, topic filter, rate, loop."""
import time

import pytest

from conftest import spin_until
from perception_nodes.errors import BagError

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    from perception_nodes.simbag import write_scene
    from perception_nodes.world import load_scene

    out = tmp_path_factory.mktemp("bag") / "sim"
    write_scene(load_scene("overlap2"), out, frames=6)
    return str(out / "bag")


@pytest.fixture
def executor(ros_context):
    from rclpy.executors import MultiThreadedExecutor

    ex = MultiThreadedExecutor(num_threads=2, context=ros_context[1])
    yield ex
    ex.shutdown(timeout_sec=1.0)


def test_lockstep_waits_for_each_answer_and_remaps(ros_context, executor, small_bag):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos
    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    rclpy, context = ros_context
    responder = rclpy.create_node("slow_stage", context=context)
    answers = responder.create_publisher(DetectionArray, "/stage/answer", qos.RESULTS)
    seen, clocks, in_flight = [], [], []

    def on_frame(msg):
        in_flight.append(1)
        assert len(in_flight) == 1, "a frame arrived before the previous one was answered"
        seen.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
        time.sleep(0.05)  # a stage that takes time
        in_flight.pop()
        answers.publish(DetectionArray(header=msg.header))

    responder.create_subscription(Image, "/replayed/image", on_frame, qos.RESULTS)
    responder.create_subscription(Clock, "/clock", clocks.append, qos.CLOCK)
    player_node = rclpy.create_node("player", context=context)
    executor.add_node(responder)
    executor.add_node(player_node)
    options = PlaybackOptions(topics=["/cam_south/image_raw"], remap={"/cam_south/image_raw": "/replayed/image"},
                              lockstep_topic="/cam_south/image_raw", answer_topic="/stage/answer",
                              lockstep_timeout_s=5.0, publish_clock=True, start_delay_s=0.5)
    player = BagPlayer(player_node, small_bag, options).start()
    assert spin_until(executor, player.done.is_set, 30.0)
    spin_until(executor, lambda: len(seen) == 6, 5.0)
    assert player.published == 6 and player.lockstep_timeouts == 0
    assert len(seen) == 6 and seen == sorted(seen)
    last_frame_ns = seen[-1][0] * 10**9 + seen[-1][1]
    # /clock is a separate depth-1 stream: its last sample may land after the last frame.
    assert spin_until(executor, lambda: clocks and clocks[-1].clock.sec * 10**9 + clocks[-1].clock.nanosec
                      == last_frame_ns, 5.0)


def test_rate_and_loop(ros_context, executor, small_bag):
    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    rclpy, context = ros_context
    node = rclpy.create_node("player2", context=context)
    executor.add_node(node)
    started = time.monotonic()
    fast = BagPlayer(node, small_bag, PlaybackOptions(topics=["/cam_east/camera_info"], rate=5.0,
                                                      start_delay_s=0.0)).start()
    assert spin_until(executor, fast.done.is_set, 10.0)
    elapsed = time.monotonic() - started
    assert fast.published == 6 and elapsed < 0.5  # 0.5 s of bag time at 5x
    looping = BagPlayer(node, small_bag, PlaybackOptions(topics=["/cam_east/camera_info"], rate=10.0, loop=True,
                                                         start_delay_s=0.0)).start()
    assert spin_until(executor, lambda: looping.published >= 15, 10.0)
    looping.stop()
    assert looping.done.is_set()


def test_bad_playback_requests(ros_context, small_bag, tmp_path):
    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    rclpy, context = ros_context
    node = rclpy.create_node("player3", context=context)
    with pytest.raises(BagError, match="not in the bag"):
        BagPlayer(node, small_bag, PlaybackOptions(topics=["/nope"]))
    with pytest.raises(BagError, match="rate must be"):
        BagPlayer(node, small_bag, PlaybackOptions(rate=0))
    with pytest.raises(BagError, match="does not exist"):
        BagPlayer(node, str(tmp_path / "missing"))


def test_waits_for_subscribers_before_the_first_message(ros_context, executor, small_bag):
    """--wait-for-subscribers: nothing is published until every played topic has a matched reader, so a reader
    that matches late still gets every message; without a reader it plays after the timeout and says so."""
    from sensor_msgs.msg import Image

    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    rclpy, context = ros_context
    player_node = rclpy.create_node("waiting_player", context=context)
    executor.add_node(player_node)
    options = PlaybackOptions(topics=["/cam_south/image_raw"], start_delay_s=0.0, wait_for_subscribers=1,
                              subscribers_timeout_s=30.0)
    player = BagPlayer(player_node, small_bag, options).start()
    spin_until(executor, lambda: False, 1.5)
    assert player.published == 0 and not player.done.is_set()  # still waiting: no reader yet
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    got = []
    reader = rclpy.create_node("late_reader", context=context)
    reader.create_subscription(Image, "/cam_south/image_raw", got.append,
                               QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    executor.add_node(reader)
    assert spin_until(executor, player.done.is_set, 30.0)
    assert spin_until(executor, lambda: len(got) == 6, 5.0), len(got)
    assert player.subscribers_ready

    lonely = BagPlayer(player_node, small_bag, PlaybackOptions(topics=["/cam_east/image_raw"], start_delay_s=0.0,
                                                               wait_for_subscribers=1, subscribers_timeout_s=0.5))
    lonely.start()
    assert spin_until(executor, lonely.done.is_set, 30.0)
    assert not lonely.subscribers_ready and lonely.published > 0
