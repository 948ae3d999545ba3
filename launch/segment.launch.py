"""Start the liteseg segmentation node (and optionally rviz2 showing its overlay and colour mask).

    ros2 launch liteseg_ros segment.launch.py image_topic:=/camera/image_raw device:=cuda rviz:=true
    ros2 launch liteseg_ros segment.launch.py managed:=true autostart:=true cameras:="[front, rear]"

Launch arguments that are left empty keep the value of the params file (config/liteseg.yaml by
default); non-empty ones override it. A relative image_topic (the default) is resolved in the
namespace, like the node's outputs; an absolute one stays where it is. rviz:=true where rviz2 is not
installed logs a warning and starts the node alone. managed:=true starts the lifecycle node
(segmentation_lifecycle_node); autostart:=true then configures and activates it, otherwise a
lifecycle manager (Nav2's, or ros2 lifecycle set) does. The node gets config/fastdds_large_images.xml as its Fast
DDS profile unless the environment names one (dds_profile:="" leaves it alone). When the node cannot start (its
one error line says why), launch shuts down and exits with a non-zero status, so a script or a systemd unit sees
the failure.
"""

import os
import tempfile
from pathlib import Path

import launch.logging
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, GroupAction, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node, PushRosNamespace
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from liteseg_ros.outputs import NODE_NAME

PACKAGE = "liteseg_ros"
RVIZ_TOPIC_PREFIX = f"/{NODE_NAME}/"
DDS_PROFILE_NAME = "fastdds_large_images.xml"
DDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")

# Launch arguments that override a node parameter when given: name -> (type, description).
PARAMETER_ARGUMENTS = {
    "backbone": (str, "Backbone: mobilenetv2, shufflenet or darknet19 (empty: params file)"),
    "weights": (str, "Weights file (our .pt or the authors' .pth), or cityscapes: the authors' model of the backbone "
                     "after 'liteseg-weights fetch' (empty: params file, then the bundled model)"),
    "input_width": (int, "Network input width in pixels (empty: params file)"),
    "input_height": (int, "Network input height in pixels (empty: params file)"),
    "device": (str, "auto, cpu, cuda or cuda:N (empty: params file)"),
    "optimize": (str, "auto, none (eager PyTorch) or a comma-separated list of optimisations (empty: params file)"),
    "class_map": (str, "A class map YAML merging the model's classes into the published ones, e.g. the "
                       "package's config/class_map_robot.yaml (empty: params file, by default none)"),
    "output_size": (str, "Resolution of the outputs: camera, network or WIDTHxHEIGHT such as 640x360 "
                         "(empty: params file, by default camera)"),
    "cameras": (lambda text: [name.strip() for name in text.strip("[]").split(",") if name.strip()],
                "Several cameras on one model, e.g. [front, rear]: subscribes front/image, rear/image and publishes "
                "~/front/mask, ... (empty: params file, by default one camera on image_topic)"),
}


def generate_launch_description():
    """Declare the launch arguments; the node is configured once they are known."""
    arguments = [
        DeclareLaunchArgument(name, default_value="", description=description)
        for name, (_, description) in PARAMETER_ARGUMENTS.items()
    ]
    arguments += [
        DeclareLaunchArgument("image_topic", default_value="camera/image_raw",
                              description="Camera topic (sensor_msgs/Image), relative ones resolved in the namespace; "
                                          "<image_topic>/compressed is used when input_transport is compressed"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "liteseg.yaml"]),
                              description="Node parameters (YAML)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node, its outputs and a relative image_topic"),
        DeclareLaunchArgument("managed", default_value="false", choices=["true", "false"],
                              description="Start the lifecycle (managed) node segmentation_lifecycle_node"),
        DeclareLaunchArgument("autostart", default_value="false", choices=["true", "false"],
                              description="With managed:=true: configure and activate the node at launch"),
        DeclareLaunchArgument("dds_profile",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                                  DDS_PROFILE_NAME]),
                              description="Fast DDS profile given to the node (FASTRTPS_DEFAULT_PROFILES_FILE) unless "
                                          "the environment names one: shared memory sized for camera frames. "
                                          "Empty: leave the DDS configuration alone"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 with config/liteseg.rviz (overlay and colour mask); "
                                          "without rviz2 installed: a warning, and the node alone"),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_launch_setup)])


def _parameter_overrides(context):
    overrides = {}
    for name, (cast, _) in PARAMETER_ARGUMENTS.items():
        value = LaunchConfiguration(name).perform(context).strip()
        if not value:
            continue
        try:
            overrides[name] = cast(value)
        except ValueError:
            raise ValueError(f"launch argument {name}:={value} must be {getattr(cast, '__name__', 'a list')}") from None
    return overrides


def _rviz2_missing():
    """None when rviz2 is installed, else the warning to log instead of starting it."""
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        distro = os.environ.get("ROS_DISTRO") or "<distro>"
        return (f"rviz:=true, but rviz2 is not installed (sudo apt install ros-{distro}-rviz2): "
                "starting the node without rviz2")
    return None


def _rviz_config(namespace):
    """The packaged rviz config, with its topics moved into ``namespace`` when there is one."""
    config = Path(get_package_share_directory(PACKAGE)) / "config" / "liteseg.rviz"
    if not namespace:
        return str(config)
    text = config.read_text(encoding="utf-8").replace(RVIZ_TOPIC_PREFIX, f"/{namespace}{RVIZ_TOPIC_PREFIX}")
    path = Path(tempfile.gettempdir()) / f"liteseg_{namespace.replace('/', '_')}.rviz"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _launch_setup(context):
    namespace = LaunchConfiguration("namespace").perform(context).strip("/")
    image_topic = LaunchConfiguration("image_topic").perform(context)
    overrides = _parameter_overrides(context)
    managed = LaunchConfiguration("managed").perform(context) == "true"
    node_options = dict(
        package=PACKAGE,
        name=NODE_NAME,
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file")] + ([overrides] if overrides else []),
        remappings=[("image", image_topic), ("image/compressed", f"{image_topic}/compressed")],
        additional_env=_dds_environment(LaunchConfiguration("dds_profile").perform(context).strip()),
    )
    if managed:
        segmentation_node = LifecycleNode(executable="segmentation_lifecycle_node", namespace="", **node_options)
    else:
        segmentation_node = Node(executable="segmentation_node", **node_options)
    actions = [segmentation_node, _fail_when_node_fails(segmentation_node)]
    if managed and LaunchConfiguration("autostart").perform(context) == "true":
        actions += _autostart(segmentation_node)
    if LaunchConfiguration("rviz").perform(context) == "true":
        missing = _rviz2_missing()  # checked before anything starts: no orphaned node when rviz2 is absent
        if missing:
            launch.logging.get_logger("launch").warning(missing)
        else:
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                                arguments=["-d", _rviz_config(namespace)]))
    if namespace:
        return [GroupAction([PushRosNamespace(namespace), *actions])]
    return actions


class NodeFailed(RuntimeError):
    """The segmentation node exited with a non-zero status before launch was shutting down."""


def _fail_when_node_fails(node):
    """End launch with a non-zero status when the node exits with one (it could not start, or crashed): launch
    turns an exception in an event handler into a shutdown and exit status 1; a Shutdown action would exit 0."""
    def on_exit(event, context):
        if event.returncode != 0 and not context.is_shutdown:
            raise NodeFailed(f"{event.process_name} exited with status {event.returncode} (its error is logged "
                             "above): shutting down")
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def _dds_environment(profile):
    """The node's Fast DDS profile variable, unless ``profile`` is empty or the environment names a profile."""
    if not profile or any(os.environ.get(variable) for variable in DDS_PROFILE_VARIABLES):
        return {}
    return {DDS_PROFILE_VARIABLES[0]: profile}


def _autostart(node):
    """Configure the lifecycle node at launch, and activate it once it is inactive (the Nav2 convention)."""
    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [activate_when_inactive, change(Transition.TRANSITION_CONFIGURE)]
