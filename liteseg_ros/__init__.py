"""liteseg_ros: LiteSeg real-time semantic segmentation for ROS 2.

``from liteseg_ros import Segmenter`` is the public entry point (uint8 image in; mask, colour, overlay out).
The packages show the layers: ``inference``, ``images``, ``model``, ``labels``/``metrics``, ``datasets`` and
``replay`` import no ROS package; ``ros`` is the only package that imports rclpy and ``*_msgs`` (the nodes);
``tools`` holds the command-line tools, the demo and the synthetic data; ``training`` the training pipeline.
test/test_layering.py checks it.
"""

__version__ = "0.1.0"
__all__ = ["SegmentationResult", "Segmenter", "__version__"]


def __getattr__(name: str):
    # imported on first use: `import liteseg_ros` stays light (no torch) for the launch file and the tools
    if name in ("Segmenter", "SegmentationResult"):
        from liteseg_ros.inference import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module 'liteseg_ros' has no attribute {name!r}")
