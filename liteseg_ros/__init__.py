"""liteseg_ros: LiteSeg real-time semantic segmentation for ROS 2.

``from liteseg_ros import Segmenter`` is the public entry point (uint8 image in; mask, colour, overlay out), with
``SegmenterConfig`` its options as one value.
The packages show the layers: ``inference``, ``images``, ``model``, ``labels``/``metrics``, ``datasets`` and
``replay`` import no ROS package; ``ros`` is the only package that imports rclpy and ``*_msgs`` (the nodes);
``tools`` holds the command-line tools, the demo and the synthetic data; ``training`` the training pipeline.
test/test_layering.py checks it.
"""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["SegmentationResult", "Segmenter", "SegmenterConfig", "__version__"]


def __getattr__(name: str):
    # imported on first use: `import liteseg_ros` stays light (no torch) for the launch file and the tools
    if name in ("Segmenter", "SegmentationResult"):
        from liteseg_ros.inference import segmenter

        return getattr(segmenter, name)
    if name == "SegmenterConfig":
        from liteseg_ros.inference.config import SegmenterConfig

        return SegmenterConfig
    raise AttributeError(f"module 'liteseg_ros' has no attribute {name!r}")


class _SourceTreeTraining(importlib.abc.MetaPathFinder):
    """``liteseg_ros.training`` in a source tree run in place (colcon --symlink-install, an editable install,
    ``PYTHONPATH=.``): the tree's top-level ``training/`` folder, as setup.py's package_dir installs it. Asked
    after every other finder, so an installed ``liteseg_ros/training`` always comes first."""

    def __init__(self, folder: Path):
        self.folder = folder

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != f"{__name__}.training":
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


_TREE_TRAINING = Path(__file__).resolve().parent.parent / "training"
if not (Path(__file__).parent / "training").exists() and (_TREE_TRAINING / "__init__.py").is_file() \
        and not any(isinstance(finder, _SourceTreeTraining) for finder in sys.meta_path):
    sys.meta_path.append(_SourceTreeTraining(_TREE_TRAINING))
