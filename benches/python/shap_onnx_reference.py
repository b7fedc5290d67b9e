"""Side-by-side reference for the ONNX rows of `cargo xtask bench`: shap 0.51 over onnxruntime.

Loads the images the way `shap-cli` does for an ONNX model (8-bit PNG/JPEG, u8 / 255 as float32,
grey or RGB to match the model's channel count, (H,W,C)), builds an onnxruntime CPU session
(intra_op_num_threads=--threads, inter_op_num_threads=1), and times shap's PartitionExplainer
with an Image masker on the [0,1] pixels. The model function applies the optional normalisation
((x - mean) / std per channel) after masking, then transposes to NCHW when --layout nchw, and
with --softmax turns the model's outputs (logits) into probabilities (a softmax over the last
axis). Images are used as they are: their size must equal the model's input size (a model with
dynamic height/width takes the images' size, the same for all).
One warm-up explanation (first image, not timed), then --repeats timed explanations of all the
images (np.random.seed(0) before each, --batch-size masks per model call, default 10: shap's
default for the Image masker; top-k outputs). Also measures pure onnxruntime throughput at batch
64 (the images repeated), median of 10 runs after a warm-up. Prints one JSON object on stdout
(last line).

--package times the Python package `shap_toolkit` instead of shap, with the same model function f
(called from Rust in gathered batches), the same masker, budget and top-k (our default mode).

--save-values OUT.npz keeps the last timed explanation: `values` (N,H,W,C,top_k) as shap returns
them, `base_values` (N,top_k), `output_indices` (N,top_k): the classes explained, as the explainer
chose them (Explanation.argsort.flip[:k] of f(x), i.e. the top-k outputs in descending order),
and `outputs` (N,classes): f(x) itself.

Usage:
  python shap_onnx_reference.py --model FILE.onnx --layout nhwc|nchw --images a.png b.png ...
      [--mean 0.485,0.456,0.406] [--std 0.229,0.224,0.225] [--masker 'blur(28,28)']
      [--max-evals 500] [--top-k 5] [--repeats 3] [--threads 2] [--batch-size 10] [--softmax]
      [--save-values OUT.npz]
Needs: pip install shap opencv-python-headless onnxruntime
"""
import argparse
import json
import os
import statistics
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
import shap

FORWARD_BATCH = 64
FORWARD_RUNS = 10


def floats(text):
    return [float(v) for v in text.split(",")]


def make_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def input_geometry(sess, layout):
    """(name, H, W, C) of the model's single image input."""
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise SystemExit(f"the model has {len(inputs)} inputs; expected one image input")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise SystemExit(f"input {inputs[0].name} has shape {shape}; expected [N,H,W,C] or [N,C,H,W]")
    h, w, c = shape[1:] if layout == "nhwc" else (shape[2], shape[3], shape[1])
    h, w = (d if isinstance(d, int) else None for d in (h, w))  # None: dynamic, the images' size
    if c not in (1, 3):
        raise SystemExit(f"input {inputs[0].name} has {c} channels; expected 1 or 3")
    return inputs[0].name, h, w, c


def load_images(paths, h, w, c):
    """The images as they are (no resizing): u8 / 255, (N,H,W,C) float32. h or w None (a dynamic
    dimension) takes the first image's."""
    out = []
    for p in paths:
        if c == 1:
            img = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        else:
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            img = None if img is None else img[..., ::-1]  # BGR -> RGB
        if img is None:
            raise SystemExit(f"cannot read image {p}")
        if h is None or w is None:
            h = img.shape[0] if h is None else h
            w = img.shape[1] if w is None else w
        if img.shape[:2] != (h, w):
            raise SystemExit(f"{p} is {img.shape[1]}x{img.shape[0]}; the model takes {w}x{h}")
        out.append(img.reshape(h, w, c))
    return np.stack(out).astype(np.float32) / 255.0


def softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def make_model(sess, name, layout, mean, std, use_softmax=False):
    mean = None if mean is None else np.array(mean, np.float32)
    std = None if std is None else np.array(std, np.float32)

    def f(x):
        t0 = time.perf_counter()
        try:
            return model(x)
        finally:
            f.seconds += time.perf_counter() - t0

    def model(x):
        x = np.asarray(x, np.float32)
        if mean is not None or std is not None:
            x = (x - (0.0 if mean is None else mean)) / (1.0 if std is None else std)
        if layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        out = sess.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]
        return softmax(out) if use_softmax else out

    f.seconds = 0.0
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--layout", required=True, choices=["nhwc", "nchw"])
    ap.add_argument("--images", required=True, nargs="+")
    ap.add_argument("--mean", type=floats)
    ap.add_argument("--std", type=floats)
    ap.add_argument("--masker", default="blur(28,28)")
    ap.add_argument("--max-evals", type=int, default=500)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--forward-runs", type=int, default=FORWARD_RUNS,
                    help="timed batch-64 forward passes after the explanations (0: none)")
    ap.add_argument("--batch-size", type=int, default=10,
                    help="masks per model call (shap's default for the Image masker: 10)")
    ap.add_argument("--softmax", action="store_true", help="softmax over the model's outputs inside f")
    ap.add_argument("--package", action="store_true",
                    help="time shap_toolkit (the Python package) instead of shap, same f")
    ap.add_argument("--save-values", metavar="OUT.npz",
                    help="save values, base_values, output_indices and outputs of the last timed run")
    a = ap.parse_args()

    cv2.setNumThreads(a.threads)
    sess = make_session(a.model, a.threads)
    name, h, w, c = input_geometry(sess, a.layout)
    x = load_images(a.images, h, w, c)
    f = make_model(sess, name, a.layout, a.mean, a.std, a.softmax)

    if a.package:
        return time_package(a, f, x)
    masker = shap.maskers.Image(a.masker, x[0].shape)
    explainer = shap.Explainer(f, masker)
    outputs = shap.Explanation.argsort.flip[: a.top_k]

    # The classes each row explains, as the explainer picked them (the Explanation does not
    # keep them when the model has no output names).
    chosen = []
    explain_row = explainer.explain_row

    def recording_explain_row(*args, **kwargs):
        row = explain_row(*args, **kwargs)
        chosen.append(np.asarray(row["output_indices"]))
        return row

    explainer.explain_row = recording_explain_row
    # Warm-up (numba compilation, onnxruntime's first runs), not timed.
    np.random.seed(0)
    explainer(x[:1], max_evals=a.max_evals, outputs=outputs, batch_size=a.batch_size, silent=True)
    times = []
    in_model = []
    for _ in range(a.repeats):
        np.random.seed(0)
        chosen.clear()
        f.seconds = 0.0
        t0 = time.perf_counter()
        sv = explainer(x, max_evals=a.max_evals, outputs=outputs, batch_size=a.batch_size, silent=True)
        times.append(time.perf_counter() - t0)
        in_model.append(f.seconds)

    if a.save_values:
        fx = f(x)
        indices = np.stack(chosen)
        expected = np.argsort(fx, axis=1)[:, ::-1][:, : a.top_k]
        if not np.array_equal(indices, expected):
            print(f"note: the explained classes {indices.tolist()} differ from argsort(f(x)) "
                  f"{expected.tolist()} (ties?)", file=sys.stderr)
        np.savez(
            a.save_values,
            values=np.asarray(sv.values),
            base_values=np.asarray(sv.base_values),
            output_indices=indices,
            outputs=fx,
            images=np.array([os.path.basename(p) for p in a.images]),
        )

    rows = np.resize(x, (FORWARD_BATCH,) + x.shape[1:])  # the images repeated
    fwd = []
    if a.forward_runs > 0:
        f(rows)  # warm-up
    for _ in range(a.forward_runs):
        t0 = time.perf_counter()
        f(rows)
        fwd.append(time.perf_counter() - t0)

    result = {
        "shap_version": shap.__version__,
        "onnxruntime_version": ort.__version__,
        "settings": {
            "model": os.path.basename(a.model),
            "layout": a.layout,
            "masker": a.masker,
            "max_evals": a.max_evals,
            "top_k": a.top_k,
            "batch_size": a.batch_size,
            "threads": a.threads,
            "images": [os.path.basename(p) for p in a.images],
            "mean": a.mean,
            "std": a.std,
            "softmax": a.softmax,
        },
        "values_shape": list(np.shape(sv.values)),
        "times_s": times,
        "median_s": statistics.median(times),
        "model_s": in_model,
        "model_fraction": statistics.median(m / t for m, t in zip(in_model, times)),
        "forward_batch": FORWARD_BATCH,
        "forward_img_per_s": FORWARD_BATCH / statistics.median(fwd) if fwd else None,
    }
    print(json.dumps(result))


def time_package(a, f, x):
    """--package: shap_toolkit with the same f; one warm-up on the first image, then --repeats
    timed explanations of all the images."""
    import shap_toolkit

    explainer = shap_toolkit.Explainer(f, shap_toolkit.maskers.Image(a.masker, x[0].shape))
    explainer(x[:1], max_evals=a.max_evals, outputs=a.top_k, silent=True)
    times, in_model = [], []
    for _ in range(a.repeats):
        f.seconds = 0.0
        t0 = time.perf_counter()
        explainer(x, max_evals=a.max_evals, outputs=a.top_k, silent=True)
        times.append(time.perf_counter() - t0)
        in_model.append(f.seconds)
    print(json.dumps({
        "package": shap_toolkit.__version__,
        "times_s": times,
        "median_s": statistics.median(times),
        "model_fraction": statistics.median(m / t for m, t in zip(in_model, times)),
    }))


if __name__ == "__main__":
    main()
