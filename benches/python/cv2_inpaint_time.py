"""Time cv2.inpaint (radius 3, one thread) on the case of `shap-mask`'s `inpaint_profile`
example: a 28x28 image-like picture with half the pixels hidden, 16 random masks.

    python benches/python/cv2_inpaint_time.py

Prints microseconds per call (best of 5 runs of 4,000 calls) for INPAINT_TELEA and INPAINT_NS,
to put the Rust figures of `cargo run --release -p shap-mask --example inpaint_profile` beside.
The picture is the same formula as the Rust example; the masks are drawn by NumPy instead.
"""

import time

import cv2
import numpy as np

M = 28 * 28
r, c = np.divmod(np.arange(M), 28)
r = r.astype(np.float32)
c = c.astype(np.float32)
blob = np.exp(-((r - 13.5) ** 2 + (c - 12.0) ** 2) / 60.0)
x = np.minimum(0.8 * blob + 0.2 * np.abs(np.sin(r * 0.7) * np.cos(c * 1.3)), 1.0)
src = np.round(x * 255).astype(np.uint8).reshape(28, 28)
rng = np.random.default_rng(0)
masks = []
for _ in range(16):
    m = np.zeros(M, np.uint8)
    m[rng.permutation(M)[: M // 2]] = 1
    masks.append(m.reshape(28, 28))
cv2.setNumThreads(1)
print(f"OpenCV {cv2.__version__}")
for flag, name in [(cv2.INPAINT_TELEA, "telea"), (cv2.INPAINT_NS, "ns")]:
    best = float("inf")
    for _ in range(5):
        n = 4000
        t = time.perf_counter()
        for i in range(n):
            cv2.inpaint(src, masks[i % 16], 3, flag)
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    print(f"{name}: {best:.1f} us per inpaint")
