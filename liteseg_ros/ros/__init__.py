"""The ROS 2 adapter, the only package that imports rclpy and *_msgs: the plain and the managed node, their
parameters, runtime (cameras, worker), statistics and diagnostics, message building, live replay."""
