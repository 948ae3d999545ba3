"""The outputs' names, written once: what the Segmenter returns, the topics the node publishes them on
(``~/<topic>``, ``~/<camera>/<topic>``), their encodings, and the node's name (replay writes the outputs under
``/<NODE_NAME>/<topic>``, as the node publishes them). No imports."""

NODE_NAME = "liteseg"
OUTPUTS = ("mask", "color", "overlay")  # SegmentationResult fields and the `outputs=` names of Segmenter.segment
OUTPUT_TOPICS = {"mask": "mask", "color": "color_mask", "overlay": "overlay"}
OUTPUT_ENCODINGS = {"mask": "mono8", "color": "rgb8", "overlay": "rgb8"}


def replay_topic(output: str) -> str:
    """The topic of ``output`` in a replayed bag: where a node with the default name publishes it."""
    return f"/{NODE_NAME}/{OUTPUT_TOPICS[output]}"
