"""The models bundled with the package (``models/``, installed to ``share/liteseg_ros/models``)."""

from __future__ import annotations

import sys
from pathlib import Path

from liteseg_ros.errors import WeightsError

PACKAGE_NAME = "liteseg_ros"
DEFAULT_BACKBONE = "mobilenetv2"
DEFAULT_INPUT_SIZE = (360, 640)  # (height, width) the bundled models were trained at: the default everywhere


def package_data_dirs(folder: str) -> list[Path]:
    """Where the package's ``folder`` (models, config) may be: the ament share directory, pip's data-files
    prefix, then the source tree."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE_NAME)) / folder)
    except Exception:  # ament_index_python missing, or the package not on AMENT_PREFIX_PATH
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE_NAME / folder)
    dirs.append(Path(__file__).resolve().parents[2] / folder)
    return dirs


def bundled_model_dirs() -> list[Path]:
    """Where bundled models may be (:func:`package_data_dirs` of ``models``)."""
    return package_data_dirs("models")


def bundled_model_name(backbone: str) -> str:
    return f"liteseg_{backbone}_synthetic.pt"


def bundled_model_path(backbone: str = DEFAULT_BACKBONE) -> Path:
    """The bundled model of ``backbone``; WeightsError saying where it looked when there is none."""
    name = bundled_model_name(backbone)
    dirs = bundled_model_dirs()
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    raise WeightsError(
        f"no bundled model {name} in {', '.join(map(str, dirs))}; pass a weights file "
        f"(only {DEFAULT_BACKBONE} has a bundled demo model)"
    )
