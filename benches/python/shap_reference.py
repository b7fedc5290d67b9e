"""Side-by-side reference for `cargo xtask bench`: Python shap 0.51 explaining the same CNN.

Loads our safetensors checkpoint, runs the network in NumPy (im2col + matmul, float32), and
times shap's PartitionExplainer on the first 4 Fashion-MNIST test images with 500 evaluations,
shap's default batch_size of 10 and the top-5 outputs (the tutorial's call), for blur(28,28),
inpaint_telea and inpaint_ns: one untimed warm-up explanation (the same call), then the median of --repeats
timed ones, np.random.seed(0) before each (the settings of `examples/bench_table.rs`). Also times
the model alone on the same number of rows, in batches of 10, with the same statistic. When
TensorFlow is installed, does the same again with the checkpoint loaded into the tutorial's
Keras model (shap + Keras), after measuring how far Keras and NumPy outputs are apart on the 4
images (`keras.max_abs_gap`); and when the Python package `shap_toolkit` is installed, times it
on the same Keras callable and settings (`keras.package`). Threads: --threads for NumPy's BLAS (OMP/OpenBLAS/MKL, set before
NumPy loads, and threadpoolctl when present), OpenCV and TensorFlow's intra-op pool (inter-op 1).
Prints one JSON object on stdout.

Usage: python shap_reference.py MODEL.safetensors DATA_DIR [--repeats N] [--threads T]
Needs: pip install shap opencv-python-headless; optional: pip install tensorflow-cpu.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

# Thread pools read these when they start: set before NumPy (and its BLAS) is imported.
ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("model")
ARGS.add_argument("data_dir")
ARGS.add_argument("--repeats", type=int, default=3)
ARGS.add_argument("--threads", type=int, default=2)
A = ARGS.parse_args()
for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"]:
    os.environ[var] = str(A.threads)
os.environ["TF_NUM_INTEROP_THREADS"] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import shap  # noqa: E402

MAX_EVALS = 500
BATCH_SIZE = 10  # shap's default for the Image masker ('auto' -> 10), as in the tutorial
TOP_K = 5
SPECS = ["blur(28,28)", "inpaint_telea", "inpaint_ns"]


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(info["shape"])
    return out, header.get("__metadata__", {})


def conv3x3_relu(x, w, b):
    """x: (N,H,W,Cin) f32, w: (Cout,Cin,3,3), b: (Cout,) -> (N,H,W,Cout), 'same' padding."""
    n, h, wd, cin = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # N,H,W,Cin,3,3
    cols = cols.reshape(n * h * wd, cin * 9)
    k = w.reshape(w.shape[0], cin * 9).T  # (Cin*9, Cout), order (cin, kh, kw) matches
    y = cols @ k + b
    return np.maximum(y, 0.0).reshape(n, h, wd, w.shape[0])


def make_model(t, head):
    def f(x):
        x = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28, 1)
        out = []
        for i in range(0, len(x), 256):
            a = conv3x3_relu(x[i : i + 256], t["conv1.weight"], t["conv1.bias"])
            a = conv3x3_relu(a, t["conv2.weight"], t["conv2.bias"])
            a = a.transpose(0, 3, 1, 2).reshape(len(a), -1)  # flatten (C,H,W) like candle
            z = a @ t["fc.weight"].T + t["fc.bias"]
            if head == "softmax":
                z = np.exp(z - z.max(axis=1, keepdims=True))
                z = z / z.sum(axis=1, keepdims=True)
            out.append(z.astype(np.float32))
        return np.concatenate(out)

    return f


def make_keras_model(t, head):
    """The tutorial's Keras network with our weights, or None without TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None, None
    tf.config.threading.set_intra_op_parallelism_threads(A.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax" if head == "softmax" else None),
        ]
    )
    # OIHW -> HWIO; the Dense rows from our (C,H,W) flatten order to Keras's (H,W,C).
    model.layers[0].set_weights([t["conv1.weight"].transpose(2, 3, 1, 0), t["conv1.bias"]])
    model.layers[1].set_weights([t["conv2.weight"].transpose(2, 3, 1, 0), t["conv2.bias"]])
    fc = t["fc.weight"].reshape(10, 16, 28, 28).transpose(2, 3, 1, 0).reshape(12544, 10)
    model.layers[3].set_weights([fc, t["fc.bias"]])
    return model, f"TF {tf.__version__}"


def median_time(call, repeats):
    """One untimed warm-up call, then the median of `repeats` timed calls: wall seconds, the
    wall times, and the median CPU seconds of this process (all threads, time.process_time)."""
    np.random.seed(0)
    call()
    times, cpus = [], []
    for _ in range(repeats):
        np.random.seed(0)
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(times), times, statistics.median(cpus)


def time_explanations(f, x):
    """shap's Partition explainer on `x` with both maskers, as the tutorial calls it."""
    result = {}
    outputs = shap.Explanation.argsort.flip[:TOP_K]
    for spec in SPECS:
        masker = shap.maskers.Image(spec, x[0].shape)
        explainer = shap.Explainer(f, masker)

        def explain():
            return explainer(
                x, max_evals=MAX_EVALS, batch_size=BATCH_SIZE, outputs=outputs, silent=True
            )

        seconds, times, cpu = median_time(explain, A.repeats)
        result[spec] = {"seconds": seconds, "times_s": times, "cpu_seconds": cpu}
    rows = np.repeat(x, MAX_EVALS, axis=0)

    def model_alone():
        for i in range(0, len(rows), BATCH_SIZE):
            f(rows[i : i + BATCH_SIZE])

    result["model_only_seconds"], _, _ = median_time(model_alone, A.repeats)
    return result


def time_package(f, x):
    """The Python package `shap_toolkit` (when importable) explaining `x` through the same
    Python callable `f` shap's rows use, with the same settings: the engine's speed-up when the
    model stays in Python."""
    try:
        import shap_toolkit
    except ImportError:
        return None
    result = {"version": getattr(shap_toolkit, "__version__", "?")}
    for spec in SPECS:
        explainer = shap_toolkit.Explainer(f, shap_toolkit.maskers.Image(spec, x[0].shape))

        def explain():
            return explainer(x, max_evals=MAX_EVALS, batch_size=BATCH_SIZE, outputs=TOP_K, silent=True)

        seconds, times, cpu = median_time(explain, A.repeats)
        result[spec] = {"seconds": seconds, "times_s": times, "cpu_seconds": cpu}
    return result


def load_images(data_dir, n):
    with gzip.open(f"{data_dir}/t10k-images-idx3-ubyte.gz", "rb") as fh:
        raw = fh.read()
    x = np.frombuffer(raw[16 : 16 + n * 784], dtype=np.uint8).reshape(n, 28, 28, 1)
    return x.astype(np.float32) / 255.0


def thread_settings():
    """What the thread pools were set to (threadpoolctl's view of the BLAS when available)."""
    out = {"requested": A.threads, "opencv": cv2.getNumThreads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(A.threads)
        out["blas"] = sorted({p["num_threads"] for p in threadpool_info()})
    except ImportError:
        out["blas"] = os.environ["OMP_NUM_THREADS"]
    return out


def main():
    cv2.setNumThreads(A.threads)
    tensors, meta = load_safetensors(A.model)
    head = "logits" if "logit" in str(meta.get("head", "")).lower() else "softmax"
    f = make_model(tensors, head)
    x = load_images(A.data_dir, 4)
    result = {
        "shap_version": shap.__version__,
        "settings": {
            "images": 4,
            "max_evals": MAX_EVALS,
            "batch_size": BATCH_SIZE,
            "top_k": TOP_K,
            "repeats": A.repeats,
            "statistic": f"median of {A.repeats} after 1 untimed warm-up",
            "threads": thread_settings(),
        },
    }
    result.update(time_explanations(f, x))
    keras_model, versions = make_keras_model(tensors, head)
    if keras_model is not None:
        gap = float(np.abs(np.asarray(keras_model(x)) - f(x)).max())
        if gap > 1e-4:
            raise SystemExit(f"the Keras port disagrees with the NumPy model by {gap}")
        result["keras"] = {"versions": versions, "max_abs_gap": gap}
        # One Python callable for both: shap and the package call the same function.
        def keras_f(batch):
            return np.asarray(keras_model(batch))

        result["keras"].update(time_explanations(keras_f, x))
        package = time_package(keras_f, x)
        if package is not None:
            result["keras"]["package"] = package
    print(json.dumps(result))


if __name__ == "__main__":
    main()
