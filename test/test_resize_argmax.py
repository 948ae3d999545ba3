"""The CPU's resize + argmax (liteseg_ros.inference.resize_argmax) and blend: the sparse way gives the classes of
the per-pixel separable bilinear resize bit for bit, the dense way those of F.interpolate wherever two classes do
not tie, a fragmented scene takes the dense way, and the OpenCV blend is used only where it gives blend's bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from liteseg_ros.inference.resampling import AxisMap, bilinear_map, block_banded, compose
from liteseg_ros.inference.resize_argmax import (
    MIXED,
    ResizeArgmax,
    dense_argmax,
    first_argmax,
    resize_argmax,
    sparse_values,
)
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.inference.stages import blend, rgb_view
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from segmenter_fixtures import one_torch_thread  # noqa: F401  (autouse)

# (logits size, image size): upsampling by the network's align-corners map composed with a half-pixel resize (3
# taps), a plain half-pixel upsampling (2 taps), and a downsampling.
SHAPES = [((23, 41), (184, 328), True), ((23, 41), (100, 180), False), ((40, 64), (30, 50), False)]


def _maps(low: tuple[int, int], image: tuple[int, int], composed: bool) -> tuple[AxisMap, AxisMap]:
    if not composed:
        return tuple(bilinear_map(n, m, align_corners=False) for n, m in zip(low, image))
    network = (low[0] * 4, low[1] * 4)
    return tuple(compose(bilinear_map(n, k, align_corners=True), bilinear_map(k, m, align_corners=False))
                 for n, k, m in zip(low, network, image))


def _smooth_logits(classes: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Logits of a few large regions (a street-like class map: sky, buildings, road, a car) plus noise: few mixed
    pixels."""
    height, width = size
    regions = torch.zeros(size, dtype=torch.int64)
    regions[height // 3:] = 1
    regions[2 * height // 3:] = 2
    regions[height // 2: 5 * height // 6, width // 3: width // 2] = 3
    noise = torch.randn(classes, *size, generator=torch.Generator().manual_seed(seed))
    return (F.one_hot(regions, classes).permute(2, 0, 1) * 6.0 + noise).contiguous()


def _fragmented_logits(classes: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Independent logits per pixel: a class map with boundaries everywhere."""
    return torch.randn(classes, *size, generator=torch.Generator().manual_seed(seed)).contiguous()


def _per_pixel_values(logits: torch.Tensor, rows: AxisMap, cols: AxisMap) -> torch.Tensor:
    """The resampled logits at every pixel (H*W x C) with the float operations of the previous implementation: at
    each pixel, for each column tap the row taps' weighted logits summed in order, times the column weight, summed
    in order."""
    classes, height, width = logits.shape
    flat = logits.permute(1, 2, 0).reshape(-1, classes)
    ys, xs = torch.meshgrid(torch.arange(rows.out_size), torch.arange(cols.out_size), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    total = None
    for j in range(cols.taps):
        column = None
        for k in range(rows.taps):
            term = flat.index_select(0, rows.index[ys, k] * width + cols.index[xs, j]).mul_(rows.weight[ys, k, None])
            column = term if column is None else column.add_(term)
        column.mul_(cols.weight[xs, j, None])
        total = column if total is None else total.add_(column)
    return total


def _per_pixel_reference(logits: torch.Tensor, rows: AxisMap, cols: AxisMap) -> torch.Tensor:
    """The class at every pixel from :func:`_per_pixel_values`."""
    values = _per_pixel_values(logits, rows, cols)
    return values.max(dim=1).indices.view(rows.out_size, cols.out_size).to(torch.uint8)


def _uniform_reference(logits: torch.Tensor, rows: AxisMap, cols: AxisMap, classes: torch.Tensor) -> torch.Tensor:
    """``classes`` where every tap of a pixel has the same low-resolution argmax (that argmax), MIXED elsewhere."""
    low = logits.argmax(0)
    taps = low[rows.index[:, :, None, None], cols.index[None, None, :, :]]  # H x Kr x W x Kc
    uniform = (taps == taps[:, :1, :, :1]).all(dim=3).all(dim=1)
    return torch.where(uniform, taps[:, 0, :, 0].to(torch.uint8), classes)


@pytest.mark.parametrize("low, image, composed", SHAPES)
@pytest.mark.parametrize("kind", ["smooth", "fragmented"])
def test_the_sparse_way_gives_the_previous_classes_bit_for_bit(low, image, composed, kind):
    logits = (_smooth_logits if kind == "smooth" else _fragmented_logits)(19, low, seed=3)
    rows, cols = _maps(low, image, composed)
    sparse = ResizeArgmax(logits, rows, cols, dense_share=1.0)  # never dense
    got = sparse.band(0, rows.out_size)
    assert "dense" not in sparse.ways and "sparse" in sparse.ways
    expected = _uniform_reference(logits, rows, cols, _per_pixel_reference(logits, rows, cols))
    assert torch.equal(got, expected)
    ys, xs = (part.reshape(-1) for part in torch.meshgrid(torch.arange(rows.out_size),
                                                           torch.arange(cols.out_size), indexing="ij"))
    pixels_last = logits.permute(1, 2, 0).contiguous()
    assert torch.equal(sparse_values(pixels_last, rows, cols, ys, xs), _per_pixel_values(logits, rows, cols))


@pytest.mark.parametrize("low, image, composed", SHAPES)
def test_the_dense_way_agrees_with_the_dense_resize_except_at_float_ties(low, image, composed):
    logits = _fragmented_logits(19, low, seed=5)
    rows, cols = _maps(low, image, composed)
    dense = ResizeArgmax(logits, rows, cols, dense_share=0.0)  # always dense where a chunk has mixed pixels
    got = dense.band(0, rows.out_size)
    assert set(dense.ways) == {"dense"}
    reference = _per_pixel_reference(logits, rows, cols)
    differing = got != _uniform_reference(logits, rows, cols, reference)
    assert int(differing.sum()) <= 2  # ties to float rounding only (typically none)
    values = _resampled_values(logits, rows, cols)
    top2 = values.topk(2, dim=0).values
    assert bool((top2[0] - top2[1])[differing].le(1e-5).all())


def _resampled_values(logits: torch.Tensor, rows: AxisMap, cols: AxisMap) -> torch.Tensor:
    def matrix(axis: AxisMap) -> torch.Tensor:
        dense = torch.zeros(axis.out_size, axis.in_size, dtype=torch.float64)
        for k in range(axis.taps):
            dense.index_put_((torch.arange(axis.out_size), axis.index[:, k]), axis.weight[:, k].double(),
                             accumulate=True)
        return dense

    return torch.einsum("yh,chw,xw->cyx", matrix(rows), logits.double(), matrix(cols))


def test_a_fragmented_class_map_takes_the_dense_way_and_a_smooth_one_the_sparse_way():
    rows, cols = _maps((23, 41), (184, 328), True)
    fragmented = ResizeArgmax(_fragmented_logits(19, (23, 41), 1), rows, cols)
    fragmented.band(0, 184)
    smooth = ResizeArgmax(_smooth_logits(19, (23, 41), 1), rows, cols)
    smooth.band(0, 184)
    assert set(fragmented.ways) == {"dense"} and set(smooth.ways) == {"sparse"}


def test_bands_of_any_rows_give_the_whole_image():
    logits = _fragmented_logits(7, (23, 41), 2)
    rows, cols = _maps((23, 41), (184, 328), True)
    whole = resize_argmax(logits, rows, cols)
    resizer = ResizeArgmax(logits, rows, cols)
    assert torch.equal(torch.cat([resizer.band(a, b) for a, b in ((0, 5), (5, 100), (100, 101), (101, 184))]),
                       whole)
    assert int((whole == MIXED).sum()) == 0 and int(whole.max()) < 7


@pytest.mark.parametrize("low, image, composed", SHAPES)
def test_the_banded_matrix_is_the_map(low, image, composed):
    for axis in _maps(low, image, composed):
        banded = block_banded(axis, 16)
        signal = torch.randn(axis.in_size, dtype=torch.float64)
        by_taps = (signal[axis.index] * axis.weight.double()).sum(1)
        windows = signal[banded.index].view(banded.blocks, banded.span)
        by_blocks = torch.einsum("bs,bsi->bi", windows, banded.weights.double()).reshape(-1)[: axis.out_size]
        assert torch.allclose(by_taps, by_blocks, atol=1e-6)
        assert banded.weights.reshape(banded.blocks, banded.span, -1).sum(1).reshape(-1)[axis.out_size:].eq(0).all()


def test_first_argmax_takes_the_first_of_tied_maxima():
    values = torch.randint(0, 3, (5, 9, 4, 6)).float()  # many ties
    assert torch.equal(first_argmax(values, dim=1), values.argmax(dim=1).to(torch.uint8))
    assert torch.equal(first_argmax(values.to(torch.bfloat16), dim=1), values.argmax(dim=1).to(torch.uint8))


def test_the_integer_blend_of_half_and_half_gives_the_float_blends_bytes():
    """alpha 0.5 (the default) is blended in integers on the CPU: the very bytes of the float32 blend, halves rounded
    to even, for all 65,536 (image, colour) value pairs; another alpha takes the float form."""
    values = np.arange(256, dtype=np.uint8)
    image, color = torch.from_numpy(np.repeat(values, 256)), torch.from_numpy(np.tile(values, 256))
    floats = image.float().mul(0.5).add(color.float().mul(0.5)).round().to(torch.uint8)
    assert torch.equal(blend(image, color, 0.5), floats) and torch.equal(blend(image, color, torch.tensor(0.5)), floats)
    assert blend(torch.tensor([3], dtype=torch.uint8), torch.tensor([0], dtype=torch.uint8), 0.5).item() == 2
    assert blend(torch.tensor([5], dtype=torch.uint8), torch.tensor([0], dtype=torch.uint8), 0.5).item() == 2
    assert blend(torch.tensor([255], dtype=torch.uint8), torch.tensor([255], dtype=torch.uint8), 0.5).item() == 255
    third = image.float().mul(1 - 0.3).add(color.float().mul(0.3)).round().to(torch.uint8)
    assert torch.equal(blend(image, color, torch.tensor(0.3)), third)


@pytest.mark.parametrize("alpha", [0.3, 0.5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_the_segmenters_overlay_is_the_blend_of_image_and_colour(alpha, encoding):
    rgb = unseen_frames(1, 180, 320)[0].image
    image = {"rgb8": rgb, "bgr8": np.ascontiguousarray(rgb[..., ::-1]), "mono8": rgb[..., 1:2].copy()}[encoding]
    segmenter = Segmenter(bundled_model_path(), device="cpu", input_size=(96, 160), precision="fp32",
                          overlay_alpha=alpha, postprocess_threads=2)
    result = segmenter.segment(image, encoding)
    viewed = rgb_view(torch.from_numpy(image), encoding)
    expected = blend(viewed, torch.from_numpy(result.color), torch.tensor(alpha)).numpy()
    assert np.array_equal(result.overlay, expected)


@pytest.mark.parametrize("upsample", ["logits", "mask"])
def test_output_size_gives_the_outputs_of_the_image_resized_to_it(upsample):
    """Outputs at the network's input size equal those of the image resized to it beforehand (the network sees the
    same input); at another size they have that size, and the overlay blends the image resized to it."""
    image = unseen_frames(1, 270, 480)[0].image
    options = dict(device="cpu", input_size=(96, 160), precision="fp32", upsample=upsample)
    at_input = Segmenter(bundled_model_path(), output_size="input", **options)
    plain = Segmenter(bundled_model_path(), **options)
    resized = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], size=(96, 160), mode="bilinear",
                            align_corners=False, antialias=True)[0].permute(1, 2, 0).contiguous().numpy()
    got, expected = at_input.segment(image), plain.segment(resized)
    for name in ("mask", "color", "overlay"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    sized = Segmenter(bundled_model_path(), output_size=(135, 240), **options).segment(image)
    assert sized.mask.shape == (135, 240) and sized.overlay.shape == (135, 240, 3)
    assert (sized.mask == plain.segment(image).mask[::2, ::2]).mean() > 0.9
    half = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], size=(135, 240), mode="bilinear",
                         align_corners=False, antialias=True)[0].permute(1, 2, 0)
    assert np.array_equal(sized.overlay, blend(half, torch.from_numpy(sized.color), torch.tensor(0.5)).numpy())


@pytest.mark.parametrize("size", ["full", (0, 10), (10,), "10x10"])
def test_a_bad_output_size_is_a_config_error(size):
    from liteseg_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="output_size must be"):
        Segmenter(bundled_model_path(), device="cpu", output_size=size)


def test_the_dense_way_on_some_column_blocks_equals_it_on_all():
    logits = _fragmented_logits(19, (23, 41), 4)
    rows, cols = _maps((23, 41), (184, 328), True)
    banded = cols.banded
    windows = logits.index_select(2, banded.index)
    band = AxisMap(rows.index[40:90], rows.weight[40:90], rows.in_size)
    everywhere = dense_argmax(windows, band, banded)
    active = torch.tensor([0, 2, banded.blocks - 1])
    some = dense_argmax(windows, band, banded, active)
    columns = torch.arange(cols.out_size) // banded.block
    computed = torch.isin(columns, active)
    assert banded.blocks == 6 and some.shape == everywhere.shape == (50, 328)
    assert torch.equal(some[:, computed], everywhere[:, computed]) and not some[:, ~computed].any()
