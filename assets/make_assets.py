"""Writes the sample images in assets/ (run from the repository root):

    /work/venv/bin/python assets/make_assets.py [FASHION_MNIST_DIR]

* fashion-mnist/test_<index>_<class>.png: Fashion-MNIST test images 0, 1, 2 and 4 (the first
  four classes that appear: Ankle boot, Pullover, Trouser, Shirt), 28x28 8-bit grey, the IDX
  bytes unchanged (PNG is lossless), read from the gzip IDX files in FASHION_MNIST_DIR
  (default: /usr/share/datasets/fashion-mnist, the Debian package dataset-fashion-mnist).
* rgb/hillside.jpg: a 128x96 RGB "photo" drawn here from a fixed seed (sky gradient, sun,
  two ranges of hills, a house, a tree and sensor-like noise), JPEG quality 90, so the RGB
  demos have a real-looking, non-square input that models must resize.

Needs NumPy and Pillow (shap 0.51's environment has both). The PNGs are byte-for-byte
reproducible; the JPEG depends on the libjpeg Pillow ships with (Pillow 13.0 here).
"""

import gzip
import os
import sys

import numpy as np
from PIL import Image

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
INDICES = [0, 1, 2, 4]
ROOT = os.path.dirname(os.path.abspath(__file__))


def idx(path):
    data = gzip.open(path).read()
    if data[2] == 8 and data[3] == 3:
        n, h, w = np.frombuffer(data[4:16], ">u4")
        return np.frombuffer(data[16:], np.uint8).reshape(n, h, w)
    return np.frombuffer(data[8:], np.uint8)


def fashion(src):
    images = idx(os.path.join(src, "t10k-images-idx3-ubyte.gz"))
    labels = idx(os.path.join(src, "t10k-labels-idx1-ubyte.gz"))
    out = os.path.join(ROOT, "fashion-mnist")
    os.makedirs(out, exist_ok=True)
    for i in INDICES:
        name = CLASSES[labels[i]].lower().replace(" ", "-").replace("/", "-")
        Image.fromarray(images[i], "L").save(os.path.join(out, f"test_{i}_{name}.png"))


def hillside():
    h, w = 96, 128
    rng = np.random.default_rng(2026)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    # Sky: light blue at the horizon to deep blue at the top.
    t = (y / h)[..., None]
    img[:] = (1 - t) * np.array([60, 110, 200]) + t * np.array([180, 210, 240])
    # Sun.
    sun = (x - 100) ** 2 + (y - 18) ** 2 < 9 ** 2
    img[sun] = [255, 236, 150]
    # Far hills (blue-green), near hills (green, shaded).
    far = y > 55 + 8 * np.sin(x / 17.0) + 4 * np.sin(x / 5.3)
    img[far] = [70, 120, 100]
    near = y > 68 + 10 * np.sin(x / 23.0 + 1.0)
    shade = (0.75 + 0.25 * np.sin(x / 9.0 + y / 7.0))[..., None]
    img[near] = (shade * np.array([60, 150, 50]))[near]
    # A house: white wall, red roof, dark door.
    wall = (x >= 30) & (x < 52) & (y >= 62) & (y < 80)
    img[wall] = [235, 230, 220]
    roof = (y >= 50) & (y < 62) & (np.abs(x - 41) < (y - 50) + 1)
    img[roof] = [170, 40, 35]
    door = (x >= 38) & (x < 44) & (y >= 70) & (y < 80)
    img[door] = [70, 45, 30]
    # A tree: trunk and round crown.
    img[(x >= 78) & (x < 82) & (y >= 64) & (y < 82)] = [90, 60, 30]
    img[(x - 80) ** 2 + (y - 58) ** 2 < 10 ** 2] = [30, 100, 35]
    img += rng.normal(0, 4, img.shape)
    out = os.path.join(ROOT, "rgb")
    os.makedirs(out, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8), "RGB").save(
        os.path.join(out, "hillside.jpg"), quality=90)


if __name__ == "__main__":
    fashion(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    hillside()
