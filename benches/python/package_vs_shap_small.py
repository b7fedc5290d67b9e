"""shap_toolkit against shap 0.51 on a small ONNX model, same Python function, same run.

The model is the ONNX fixture `crates/shap-onnx/fixtures/rgb_nchw.onnx` ((N, 3, 24, 32) -> 5
outputs) through onnxruntime in Python; 3 random images, Partition `blur(8,8)`, 300 evaluations,
top 2, shap's batch size 10. Rounds alternate the two sides; round 0 includes shap's numba
compilation and is a warm-up. Needs: the shap_toolkit wheel, shap, onnxruntime, opencv.

Usage: python benches/python/package_vs_shap_small.py [--rounds 4]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import shap
import shap_toolkit

MODEL = Path(__file__).resolve().parents[2] / "crates/shap-onnx/fixtures/rgb_nchw.onnx"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])

    def f(x):
        return sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]

    X = np.random.default_rng(0).random((3, 24, 32, 3), dtype=np.float32)
    ours = shap_toolkit.Explainer(f, shap_toolkit.maskers.Image("blur(8,8)", X[0].shape))
    theirs = shap.Explainer(f, shap.maskers.Image("blur(8,8)", X[0].shape))
    top2 = shap.Explanation.argsort.flip[:2]
    for r in range(a.rounds):
        t = time.perf_counter()
        theirs(X, max_evals=300, batch_size=10, outputs=top2, silent=True)
        ts = time.perf_counter() - t
        t = time.perf_counter()
        ours(X, max_evals=300, batch_size=10, outputs=2, silent=True)
        to = time.perf_counter() - t
        note = " (warm-up)" if r == 0 else ""
        print(f"round {r}: shap {ts:.3f} s, shap_toolkit {to:.3f} s, {ts / to:.1f}x{note}")


if __name__ == "__main__":
    main()
