"""liteseg_ros: LiteSeg real-time semantic segmentation for ROS 2.

The core (``model``, ``segmenter``, ``labels``, ``metrics``, ``datasets``) imports no ROS
package; only ``liteseg_ros.ros.node`` and ``liteseg_ros.images.conversions`` need rclpy / sensor_msgs.
"""

__version__ = "0.1.0"
