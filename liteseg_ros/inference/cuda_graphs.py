"""CUDA graphs: capture a function of fixed-shape device tensors once, replay it per call."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from liteseg_ros.errors import ConfigError


class CudaGraphRunner:
    """Capture ``function(*static_inputs)`` once as a CUDA graph; calls copy new inputs in and replay it.

    The returned tensors are the graph's static outputs: they are overwritten by the next call, so copy what
    must outlive it. Inputs must keep the example inputs' shapes and dtypes.
    """

    def __init__(self, function: Callable[..., Any], example_inputs: Sequence[torch.Tensor], warmup: int = 3,
                 *, copy_inputs: bool = True):
        """``copy_inputs=False`` makes the example tensors themselves the static inputs: write new data into them
        and call with no arguments (saves a device-to-device copy per call)."""
        if not torch.cuda.is_available():
            raise ConfigError("CUDA graphs need CUDA, which is not available")
        self.static_inputs = [tensor.clone() if copy_inputs else tensor for tensor in example_inputs]
        side_stream = torch.cuda.Stream()
        side_stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side_stream):
            for _ in range(max(warmup, 1)):  # cuDNN autotuning and lazy initialisation must not be captured
                function(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side_stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_outputs = function(*self.static_inputs)

    def __call__(self, *inputs: torch.Tensor) -> Any:
        for static, new in zip(self.static_inputs, inputs):
            if static.data_ptr() != new.data_ptr():
                static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.static_outputs
