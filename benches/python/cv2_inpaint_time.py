"""Time cv2.inpaint (radius 3, one thread) on the case of `shap-mask`'s `inpaint_profile`
example: a 28x28 image-like picture with half the pixels hidden, 16 random masks.

    python benches/python/cv2_inpaint_time.py

Prints microseconds per call (the median of 5 runs of 4,000 calls, after one untimed run) for
INPAINT_TELEA and INPAINT_NS, to put the Rust figures of
`cargo run --release -p shap-mask --example inpaint_profile -- {telea,ns} 4000` beside (the same
statistic, one thread each).
The picture is the same formula as the Rust example; the masks are drawn by NumPy instead.
"""

import statistics
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
    def run(n=4000):
        t = time.perf_counter()
        for i in range(n):
            cv2.inpaint(src, masks[i % 16], 3, flag)
        return (time.perf_counter() - t) / n * 1e6

    run()  # warm-up, untimed
    us = statistics.median(run() for _ in range(5))
    print(f"{name}: {us:.1f} us per inpaint (median of 5 runs of 4000)")
