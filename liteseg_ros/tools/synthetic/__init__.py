"""Synthetic street scenes with Cityscapes labels (numpy + pillow only).

- :func:`render_scene` renders one random frame; :class:`Drive` renders a smooth drive.
- :func:`write_cityscapes_tree` writes frames in the exact Cityscapes directory layout.
- :func:`write_drive_bag` writes a drive as a rosbag2 bag (needs the ``rosbags`` package).
"""

from liteseg_ros.tools.synthetic.scene import Drive, render_scene

__all__ = ["Drive", "render_scene", "write_cityscapes_tree", "write_drive_bag"]


def __getattr__(name: str):
    # the writers are imported on first use: the bag writer pulls in rosbags
    if name == "write_cityscapes_tree":
        from liteseg_ros.tools.synthetic.cityscapes_writer import write_cityscapes_tree

        return write_cityscapes_tree
    if name == "write_drive_bag":
        from liteseg_ros.tools.synthetic.bag_writer import write_drive_bag

        return write_drive_bag
    raise AttributeError(name)
