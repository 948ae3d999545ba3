"""sensor_msgs/Image and CompressedImage <-> numpy (liteseg_ros.images.conversions)."""

from __future__ import annotations

import array
import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from liteseg_ros.errors import ImageError
from liteseg_ros.images import conversions
from liteseg_ros.images.conversions import array_from_buffer, decode_compressed, to_segmenter_input
from liteseg_ros.ros import messages

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, size=(5, 7, 1), dtype=np.uint8)


def padded_buffer(rows: np.ndarray, step: int) -> bytes:
    """Rows of raw pixel bytes, each padded with 0xEE up to ``step`` bytes."""
    flat = rows.reshape(rows.shape[0], -1).view(np.uint8)
    out = np.full((rows.shape[0], step), 0xEE, dtype=np.uint8)
    out[:, : flat.shape[1]] = flat
    return out.tobytes()


@pytest.mark.parametrize(
    "encoding, pixels, expected_rgb",
    [
        ("rgb8", RGB, RGB),
        ("bgr8", RGB[..., ::-1], RGB),
        ("rgba8", np.concatenate([RGB, ALPHA], axis=2), RGB),
        ("bgra8", np.concatenate([RGB[..., ::-1], ALPHA], axis=2), RGB),
    ],
)
@pytest.mark.parametrize("padding", [0, 5])
def test_colour_encodings_decode_with_row_padding(encoding, pixels, expected_rgb, padding):
    step = pixels.shape[1] * pixels.shape[2] + padding
    view = array_from_buffer(padded_buffer(np.ascontiguousarray(pixels), step), 5, 7, encoding, step)
    assert view.shape == pixels.shape
    np.testing.assert_array_equal(view, pixels)
    image, segmenter_encoding = to_segmenter_input(view, encoding)
    as_rgb = image[..., ::-1] if segmenter_encoding == "bgr8" else image
    np.testing.assert_array_equal(as_rgb, expected_rgb)


def test_mono8_with_padding():
    mono = RGB[..., 0].copy()
    view = array_from_buffer(padded_buffer(mono, 8), 5, 7, "mono8", 8)
    np.testing.assert_array_equal(view, mono)
    assert to_segmenter_input(view, "mono8")[1] == "mono8"


@pytest.mark.parametrize("is_bigendian", [False, True])
def test_mono16_honours_byte_order(is_bigendian):
    values = np.array([[0x0102, 0xFF00], [0x8000, 0x00FF]], dtype=np.uint16)
    raw = values.astype(">u2" if is_bigendian else "<u2").tobytes()
    view = array_from_buffer(raw, 2, 2, "mono16", 4, is_bigendian)
    np.testing.assert_array_equal(view, values)
    image, encoding = to_segmenter_input(view, "mono16")
    assert encoding == "mono8" and image.dtype == np.uint8
    np.testing.assert_array_equal(image, [[0x01, 0xFF], [0x80, 0x00]])


def test_decoding_is_a_view_of_the_message_buffer():
    data = array.array("B", padded_buffer(RGB, 21 + 3))
    view = array_from_buffer(data, 5, 7, "rgb8", 24)
    data[0] = (int(RGB[0, 0, 0]) + 1) % 256  # the view sees changes to the buffer: no copy was made
    assert view[0, 0, 0] == data[0]
    assert not array_from_buffer(bytes(data), 5, 7, "rgb8", 24).flags.writeable


@pytest.mark.parametrize(
    "height, width, encoding, step, size, message",
    [
        (5, 7, "rgb8", 20, 200, "step 20 is shorter than one row"),
        (5, 7, "rgb8", 21, 104, "fewer than step x height"),
        (5, 7, "yuv422", 14, 70, "unsupported image encoding 'yuv422'"),
        (0, 7, "rgb8", 21, 0, "zero size"),
        (5, 0, "mono8", 0, 0, "zero size"),
        (2, 2, "mono16", 5, 10, "not a multiple"),
    ],
)
def test_bad_raw_images_raise_image_error(height, width, encoding, step, size, message):
    with pytest.raises(ImageError, match=message):
        array_from_buffer(bytes(size), height, width, encoding, step)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_decodes_losslessly():
    image, encoding = decode_compressed(_encode(RGB, "PNG"), "png")
    assert encoding == "rgb8"
    np.testing.assert_array_equal(image, RGB)
    mono, encoding = decode_compressed(_encode(RGB[..., 1].copy(), "PNG"))
    assert encoding == "mono8"
    np.testing.assert_array_equal(mono, RGB[..., 1])
    rgba = np.concatenate([RGB, ALPHA], axis=2)
    image, encoding = decode_compressed(_encode(rgba, "PNG"))
    assert encoding == "rgb8"
    np.testing.assert_array_equal(image, RGB)


def test_jpeg_decodes_close_to_the_original():
    smooth = np.zeros((32, 48, 3), dtype=np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 48, dtype=np.uint8)
    smooth[..., 1] = 100
    image, encoding = decode_compressed(_encode(smooth, "JPEG"), "jpeg")
    assert encoding == "rgb8" and image.shape == smooth.shape
    assert np.abs(image.astype(int) - smooth).mean() < 4


@pytest.mark.parametrize("data, message", [(b"", "has no data"), (b"\x89PNG\r\n\x1a\n" + bytes(40), "cannot decode"),
                                           (b"not an image at all", "cannot decode")])
def test_corrupt_compressed_data_raises_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_compressed(data, "png")


def test_truncated_jpeg_raises_image_error():
    jpeg = _encode(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(ImageError, match="cannot decode compressed image"):
        decode_compressed(jpeg[: len(jpeg) // 2], "jpeg")


def test_image_message_round_trip_keeps_header_and_pixels():
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = messages.array_to_image_msg(RGB, "rgb8", header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, "rgb8")
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.nanosec == 345
    np.testing.assert_array_equal(conversions.image_msg_to_array(msg), RGB)
    mask = RGB[..., 2].copy()
    mono = messages.array_to_image_msg(mask, "mono8")
    assert mono.step == 7 and isinstance(mono, Image)
    np.testing.assert_array_equal(conversions.image_msg_to_array(mono), mask)
    # a non-contiguous array is published correctly too
    np.testing.assert_array_equal(conversions.image_msg_to_array(messages.array_to_image_msg(RGB[:, ::2], "rgb8")),
                                  RGB[:, ::2])


@pytest.mark.parametrize("array, encoding", [(RGB, "mono8"), (RGB[..., 0], "rgb8"), (RGB.astype(np.int16), "rgb8"),
                                             (RGB, "bgr8"), (np.zeros((0, 4), np.uint8), "mono8")])
def test_publishing_wrong_arrays_raises_image_error(array, encoding):
    with pytest.raises(ImageError):
        messages.array_to_image_msg(array, encoding)


def test_compressed_message_round_trip():
    msg = messages.array_to_compressed_msg(RGB, "png")
    assert msg.format == "png"
    image, encoding = conversions.compressed_msg_to_segmenter_input(msg)
    np.testing.assert_array_equal(image, RGB)


def test_large_frame_encoding_uses_the_fast_path():
    """tobytes() into Image.data: a 1080p RGB frame takes milliseconds, not the element-wise ~0.2 s.

    The timing is printed (a measurement, not an assert); the assert checks that the data arrived whole.
    """
    frame = RNG.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    start = time.perf_counter()
    msg = messages.array_to_image_msg(frame, "rgb8")
    elapsed = time.perf_counter() - start
    print(f"\narray_to_image_msg 1920x1080 rgb8: {elapsed * 1e3:.1f} ms")
    assert len(msg.data) == frame.size
    np.testing.assert_array_equal(conversions.image_msg_to_array(msg)[-1], frame[-1])
