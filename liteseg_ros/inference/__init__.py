"""Inference: the Segmenter (uint8 image in; mask, colour, overlay out), its device-agnostic pipeline stages,
the CUDA path and the deployment optimisations. No ROS imports."""
