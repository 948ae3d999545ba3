"""Training and evaluation of LiteSeg: ``liteseg-train`` (``liteseg_ros.training.train``) and ``liteseg-eval``
(``liteseg_ros.training.evaluate``).

This folder is installed as the package ``liteseg_ros.training`` (setup.py's package_dir), its only name: imported
as a top-level ``training`` (from the source tree's root) it would be a second copy of every module, with classes
that are not the package's.
"""

if __name__ != "liteseg_ros.training":
    raise ImportError(f"import the training package as liteseg_ros.training, not {__name__}")
