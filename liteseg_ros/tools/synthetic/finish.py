"""Turns a flat-shaded drawing into a camera-like image: class textures, cast shadows on the
ground, global exposure / contrast / colour cast, vignetting and sensor noise (vectorised numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from liteseg_ros.tools.synthetic import palette as pal

_ID = pal.ID


def _table(values: dict[str, float], default: float) -> np.ndarray:
    table = np.full(256, default, dtype=np.float32)
    for name, value in values.items():
        table[_ID[name]] = value
    return table


#: per-pixel grain (grey levels) by labelId
FINE = _table({"road": 7, "sidewalk": 6, "parking": 6, "ground": 9, "building": 5, "wall": 6, "fence": 5,
               "vegetation": 13, "terrain": 10, "sky": 1.5, "traffic sign": 2, "car": 3, "bus": 3,
               "train": 3, "truck": 3}, 4.0)
#: blotches of about 4 px (leaves, dirt, stains) by labelId
MID = _table({"vegetation": 24, "terrain": 11, "ground": 10, "road": 3, "sidewalk": 4, "wall": 6,
              "building": 3, "static": 4}, 0.0)
#: slow variation over about 1/16 of the image (wear, clouds, lawn patches) by labelId
COARSE = _table({"road": 8, "sidewalk": 8, "parking": 8, "terrain": 12, "building": 8, "vegetation": 10,
                 "sky": 7, "wall": 8, "ground": 10}, 2.0)
#: labelIds that receive cast shadows
SHADOWED = np.zeros(256, dtype=bool)
SHADOWED[[_ID[n] for n in ("road", "sidewalk", "parking", "terrain", "ground")]] = True


@dataclass(frozen=True)
class Look:
    """Global photometric parameters of one camera (kept over a drive)."""

    gain: float = 1.0
    contrast: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    vignette: float = 0.1
    noise: float = 2.0
    texture: float = 1.0

    @staticmethod
    def random(rng: np.random.Generator) -> "Look":
        return Look(
            gain=rng.uniform(0.75, 1.2),
            contrast=rng.uniform(0.8, 1.15),
            cast=tuple(float(c) for c in rng.uniform(0.92, 1.08, size=3)),
            gamma=rng.uniform(0.85, 1.15),
            vignette=rng.uniform(0.0, 0.25),
            noise=rng.uniform(1.0, 4.0),
            texture=rng.uniform(0.8, 1.25),
        )


def texture_fields(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Three zero-mean noise fields (fine, mid, coarse) of shape 3 x H x W, float32."""
    fine = rng.standard_normal((height, width), dtype=np.float32)
    return np.stack([fine, _smooth_noise(rng, height, width, 4), _smooth_noise(rng, height, width, 16)])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    small = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    field = np.asarray(Image.fromarray(small, "F").resize((width, height), Image.Resampling.BICUBIC))
    return field / max(float(field.std()), 1e-6)


def finish(rgb: np.ndarray, label_ids: np.ndarray, shade: np.ndarray, look: Look, fields: np.ndarray,
           noise_rng: np.random.Generator) -> np.ndarray:
    """The final uint8 image: textures by class, ground shadows, exposure, vignette, sensor noise."""
    height, width = label_ids.shape
    img = rgb.astype(np.float32)
    grain = (FINE[label_ids] * fields[0] + MID[label_ids] * fields[1] + COARSE[label_ids] * fields[2]) * look.texture
    img += grain[..., None]
    shadow = np.where(SHADOWED[label_ids], shade.astype(np.float32) / 255.0, 1.0)
    img *= shadow[..., None]
    img = (img - 118.0) * look.contrast + 118.0
    img *= look.gain * np.asarray(look.cast, dtype=np.float32)
    img = 255.0 * (np.clip(img, 0.0, 255.0) / 255.0) ** look.gamma
    if look.vignette > 0:
        v = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
        u = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
        img *= (1.0 - look.vignette * 0.5 * (u * u + v * v))[..., None]
    img += noise_rng.standard_normal(img.shape, dtype=np.float32) * look.noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
