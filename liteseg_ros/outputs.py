"""The outputs' names, written once: what the Segmenter returns, the topics the node publishes them on
(``~/<topic>``, ``~/<camera>/<topic>``), their encodings, and the node's name (replay writes the outputs under
``/<NODE_NAME>/<topic>``, as the node publishes them). No imports."""

NODE_NAME = "liteseg"
NODE_NAMESPACE = f"/{NODE_NAME}"  # where a node of the default name publishes its outputs
OUTPUTS = ("mask", "color", "overlay", "confidence")  # SegmentationResult fields, `outputs=` of Segmenter.segment
DEFAULT_OUTPUTS = ("mask", "color", "overlay")  # Segmenter.segment's default: the confidence costs, asked for
OUTPUT_TOPICS = {"mask": "mask", "color": "color_mask", "overlay": "overlay", "confidence": "confidence"}
OUTPUT_ENCODINGS = {"mask": "mono8", "color": "rgb8", "overlay": "rgb8", "confidence": "mono8"}
OUTPUT_QOS_DEPTH = 5  # the reliable outputs' keep-last depth (output_qos_depth's default; replay's bags offer it)
LABEL_INFO_TOPIC = "label_info"  # vision_msgs/LabelInfo of the published class set (``~/<camera>/label_info``)


def replay_topic(output: str) -> str:
    """The topic of ``output`` in a replayed bag: where a node with the default name publishes it."""
    return f"{NODE_NAMESPACE}/{OUTPUT_TOPICS[output]}"
