"""The node's output_size parameter, through a real node process: the mask comes at the asked size with the
input's header, equal to the in-process Segmenter's at that size."""

from __future__ import annotations

import numpy as np
import pytest

from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import mask_from_node

INPUT = (96, 160)


@pytest.mark.ros
@pytest.mark.parametrize("output_size, shape", [("network", INPUT), ("120x200", (120, 200))])
def test_the_node_publishes_masks_at_the_output_size(ros_client, tmp_path, output_size, shape):
    image = unseen_frames(1, 270, 480)[0].image
    segmenter_size = "input" if output_size == "network" else shape
    expected = Segmenter(bundled_model_path(), device="cpu", input_size=INPUT,
                         output_size=segmenter_size).segment(image).mask
    mask, _ = mask_from_node(ros_client, tmp_path, "/sized", {"device": "cpu", "input_height": INPUT[0],
                                                              "input_width": INPUT[1], "output_size": output_size},
                             image)  # matched to the sent frame by its header stamp
    assert mask.shape == shape
    assert np.mean(mask == expected) >= 0.999
