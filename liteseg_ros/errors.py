"""Typed errors of liteseg_ros. Each message says what is wrong and what to do; and the exit statuses of its
programs."""

EXIT_ERROR = 2  # a configuration, data or input error: one line on stderr, nothing done
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), what a shell reports for an interrupted program


class LiteSegError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(LiteSegError, ValueError):
    """An invalid option or parameter value (unknown backbone, bad input size, ...)."""


class ClassSetError(ConfigError):
    """A class set or class map that cannot be used: no classes, too many, duplicate names or colours, a bad
    colour, a name the model does not have."""


class InputSizeError(ConfigError):
    """An input size the chosen backbone cannot take."""


class OptimizationError(LiteSegError):
    """An optimisation that cannot be set up here (a missing package, a network it cannot handle).

    Start-up code catches it and falls back to the next fastest way of running the network, with a warning."""


class WeightsError(LiteSegError):
    """A weights file that cannot be read: missing, truncated, corrupt, unsafe or foreign."""


class IncompatibleWeightsError(WeightsError):
    """Weights that are readable but belong to another architecture or class count."""


class ImageError(LiteSegError, ValueError):
    """An image that cannot be segmented (bad shape, dtype, encoding or data size)."""


class DepthError(ImageError):
    """A depth image or camera_info that cannot make a point cloud: an unknown encoding, no intrinsics, sizes that
    disagree."""


class DatasetError(LiteSegError):
    """A dataset tree that is not in the expected (Cityscapes) layout."""


class BagError(LiteSegError):
    """A rosbag2 bag that cannot be replayed: missing, not a bag, corrupt, no image topic."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's first line (at most ``limit`` characters) for a one-line message; prefixed by its type
    unless it is one of ours, whose messages say what to do on their own."""
    text = str(error).strip()
    text = text.splitlines()[0][:limit] if text else type(error).__name__
    return text if isinstance(error, LiteSegError) else f"{type(error).__name__}: {text}"
