"""Typed errors of liteseg_ros. Each message says what is wrong and what to do."""


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


class DatasetError(LiteSegError):
    """A dataset tree that is not in the expected (Cityscapes) layout."""


class BagError(LiteSegError):
    """A rosbag2 bag that cannot be replayed: missing, not a bag, corrupt, no image topic."""
