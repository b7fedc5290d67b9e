"""TF-Keras speed reference for `cargo xtask bench`: one training epoch and `model.predict`.

Builds the tutorial's Keras network (Conv2D 32 + ReLU, Conv2D 16 + ReLU, Flatten, Dense 10
softmax; Glorot-uniform kernels, zero biases), trains it with Adam (lr 1e-3) and sparse
categorical cross-entropy on the full Fashion-MNIST training set (60,000 images scaled to
[0, 1], batch 256, shuffled) for two epochs and times each; the second epoch is the figure (the
first includes graph tracing), with the CPU seconds the process used meanwhile. Then times `model.predict` on the first 10,240 test images at
batch 512: one untimed warm-up call, then the median of --repeats timed calls. Threads:
--threads for TensorFlow's intra-op pool and OMP (inter-op 1), set before TensorFlow loads.
Prints one JSON object on stdout.

Usage: python keras_train_time.py DATA_DIR [--repeats N] [--threads T] [--limit N]
Needs: pip install tensorflow-cpu.
"""
import argparse
import gzip
import json
import os
import statistics
import time

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("data_dir")
ARGS.add_argument("--repeats", type=int, default=3)
ARGS.add_argument("--threads", type=int, default=2)
ARGS.add_argument("--limit", type=int, default=60000, help="training images (default: all)")
A = ARGS.parse_args()
for var in ["OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"]:
    os.environ[var] = str(A.threads)
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH = 256
PREDICT_BATCH = 512
PREDICT_IMAGES = 20 * PREDICT_BATCH // 2


def idx(name, offset):
    with gzip.open(os.path.join(A.data_dir, name), "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)
        self.cpu.append(time.process_time() - self.c0)


def main():
    tf.config.threading.set_intra_op_parallelism_threads(A.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[: A.limit]
    y = idx("train-labels-idx1-ubyte.gz", 8)[: A.limit]
    x = x.astype(np.float32) / 255.0
    xt = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:PREDICT_IMAGES]
    xt = xt.astype(np.float32) / 255.0
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    cb = EpochTimes()
    cb.times = []
    cb.cpu = []
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=True, verbose=0, callbacks=[cb])
    model.predict(xt, batch_size=PREDICT_BATCH, verbose=0)
    times = []
    for _ in range(A.repeats):
        t0 = time.perf_counter()
        model.predict(xt, batch_size=PREDICT_BATCH, verbose=0)
        times.append(time.perf_counter() - t0)
    predict_s = statistics.median(times)
    print(
        json.dumps(
            {
                "versions": f"TF {tf.__version__}, Keras {keras.__version__}",
                "threads": A.threads,
                "train_images": len(y),
                "epoch_seconds": cb.times,
                "second_epoch_seconds": cb.times[-1],
                "second_epoch_cpu_seconds": cb.cpu[-1],
                "predict_images": len(xt),
                "predict_batch": PREDICT_BATCH,
                "predict_seconds": predict_s,
                "predict_images_per_second": len(xt) / predict_s,
            }
        )
    )


main()
