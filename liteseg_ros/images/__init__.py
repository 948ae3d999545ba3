"""Image buffers: raw and compressed frames (and the camera encodings) to the Segmenter's input. No ROS imports:
the message readers take any object with sensor_msgs/Image's fields (rclpy's or rosbags')."""
