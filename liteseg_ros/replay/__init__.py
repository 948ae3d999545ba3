"""Rosbag replay evaluation: bags in, segmented bags and accuracy/latency reports out (no rclpy needed offline)."""
