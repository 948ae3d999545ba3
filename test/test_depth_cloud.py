"""The labelled cloud's core (liteseg_ros.depth), without ROS: projection bit for bit as depth_image_proc's, close to
the float64 pinhole model; labels, colours and confidence per point; stride, range and class filters; depth decoding
(encodings, byte order, row padding); intrinsics from P or K; errors that say what to fix; the stamp pairing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from depth_fixtures import INTRINSICS, depth_image_proc_xyz, depth_scene, reference_xyz

from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.cloud import CloudMaker, CloudOptions, PointLayout
from liteseg_ros.depth.images import DepthImage, depth_values
from liteseg_ros.errors import DepthError, ImageError
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.stamps import StampJoin

HEIGHT, WIDTH = 120, 160


def intrinsics(height=HEIGHT, width=WIDTH, **changes) -> Intrinsics:
    values = {**INTRINSICS, **changes}
    return Intrinsics(values["fx"], values["fy"], values["cx"], values["cy"], height, width)


def labels_of(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 19, shape).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_the_projection_is_depth_image_procs_bit_for_bit_and_the_pinhole_models(encoding):
    values = depth_scene(HEIGHT, WIDTH, encoding)
    labels, confidence = labels_of(values.shape), labels_of(values.shape, 2) * 13
    cloud = CloudMaker(CITYSCAPES.palette()).make(DepthImage(values, encoding, 7, "depth"), intrinsics(), labels,
                                                  confidence)
    assert (cloud.height, cloud.width) == (HEIGHT, WIDTH) and not cloud.is_dense
    for got, exact, reference in zip((cloud.points[name] for name in "xyz"),
                                     depth_image_proc_xyz(values, encoding, **INTRINSICS),
                                     reference_xyz(values, encoding, **INTRINSICS)):
        np.testing.assert_array_equal(got.view(np.uint32), exact.view(np.uint32))  # NaNs included, bit for bit
        np.testing.assert_allclose(got, reference, rtol=2e-6, atol=1e-6, equal_nan=True)
    invalid = np.isnan(reference_xyz(values, encoding, **INTRINSICS)[2])
    z = cloud.points["z"]
    assert invalid.any() and np.isnan(z[invalid]).all() and not np.isnan(z[~invalid]).any()
    assert (cloud.points["label"] == labels).all()
    palette = CITYSCAPES.palette().astype(np.uint32)[labels]
    assert (cloud.points["rgb"] == (palette[..., 0] << 16 | palette[..., 1] << 8 | palette[..., 2])).all()
    assert (cloud.points["confidence"] == confidence.astype(np.float32) / np.float32(255)).all()


def test_the_layout_is_the_documented_one():
    with_confidence, without = PointLayout(True), PointLayout(False)
    assert [(f.name, f.offset, f.datatype) for f in with_confidence.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 2), ("confidence", 20, 7)]
    assert (with_confidence.point_step, without.point_step) == (24, 20)
    assert with_confidence.dtype.itemsize == 24 and "confidence" not in without.dtype.names


def test_stride_range_and_classes():
    values = np.full((HEIGHT, WIDTH), 2000, dtype=np.uint16)
    values[:, :10] = 9000  # 9 m: beyond a 5 m range
    values[0, 20] = 0
    labels = np.zeros(values.shape, dtype=np.uint8)
    labels[50:60, 40:80] = 11  # person
    depth = DepthImage(values, "16UC1", 0, "depth")
    strided = CloudMaker(CITYSCAPES.palette(), CloudOptions(stride=2)).make(depth, intrinsics(), labels)
    assert (strided.height, strided.width) == (60, 80)
    full = CloudMaker(CITYSCAPES.palette()).make(depth, intrinsics(), labels)
    for name in strided.points.dtype.names:
        np.testing.assert_array_equal(strided.points[name], full.points[name][::2, ::2])
    ranged = CloudMaker(CITYSCAPES.palette(), CloudOptions(max_range=5.0)).make(depth, intrinsics(), labels)
    assert np.isnan(ranged.points["x"][:, :10]).all() and not np.isnan(ranged.points["z"][1:, 10:]).any()
    people = CloudMaker(CITYSCAPES.palette(), CloudOptions(classes=frozenset({11}))).make(depth, intrinsics(), labels)
    assert people.height == 1 and people.width == 10 * 40 and people.is_dense
    assert (people.points["label"] == 11).all()
    np.testing.assert_array_equal(people.points["z"][0], full.points["z"][50:60, 40:80].reshape(-1))


def test_the_cloud_is_written_into_the_given_buffer():
    values = depth_scene(HEIGHT, WIDTH, "16UC1")
    given = {}

    def out(shape, dtype):
        given["array"] = np.zeros(shape, dtype=dtype)
        return given["array"]

    cloud = CloudMaker(CITYSCAPES.palette()).make(DepthImage(values, "16UC1", 0, "d"), intrinsics(),
                                                  labels_of(values.shape), out=out)
    assert cloud.points is given["array"]


def test_depth_values_read_byte_order_and_row_padding():
    values = depth_scene(4, 5, "32FC1", seed=3)
    padded = np.zeros((4, 5 * 4 + 8), dtype=np.uint8)
    padded[:, :20] = values.astype(">f4").view(np.uint8).reshape(4, 20)
    read = depth_values(padded.tobytes(), 4, 5, "32FC1", 28, is_bigendian=True)
    np.testing.assert_array_equal(read.view(np.uint32), values.view(np.uint32))
    millimetres = np.arange(20, dtype=np.uint16).reshape(4, 5)
    assert (depth_values(millimetres.tobytes(), 4, 5, "16UC1", 10) == millimetres).all()


@pytest.mark.parametrize("encoding, problem", [("mono8", "16UC1"), ("rgb8", "32FC1"), ("32FC3", "depth encoding")])
def test_other_encodings_are_refused_saying_which_to_publish(encoding, problem):
    with pytest.raises(DepthError, match=problem):
        depth_values(bytes(100), 5, 5, encoding, 20)


def test_a_short_buffer_is_an_image_error():
    with pytest.raises(ImageError, match="step|bytes"):
        depth_values(bytes(10), 5, 5, "16UC1", 10)


def camera_info(k=None, p=None, height=HEIGHT, width=WIDTH):
    return SimpleNamespace(k=k or [0.0] * 9, p=p or [0.0] * 12, height=height, width=width)


def test_intrinsics_come_from_p_as_image_geometry_reads_them_else_from_k():
    k = [90.0, 0, 70.0, 0, 95.0, 50.0, 0, 0, 1]
    p = [100.0, 0, 79.5, 0, 0, 104.0, 58.25, 0, 0, 0, 1, 0]
    assert Intrinsics.from_camera_info(camera_info(k, p)) == intrinsics()
    assert Intrinsics.from_camera_info(camera_info(k)) == intrinsics(fx=90.0, fy=95.0, cx=70.0, cy=50.0)
    ros1 = SimpleNamespace(K=k, P=p, height=HEIGHT, width=WIDTH)
    assert Intrinsics.from_camera_info(ros1) == intrinsics()


def test_a_camera_info_without_intrinsics_or_of_another_size_says_what_to_publish():
    with pytest.raises(DepthError, match="no intrinsics.*calibration"):
        Intrinsics.from_camera_info(camera_info())
    values = depth_scene(60, 80, "16UC1")
    with pytest.raises(DepthError, match="120x160 images but the depth image is 60x80"):
        CloudMaker(CITYSCAPES.palette()).make(DepthImage(values, "16UC1", 0, "d"), intrinsics(), labels_of((60, 80)))
    with pytest.raises(DepthError, match="labels must be computed at the depth's size"):
        CloudMaker(CITYSCAPES.palette()).make(DepthImage(depth_scene(HEIGHT, WIDTH, "16UC1"), "16UC1", 0, "d"),
                                              intrinsics(), labels_of((60, 80)))


def paired(decisions):
    return [(d.frame, d.match) for d in decisions]


def test_exact_pairing_in_either_order():
    pairing = StampJoin()
    assert paired(pairing.add_match(100, "d100")) == []
    assert paired(pairing.add_frame(100, "f100")) == [("f100", "d100")]
    assert paired(pairing.add_frame(200, "f200")) == []  # its depth image is late: the frame waits
    assert paired(pairing.add_match(200, "d200")) == [("f200", "d200")]
    assert paired(pairing.add_frame(300, "f300")) == []
    assert paired(pairing.add_match(310, "d310")) == [("f300", None)]  # a newer depth: 300's never comes


def test_the_slop_pairs_the_nearest_once_no_nearer_can_come():
    pairing = StampJoin(slop_ns=20)
    pairing.add_match(90, "d90")
    assert paired(pairing.add_frame(100, "f100")) == []  # a nearer one may still come
    assert paired(pairing.add_match(105, "d105")) == [("f100", "d105")]
    assert paired(pairing.add_frame(112, "f112")) == []
    assert paired(pairing.add_match(140, "d140")) == [("f112", "d105")]
    assert paired(pairing.add_frame(130, "f130")) == [("f130", "d140")]  # 140 is here: nothing nearer can come
    assert paired(pairing.add_frame(165, "f165")) == []
    assert paired(pairing.add_match(200, "d200")) == [("f165", None)]  # 25 and 35 ns away: beyond the slop


def test_memory_is_bounded_and_late_frames_are_decided():
    pairing = StampJoin(matches=4, waiting_frames=2)
    for stamp in range(10):
        pairing.add_match(stamp * 10, stamp)
    assert paired(pairing.add_frame(10, "old")) == [("old", None)]  # its depth image left the bounded buffer
    assert paired(pairing.add_frame(200, "a")) == [] and paired(pairing.add_frame(210, "b")) == []
    assert paired(pairing.add_frame(220, "c")) == [("a", None)]
    assert paired(pairing.clear()) == [("b", None), ("c", None)]


def test_a_depth_stamp_far_behind_starts_afresh():
    pairing = StampJoin()
    pairing.add_match(5_000_000_000, "late")
    assert paired(pairing.add_match(1_000, "replayed")) == []
    assert paired(pairing.add_frame(1_000, "f")) == [("f", "replayed")]


def depth_msg(values: np.ndarray, encoding: str = "16UC1"):
    """A sensor_msgs/Image-shaped message (the pairing reads fields, as of rclpy's and rosbags' messages)."""
    return SimpleNamespace(data=values.tobytes(), height=values.shape[0], width=values.shape[1], encoding=encoding,
                           step=values.shape[1] * values.itemsize, is_bigendian=0,
                           header=SimpleNamespace(frame_id="camera_depth"))


def test_the_depth_pairing_validates_camera_info_pairs_by_stamp_and_counts_what_gives_no_cloud():
    """The one depth state machine (the node's DepthChannel and replay both feed it): a bad camera_info is kept as
    its reason and counted; a pair becomes a cloud with the depth image's tag; a frame whose depth image never comes
    is unpaired; each kind of problem is warned about once within the throttle."""
    from liteseg_ros.depth.pairing import DepthPairing

    clouds, warnings = [], []
    pairing = DepthPairing(CloudMaker(CITYSCAPES.palette()), 0.0, lambda cloud, tag: clouds.append((tag, cloud)),
                           depth_topic="/d/image", info_topic="/d/info", slop_name="depth_slop",
                           warn=warnings.append, warn_every_s=60.0)
    values, labels = depth_scene(HEIGHT, WIDTH, "16UC1"), labels_of((HEIGHT, WIDTH))
    assert pairing.intrinsics == "no camera_info received on /d/info yet" and pairing.depth_shape() is None
    pairing.on_camera_info(camera_info())  # K and P zero
    assert isinstance(pairing.intrinsics, str) and "no intrinsics" in pairing.intrinsics
    pairing.on_depth(depth_msg(values), 100, "header100")
    pairing.on_frame(100, labels, None)  # paired, but no usable camera_info: no cloud
    assert clouds == [] and pairing.depth_shape() == (HEIGHT, WIDTH)
    good = SimpleNamespace(k=[0.0] * 9, p=[INTRINSICS["fx"], 0, INTRINSICS["cx"], 0, 0, INTRINSICS["fy"],
                                           INTRINSICS["cy"], 0, 0, 0, 1, 0], height=HEIGHT, width=WIDTH)
    pairing.on_camera_info(good)
    assert pairing.intrinsics == intrinsics()
    pairing.on_frame(200, labels, None)  # its depth image comes second
    pairing.on_depth(depth_msg(values), 200, "header200")
    assert [tag for tag, _ in clouds] == ["header200"] and (clouds[0][1].points["label"] == labels).all()
    pairing.on_frame(300, labels, None)
    pairing.clear()  # no depth image of 300 came
    pairing.on_depth(SimpleNamespace(**{**vars(depth_msg(values)), "encoding": "mono8"}), 400, "h")
    counters, last = pairing.counts.snapshot()
    assert counters == {"depth_images": 3, "clouds": 1, "unpaired": 1, "unusable": 3}, counters
    assert last.startswith("depth image on /d/image: depth image encoding 'mono8'")
    assert "no depth image on /d/image with its stamp (depth_slop 0: equal stamps) for the frame at 0.000000 s" in \
        pairing.counts.problems["unpaired"]
    assert len(warnings) == 3 and "no intrinsics" in warnings[0]  # camera_info's second problem: within the throttle
    assert warnings[1:] == [pairing.counts.problems["unpaired"], last]
