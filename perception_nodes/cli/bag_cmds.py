"""`perception bag record|play|info` and `perception sim`."""
from __future__ import annotations

import sys
import threading
import time

from perception_nodes.cli.common import emit, ros_init
from perception_nodes.errors import BagError


def run_info(args) -> int:
    from perception_nodes.bagio import bag_info

    info = bag_info(args.bag)
    for topic, entry in info["topics"].items():
        print(f"{topic:50s} {entry['type']:45s} {entry['count']:8d}")
    print(f"duration {info['duration_s']:.3f} s, {info['messages']} messages")
    emit(info)
    return 0


def run_record(args) -> int:
    from perception_nodes.bagio import BagWriter
    from perception_nodes.ros.bag import BagRecorder

    if not args.topics and not args.all:
        raise BagError("name the topics to record, or pass --all")
    rclpy = ros_init()
    node = rclpy.create_node("perception_bag_recorder")
    stop = threading.Event()
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with BagWriter(args.output) as writer:
        recorder = BagRecorder(node, writer, None if args.all else args.topics)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        print(f"[bag] recording into {args.output}; Ctrl-C stops", flush=True)
        stop.wait(args.duration if args.duration > 0 else None)
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)  # no spinning thread may outlive the context
        counts = dict(recorder.counts)
    node.destroy_node()
    rclpy.shutdown()
    emit({"out": args.output, "messages": sum(counts.values()), "topics": counts})
    return 0


def _remaps(values) -> dict[str, str]:
    remap = {}
    for value in values or []:
        if ":=" not in value:
            raise BagError(f"--remap takes FROM:=TO, got {value!r}")
        source, target = value.split(":=", 1)
        remap[source] = target
    return remap


def run_play(args) -> int:
    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    lockstep_topic = answer_topic = None
    if args.lockstep:
        if "," not in args.lockstep:
            raise BagError("--lockstep takes FRAME_TOPIC,ANSWER_TOPIC")
        lockstep_topic, answer_topic = args.lockstep.split(",", 1)
    options = PlaybackOptions(rate=args.rate, loop=args.loop, publish_clock=args.clock, topics=args.topics or None,
                              remap=_remaps(args.remap), lockstep_topic=lockstep_topic, answer_topic=answer_topic,
                              lockstep_timeout_s=args.lockstep_timeout, start_delay_s=args.delay,
                              wait_for_subscribers=args.wait_for_subscribers,
                              subscribers_timeout_s=args.wait_for_subscribers_timeout)
    rclpy = ros_init()
    node = rclpy.create_node("perception_bag_player")
    executor = rclpy.executors.MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    player = BagPlayer(node, args.bag, options).start()
    started = time.monotonic()
    interrupted = False
    try:
        while not player.done.wait(0.2):
            pass
    except KeyboardInterrupt:
        interrupted = True  # stopped on purpose: what was not played is not a failure
        player.stop()
    delivered = player.wait_for_delivery()  # exiting earlier would drop unacknowledged reliable samples
    executor.shutdown(timeout_sec=2.0)
    thread.join(timeout=5.0)  # no spinning thread may outlive the context
    node.destroy_node()
    rclpy.shutdown()
    shortfall = player.shortfall()
    for topic, counts in shortfall.items():
        print(f"[play] {topic}: published {counts['published']} of {counts['in_bag']} messages ({counts['reason']})",
              file=sys.stderr)
    partial = bool(shortfall) and not args.allow_partial and not interrupted
    emit({"bag": args.bag, "published": player.published, "delivered": delivered,
          "published_by_topic": player.published_by_topic, "short_topics": shortfall,
          "lockstep_timeouts": player.lockstep_timeouts, "subscribers_ready": player.subscribers_ready,
          "wall_s": round(time.monotonic() - started, 3)})
    if partial:
        print(f"perception bag play: published fewer messages than the bag holds on {sorted(shortfall)}; "
              f"--allow-partial accepts that", file=sys.stderr)
    return 1 if partial else 0


def run_sim(args) -> int:
    from perception_nodes.simbag import write_scene
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene, seed=args.seed)
    frames = args.frames if args.frames is not None else (
        int(round(args.duration * scene.fps)) if args.duration is not None else None)
    summary = write_scene(scene, args.out, frames=frames)
    print(f"[sim] wrote {summary['frames']} frames x {summary['cameras']} cameras to {summary['bag']}", flush=True)
    emit(summary)
    return 0


def add_parsers(sub) -> None:
    bag = sub.add_parser("bag", help="record, play and inspect rosbag2 (MCAP) bags")
    bag_sub = bag.add_subparsers(dest="bag_command", required=True)
    rec = bag_sub.add_parser("record", help="record topics (raw CDR) into a new MCAP bag")
    rec.add_argument("topics", nargs="*", help="topics to record")
    rec.add_argument("-a", "--all", action="store_true", help="record every topic (except /rosout, /parameter_events)")
    rec.add_argument("-o", "--output", required=True, help="bag folder to create")
    rec.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    rec.set_defaults(func=run_record)
    play = bag_sub.add_parser("play", help="publish a bag's messages")
    play.add_argument("bag")
    play.add_argument("--rate", type=float, default=1.0, help="time factor (2: twice as fast)")
    play.add_argument("--loop", action="store_true")
    play.add_argument("--clock", action="store_true", help="publish /clock from the bag's timestamps")
    play.add_argument("--topics", nargs="*", help="only these topics")
    play.add_argument("--remap", nargs="*", help="FROM:=TO topic renames")
    play.add_argument("--lockstep", default=None, metavar="FRAME_TOPIC,ANSWER_TOPIC",
                      help="publish the next FRAME_TOPIC message only after ANSWER_TOPIC answered the previous one")
    play.add_argument("--lockstep-timeout", type=float, default=5.0)
    play.add_argument("--delay", type=float, default=0.5, help="seconds to wait for subscribers before the first message")
    play.add_argument("--allow-partial", action="store_true",
                      help="exit 0 even when some topics published fewer messages than the bag holds (a topic whose "
                           "type or serialization cannot be played, a failed publish)")
    play.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                      help="after --delay, play once every played topic has N matched subscriptions (0: don't wait)")
    play.add_argument("--wait-for-subscribers-timeout", type=float, default=30.0, metavar="S",
                      help="play anyway after S seconds of waiting (reported as subscribers_ready: false)")
    play.set_defaults(func=run_play)
    info = bag_sub.add_parser("info", help="topics, types, counts, duration")
    info.add_argument("bag")
    info.set_defaults(func=run_info)
