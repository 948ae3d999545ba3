"""Start the liteseg segmentation node (and optionally rviz2 showing its overlay and colour mask).

    ros2 launch liteseg_ros segment.launch.py image_topic:=/camera/image_raw device:=cuda rviz:=true
    ros2 launch liteseg_ros segment.launch.py managed:=true autostart:=true cameras:="[front, rear]"
    ros2 launch liteseg_ros segment.launch.py image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw output_size:=depth

Launch arguments that are left empty keep the value of the params file (config/liteseg.yaml by
default); non-empty ones override it. A relative image_topic (the default) is resolved in the
namespace, like the node's outputs; an absolute one stays where it is. rviz:=true where rviz2 is not
installed logs a warning and starts the node alone. managed:=true starts the lifecycle node
(segmentation_lifecycle_node); autostart:=true then configures and activates it, otherwise a
lifecycle manager (Nav2's, or ros2 lifecycle set) does. The node gets config/fastdds_large_images.xml as its Fast
DDS profile unless the environment names one (dds_profile:="" leaves it alone). When the node cannot start (its
one error line says why), launch shuts down and exits with a non-zero status, so a script or a systemd unit sees
the failure. The decisions are liteseg_ros.ros.launching's functions; this file builds the actions.
"""

from pathlib import Path

import launch.logging
from ament_index_python.packages import get_package_share_directory
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
from liteseg_ros.ros.launching import (
    DDS_PROFILE_NAME,
    PACKAGE,
    PARAMETER_ARGUMENTS,
    argument_description,
    dds_environment,
    node_exit_handler,
    parameter_overrides,
    remappings,
    rviz2_missing,
    rviz_config,
)


def generate_launch_description():
    """Declare the launch arguments; the node is configured once they are known."""
    arguments = [DeclareLaunchArgument(name, default_value="", description=argument_description(name))
                 for name in PARAMETER_ARGUMENTS]
    arguments += [
        DeclareLaunchArgument("image_topic", default_value="camera/image_raw",
                              description="Camera topic (sensor_msgs/Image), relative ones resolved in the namespace; "
                                          "<image_topic>/compressed is used when input_transport is compressed"),
        DeclareLaunchArgument("depth_topic", default_value="",
                              description="Registered depth image (sensor_msgs/Image 16UC1 or 32FC1, e.g. "
                                          "/camera/aligned_depth_to_color/image_raw) for ~/points; empty: no depth"),
        DeclareLaunchArgument("depth_info_topic", default_value="",
                              description="The depth image's camera_info; empty: the camera_info beside depth_topic "
                                          "(as image_transport finds it)"),
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


def _launch_setup(context):
    namespace = LaunchConfiguration("namespace").perform(context).strip("/")
    image_topic = LaunchConfiguration("image_topic").perform(context)
    overrides = parameter_overrides({name: LaunchConfiguration(name).perform(context) for name in PARAMETER_ARGUMENTS})
    managed = LaunchConfiguration("managed").perform(context) == "true"
    node_options = dict(
        package=PACKAGE, name=NODE_NAME, output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file")] + ([overrides] if overrides else []),
        remappings=remappings(image_topic, LaunchConfiguration("depth_topic").perform(context),
                              LaunchConfiguration("depth_info_topic").perform(context)),
        additional_env=dds_environment(LaunchConfiguration("dds_profile").perform(context).strip()),
    )
    if managed:
        segmentation_node = LifecycleNode(executable="segmentation_lifecycle_node", namespace="", **node_options)
    else:
        segmentation_node = Node(executable="segmentation_node", **node_options)
    actions = [segmentation_node,
               RegisterEventHandler(OnProcessExit(target_action=segmentation_node, on_exit=node_exit_handler()))]
    if managed and LaunchConfiguration("autostart").perform(context) == "true":
        actions += _autostart(segmentation_node)
    if LaunchConfiguration("rviz").perform(context) == "true":
        missing = rviz2_missing()  # checked before anything starts: no orphaned node when rviz2 is absent
        if missing:
            launch.logging.get_logger("launch").warning(missing)
        else:
            config = Path(get_package_share_directory(PACKAGE)) / "config" / "liteseg.rviz"
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                                arguments=["-d", rviz_config(config, namespace)]))
    if namespace:
        return [GroupAction([PushRosNamespace(namespace), *actions])]
    return actions


def _autostart(node):
    """Configure the lifecycle node at launch, and activate it once it is inactive (the Nav2 convention)."""
    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [activate_when_inactive, change(Transition.TRANSITION_CONFIGURE)]
