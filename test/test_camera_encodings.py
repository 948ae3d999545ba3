"""Camera encodings (YUV 4:2:2, NV21, NV24, Bayer 8/16-bit): built from a known RGB image by each encoding's
definition, decoded by liteseg_ros, and segmented by a real node process."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from sensor_msgs.msg import Image
from test_node_io import NodeUnderTest, header

from liteseg_ros.errors import ImageError
from liteseg_ros.images.camera_encodings import CAMERA_ENCODINGS
from liteseg_ros.images.conversions import image_msg_to_array, raw_to_segmenter_input
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import render_scene

from conftest import spawn_node, wait_until_ready

HEIGHT, WIDTH = 240, 384
INPUT_SIZE = (128, 224)
BAYER_OFFSETS = {"R": 0, "G": 1, "B": 2}


def street() -> np.ndarray:
    """A synthetic street frame, smoothed (as a camera's optics and ISP would) so that chroma subsampling and
    demosaicing change little."""
    import cv2

    rgb, _, _ = render_scene(4, HEIGHT, WIDTH)
    return cv2.GaussianBlur(rgb, (0, 0), 1.0)


def _yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range (the YUV of UYVY/YUY2/NV21 cameras), as floats."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return y, u, v


def _u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, bool]:
    """(rows of bytes, is_bigendian) of ``rgb`` in ``encoding``, following the encoding's definition."""
    height, width = rgb.shape[:2]
    y, u, v = _yuv(rgb)
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        u2, v2 = (c.reshape(height, width // 2, 2).mean(axis=2) for c in (u, v))  # one chroma per pixel pair
        y0, y1 = y[:, 0::2], y[:, 1::2]
        order = (u2, y0, v2, y1) if encoding in ("yuv422", "uyvy") else (y0, u2, y1, v2)
        return _u8(np.stack(order, axis=2)).reshape(height, width * 2), False
    if encoding == "nv21":
        u4, v4 = (c.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)) for c in (u, v))
        chroma = np.stack([v4, u4], axis=2).reshape(height // 2, width)  # V first in NV21
        return np.concatenate([_u8(y), _u8(chroma)]), False
    if encoding == "nv24":
        chroma = np.stack([u, v], axis=2).reshape(height, 2 * width)  # U first in NV24
        return np.concatenate([_u8(y), _u8(chroma).reshape(2 * height, width)]), False
    pattern = encoding[len("bayer_"):len("bayer_") + 4].upper()
    mosaic = np.zeros((height, width), np.uint8)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, BAYER_OFFSETS[colour]]
    if encoding.endswith("16"):
        wide = mosaic.astype(np.uint16) * 257
        big = encoding == "bayer_grbg16"  # one 16-bit form big-endian, to cover is_bigendian
        return wide.astype(">u2" if big else "<u2").view(np.uint8).reshape(height, 2 * width), big
    return mosaic, False


def pad(rows: np.ndarray, padding: int, encoding: str) -> tuple[bytes, int]:
    """The rows with ``padding`` bytes appended to each (the chroma rows of NV24 are two steps long)."""
    if encoding == "nv24":
        height = rows.shape[0] // 3
        luma, chroma = rows[:height], rows[height:].reshape(height, -1)
        step = luma.shape[1] + padding
        luma = np.pad(luma, ((0, 0), (0, padding)))
        chroma = np.pad(chroma, ((0, 0), (0, 2 * padding)))
        return np.concatenate([luma.ravel(), chroma.ravel()]).tobytes(), step
    padded = np.pad(rows, ((0, 0), (0, padding)))
    return padded.tobytes(), padded.shape[1]


ENCODINGS = sorted(CAMERA_ENCODINGS)


@pytest.mark.parametrize("padding", [0, 6])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_each_encoding_decodes_to_the_original_image(encoding, padding):
    rgb = street()
    rows, big = encode(rgb, encoding)
    data, step = pad(rows, padding, encoding)
    image, segmenter_encoding = raw_to_segmenter_input(data, HEIGHT, WIDTH, encoding, step, big)
    assert segmenter_encoding == "rgb8" and image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    error = np.abs(image.astype(int) - rgb.astype(int))[2:-2, 2:-2]  # demosaicing borders aside
    assert error.mean() < 3.0, (encoding, error.mean())
    assert np.percentile(error, 99) <= 24, (encoding, np.percentile(error, 99))


def test_nv24_converts_as_opencv_converts_nv21_within_one_grey_level():
    """Where the chroma is constant over 2x2 blocks, NV24 and NV21 carry the same information."""
    import cv2

    rng = np.random.default_rng(3)
    luma = rng.integers(16, 236, size=(8, 12), dtype=np.uint8)
    u4, v4 = rng.integers(16, 241, size=(2, 4, 6), dtype=np.uint8)
    nv21 = np.concatenate([luma, np.stack([v4, u4], axis=2).reshape(4, 12)])
    u, v = (np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) for c in (u4, v4))
    nv24 = np.concatenate([luma, np.stack([u, v], axis=2).reshape(16, 12)])
    ours, _ = raw_to_segmenter_input(nv24.tobytes(), 8, 12, "nv24", 12)
    opencv = cv2.cvtColor(nv21, cv2.COLOR_YUV2RGB_NV21)
    assert np.abs(ours.astype(int) - opencv.astype(int)).max() <= 1


@pytest.mark.parametrize("encoding, height, width, message", [
    ("yuv422", 4, 5, "even width"), ("yuv422_yuy2", 4, 7, "even width"), ("nv21", 5, 6, "even height"),
    ("nv21", 4, 5, "even width"), ("bayer_rggb8", 0, 6, "zero size"),
])
def test_sizes_an_encoding_cannot_carry_are_rejected(encoding, height, width, message):
    with pytest.raises(ImageError, match=message):
        raw_to_segmenter_input(bytes(4096), height, width, encoding, 4 * max(width, 1))


@pytest.mark.parametrize("encoding", ["yuv422", "nv21", "nv24", "bayer_bggr16"])
def test_short_steps_and_truncated_frames_are_rejected(encoding):
    rows, big = encode(street(), encoding)
    data, step = pad(rows, 0, encoding)
    with pytest.raises(ImageError, match="truncated"):
        raw_to_segmenter_input(data[:-1], HEIGHT, WIDTH, encoding, step, big)
    with pytest.raises(ImageError, match="shorter than one row"):
        raw_to_segmenter_input(data, HEIGHT, WIDTH, encoding, WIDTH - 2, big)


@pytest.fixture(scope="module")
def camera_node(ros_client, tmp_path_factory):
    """A node running the bundled (trained) model: its masks are meaningful, so agreement is too."""
    process = spawn_node(tmp_path_factory.mktemp("encodings"), "/encodings",
                         {"device": "cpu", "input_height": INPUT_SIZE[0], "input_width": INPUT_SIZE[1]})
    node = NodeUnderTest(ros_client, process, Image, "/encodings/image")
    wait_until_ready(ros_client, process, "/encodings/image")
    node.subscribe_outputs()
    node.warm_up(lambda: _message(street(), "rgb8"))
    yield node
    process.stop(signal.SIGINT)


def _message(rgb: np.ndarray, encoding: str, padding: int = 0) -> Image:
    rows, big = (rgb.reshape(HEIGHT, -1), False) if encoding == "rgb8" else encode(rgb, encoding)
    data, step = pad(rows, padding, encoding)
    return Image(header=header(f"cam_{encoding}"), height=HEIGHT, width=WIDTH, encoding=encoding,
                 is_bigendian=int(big), step=step, data=data)


def test_the_node_segments_every_camera_encoding_like_rgb8(camera_node):
    rgb = street()
    reference = image_msg_to_array(camera_node.send(_message(rgb, "rgb8"))["mask"])
    from liteseg_ros.inference.segmenter import Segmenter

    in_process = Segmenter(bundled_model_path(), device="cpu", input_size=INPUT_SIZE).segment(rgb).mask
    assert np.mean(reference == in_process) >= 0.999, "the node's rgb8 mask is the bundled model's"
    assert len(np.unique(reference)) >= 4, "a street scene has several classes"
    agreement = {}
    for index, encoding in enumerate(ENCODINGS):
        sent = _message(rgb, encoding, padding=4 * (index % 2))
        outputs = camera_node.send(sent)
        mask = image_msg_to_array(outputs["mask"])
        assert outputs["mask"].header.frame_id == f"cam_{encoding}" and mask.shape == (HEIGHT, WIDTH)
        agreement[encoding] = float(np.mean(mask == reference))
    assert min(agreement.values()) >= 0.95, agreement
