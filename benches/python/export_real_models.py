"""Regenerates the "real-model" ONNX benchmark set: ImageNet-shaped classifiers with random weights.

Writes into --out DIR (never commit what it writes; target/bench/real is the usual place):
  resnet18.onnx + resnet18.onnx.data          torchvision resnet18(weights=None), NCHW, logits
  mobilenet_v3_small.onnx (+ .onnx.data)      torchvision mobilenet_v3_small(weights=None), NCHW, logits
  vit_tiny.onnx (+ .onnx.data)                torchvision VisionTransformer(224, patch 16, 4 layers,
                                              6 heads, dim 384, mlp 1536), NCHW, logits
  keras_mobilenet_v2.onnx                     tf.keras.applications.MobileNetV2(weights=None) through
                                              tf2onnx, NHWC, softmax probabilities, one file
  images/{astronaut,coffee,chelsea,rocket}.png  scikit-image's photos, centre-cropped to a square and
                                              resized to 224x224 RGB (PIL bilinear)
  labels.txt                                  class_0 .. class_999 (no real ImageNet names offline)
  manifest.json                               per model: file, layout, mean/std, output_kind (logits or
                                              probabilities), input/output shapes, opsets, op types,
                                              external data files, sha256; the images; versions

The torch models go through `torch.onnx.export(model, (example,), path, dynamic_shapes=...)` with
the installed torch's defaults otherwise: from torch 2.9 on that is the dynamo exporter, which
writes the weights as external data (`NAME.onnx.data` beside `NAME.onnx`), as a user gets it. The
one setting added is a dynamic batch dimension (`dynamic_shapes=({0: "batch"},)`): most users
export with one (every ONNX export tutorial does, as `dynamic_axes` in the older exporter), and a
tool that batches masked images must accept it. The model input is (N,3,224,224) float32; the
example given to the exporter has batch 2 (--example-batch): with a batch-1 example, torch 2.15's
exporter bakes batch 1 into ViT's attention reshapes (the input still says "batch", but
onnxruntime fails at batch 4: "Input shape:{197,4,384}, requested shape:{197,384}"), and the user
who meets that error exports with batch 2. `--example-batch 1` reproduces that broken ViT. The
script fails if resnet18 was not written with external data (an older torch: use >= 2.9).
Keras goes through `tf2onnx.convert.from_keras` (opset 13) with a (None,224,224,3) input
signature: a dynamic batch too.

"Realistic" random weights, so that outputs are on a trained net's scale and not degenerate:
  * batch-norm statistics from the photos: the 4 photos plus flips and random crops (32 views),
    one forward in training mode as a single batch (torch: momentum=None, the running averages
    reset; Keras: momentum 0, so the moving statistics become that batch's), then eval mode;
  * the final classifier layer (ViT's head is zero-initialised by torchvision: drawn N(0,1) first)
    gets bias = -W . mean(features over the 32 views), so classes are not decided by the features'
    common part, and W, b are scaled so that the std of the logits across the 1000 classes is 3.0
    on average over the 4 photos.

Every model is checked with onnxruntime on the 4 photos as one batch, normalised as the manifest
says: top-1 class and logit std are printed, and the script fails if onnxruntime and the
framework disagree by more than 1e-3 relative (max abs diff / max abs output).

Deterministic: torch, numpy, python and TF are seeded (each model on its own seed), torch and TF
run on fixed threads. Running it twice gives byte-identical torch files (.onnx and .onnx.data).
tf2onnx is not byte-stable: the names it makes up for folded constants (const_fold_opt__N,
const_axes__N) differ from run to run, even with PYTHONHASHSEED fixed; the weights and the outputs
are the same. The manifest has each file's sha256 and a name-independent `weights_sha256` (over
the sorted hashes of the initializers' values) to compare runs with.

Usage:
  python benches/python/export_real_models.py --out target/bench/real
Needs: pip install torch torchvision onnxscript tensorflow-cpu tf2onnx onnx onnxruntime
       scikit-image pillow
Runs in a few minutes on 2 CPU cores. Prints progress on stderr, the manifest's path on stdout.
"""
import argparse
import hashlib
import json
import os
import platform
import random
import sys
import time

import numpy as np

SIZE = 224
N_CLASSES = 1000
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]
TARGET_LOGIT_STD = 3.0
N_CROPS = 3  # random crops per photo, each also flipped: 4 * (1 + 3) * 2 = 32 calibration views
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
KERAS_MEAN = [0.5, 0.5, 0.5]  # keras.applications.mobilenet_v2.preprocess_input: x / 127.5 - 1
KERAS_STD = [0.5, 0.5, 0.5]
REL_TOL = 1e-3

T0 = time.perf_counter()


def log(*parts):
    print(f"[{time.perf_counter() - T0:6.1f} s]", *parts, file=sys.stderr, flush=True)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)


# --------------------------------------------------------------------------- photos

def square_resize(img, size):
    """Centre square crop of an (H,W,3) u8 image, resized to size x size (PIL bilinear)."""
    from PIL import Image

    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[top:top + s, left:left + s]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def write_photos(out):
    """Writes images/NAME.png; returns (paths, the full photos, the 224x224 u8 photos)."""
    from PIL import Image
    from skimage import data

    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    paths, full, small = [], [], []
    for name in PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = np.ascontiguousarray(img[..., :3])
        sq = square_resize(img, SIZE)
        path = os.path.join(out, "images", f"{name}.png")
        Image.fromarray(sq).save(path)
        paths.append(path)
        full.append(img)
        small.append(sq)
    log(f"wrote {len(paths)} photos to {os.path.join(out, 'images')}")
    return paths, full, small


def read_photos(paths):
    """The PNGs as shap-cli reads them: u8 / 255, float32, (N,H,W,3) RGB."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).astype(np.float32) / 255.0


def calibration_views(full, small, seed=0):
    """The photos, plus N_CROPS random crops (30-100% of the short side) of each, all also
    flipped left-right: (32,224,224,3) float32 in [0,1]."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    views = []
    for img, sq in zip(full, small):
        views.append(sq)
        h, w = img.shape[:2]
        for _ in range(N_CROPS):
            s = int(min(h, w) * rng.uniform(0.3, 1.0))
            top, left = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
            crop = img[top:top + s, left:left + s]
            views.append(np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.BILINEAR)))
    views += [v[:, ::-1] for v in views]
    return np.stack(views).astype(np.float32) / 255.0


def normalise(x, mean, std):
    return (x - np.array(mean, np.float32)) / np.array(std, np.float32)


# --------------------------------------------------------------------------- ONNX helpers

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_onnx(path):
    """Input/output shapes, opsets, distinct op types, external data files of an ONNX file."""
    import onnx
    import onnx.numpy_helper
    from onnx.external_data_helper import uses_external_data

    m = onnx.load(path, load_external_data=False)
    full = onnx.load(path)  # with the external data, for weights_sha256
    weights = sorted(hashlib.sha256(onnx.numpy_helper.to_array(t).tobytes()).hexdigest()
                     for t in full.graph.initializer)
    del full

    def shape(vi):
        return [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
                for d in vi.type.tensor_type.shape.dim]

    def ops(graph):
        found = set()
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    found |= ops(attr.g)
        return found

    external = sorted({
        kv.value
        for t in m.graph.initializer if uses_external_data(t)
        for kv in t.external_data if kv.key == "location"
    })
    files = [path] + [os.path.join(os.path.dirname(path), loc) for loc in external]
    return {
        "inputs": [{"name": i.name, "shape": shape(i)} for i in m.graph.input],
        "outputs": [{"name": o.name, "shape": shape(o)} for o in m.graph.output],
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "op_types": sorted(ops(m.graph)),
        "n_nodes": len(m.graph.node),
        "n_functions": len(m.functions),
        "external_data": [os.path.basename(p) for p in files[1:]],
        "weights_sha256": hashlib.sha256("".join(weights).encode()).hexdigest(),
        "files": {os.path.basename(p): {"bytes": os.path.getsize(p), "sha256": sha256(p)} for p in files},
    }


def written(info):
    return ", ".join(f"{k} ({v['bytes']:,} bytes)" for k, v in info["files"].items())


def check_with_onnxruntime(path, name, x_model, reference):
    """Runs the model in onnxruntime on x_model (already normalised and laid out) as one batch;
    fails loudly when it disagrees with the framework's `reference` output."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x_model, np.float32)})[0]
    if got.shape != reference.shape:
        raise SystemExit(f"{name}: onnxruntime gives shape {got.shape}, the framework {reference.shape}")
    if not np.all(np.isfinite(got)):
        raise SystemExit(f"{name}: onnxruntime output has NaN or inf")
    diff = float(np.max(np.abs(got - reference)))
    scale = float(np.max(np.abs(reference)))
    rel = diff / max(scale, 1e-12)
    log(f"{name}: onnxruntime vs framework, max abs diff {diff:.3g} ({rel:.3g} of max |output| {scale:.3g})")
    if not rel <= REL_TOL:
        raise SystemExit(f"{name}: onnxruntime and the framework disagree: relative diff {rel:.3g} > {REL_TOL}")
    return got, diff, rel


def summarise_outputs(name, out, probabilities):
    """Top-1 class and logit std per photo (log-probabilities for a softmax model)."""
    logits = np.log(np.maximum(out, 1e-30)) if probabilities else out
    rows = []
    for photo, row, lrow in zip(PHOTOS, out, logits):
        rows.append({
            "image": f"{photo}.png",
            "top1": int(np.argmax(row)),
            "top1_value": float(np.max(row)),
            "logit_std": float(np.std(lrow)),
        })
        log(f"  {name} {photo:9s} top-1 class_{rows[-1]['top1']:<4d} "
            f"({'p' if probabilities else 'logit'} {rows[-1]['top1_value']:.3f}), logit std {rows[-1]['logit_std']:.2f}")
    tops = {r["top1"] for r in rows}
    if len(tops) == 1:
        log(f"  warning: {name} gives every photo the same top-1 class")
    if np.ptp(out) == 0:
        raise SystemExit(f"{name}: every output is equal")
    return rows


# --------------------------------------------------------------------------- torch

def torch_models():
    import torchvision

    return [
        ("resnet18", lambda: torchvision.models.resnet18(weights=None), lambda m: m.fc),
        ("mobilenet_v3_small", lambda: torchvision.models.mobilenet_v3_small(weights=None),
         lambda m: m.classifier[-1]),
        ("vit_tiny", lambda: torchvision.models.VisionTransformer(
            image_size=224, patch_size=16, num_layers=4, num_heads=6, hidden_dim=384, mlp_dim=1536,
            num_classes=N_CLASSES), lambda m: m.heads.head),
    ]


def calibrate_torch(model, head, calib, photos):
    """Batch-norm statistics from `calib`, then the head centred and scaled (see the docstring).
    calib, photos: normalised NCHW torch tensors."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        if bns:
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: one batch gives exactly its statistics
            model.train()
            model(calib)
        model.eval()
        if not torch.any(head.weight != 0):  # ViT's head starts at zero
            torch.nn.init.normal_(head.weight, 0.0, 1.0)
        feats = []
        hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach().clone()))
        model(calib)
        hook.remove()
        mean_feat = feats[0].mean(0)
        head.bias.copy_(-head.weight @ mean_feat)
        std = model(photos).std(dim=1).mean().item()
        head.weight.mul_(TARGET_LOGIT_STD / std)
        head.bias.mul_(TARGET_LOGIT_STD / std)
    return len(bns)


def export_torch(out, views, photos_x, seed, example_batch):
    import torch

    torch.set_num_threads(2)
    calib = torch.from_numpy(normalise(views, IMAGENET_MEAN, IMAGENET_STD).transpose(0, 3, 1, 2).copy())
    x_photos = normalise(photos_x, IMAGENET_MEAN, IMAGENET_STD).transpose(0, 3, 1, 2).copy()
    photos = torch.from_numpy(x_photos)
    entries = []
    for i, (name, build, head_of) in enumerate(torch_models()):
        log(f"{name}: building (seed {seed + i})")
        torch.manual_seed(seed + i)
        seed_all(seed + i)
        model = build()
        n_bn = calibrate_torch(model, head_of(model), calib, photos)
        log(f"{name}: {n_bn} batch-norm layers set from {len(views)} views; head scaled")
        with torch.no_grad():
            reference = model(photos).numpy()
        path = os.path.join(out, f"{name}.onnx")
        for stale in (path, path + ".data"):
            if os.path.exists(stale):
                os.remove(stale)
        example = torch.zeros(example_batch, 3, SIZE, SIZE)
        log(f"{name}: torch.onnx.export")
        t = time.perf_counter()
        torch.onnx.export(model, (example,), path, dynamic_shapes=({0: "batch"},))
        log(f"{name}: exported in {time.perf_counter() - t:.1f} s")
        info = describe_onnx(path)
        log(f"{name}: wrote {written(info)}")
        if name == "resnet18" and not info["external_data"]:
            raise SystemExit("resnet18.onnx was written without external data: this torch's default "
                             "exporter is not the dynamo one (use torch >= 2.9)")
        got, diff, rel = check_with_onnxruntime(path, name, x_photos, reference)
        entries.append({
            "name": name,
            "file": os.path.basename(path),
            "framework": "torch",
            "layout": "nchw",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "output_kind": "logits",
            "softmax_for_probabilities": True,
            "export": f"torch.onnx.export(model, (torch.zeros({example_batch},3,224,224),), path, "
                      "dynamic_shapes=({0: 'batch'},))",
            "batch_norm_layers": n_bn,
            "onnxruntime_max_abs_diff": diff,
            "onnxruntime_rel_diff": rel,
            "photos": summarise_outputs(name, got, probabilities=False),
            **info,
        })
    return entries


# --------------------------------------------------------------------------- Keras

def export_keras(out, views, photos_x, seed):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras = tf.keras
    name = "keras_mobilenet_v2"
    log(f"{name}: building (seed {seed})")
    keras.utils.set_random_seed(seed)
    seed_all(seed)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    calib = normalise(views, KERAS_MEAN, KERAS_STD)
    x_photos = normalise(photos_x, KERAS_MEAN, KERAS_STD)

    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0  # moving statistics := this batch's
    model(calib, training=True)
    if all(np.allclose(bn.moving_mean.numpy(), 0) for bn in bns):
        raise SystemExit(f"{name}: the batch-norm moving statistics did not change")
    log(f"{name}: {len(bns)} batch-norm layers set from {len(views)} views")

    head = model.get_layer("predictions")
    features = keras.Model(model.input, head.input)
    w, b = head.get_weights()
    f_calib = np.asarray(features(calib, training=False))
    f_photos = np.asarray(features(x_photos, training=False))
    b = -f_calib.mean(0) @ w
    std = float(np.mean(np.std(f_photos @ w + b, axis=1)))
    head.set_weights([w * (TARGET_LOGIT_STD / std), b * (TARGET_LOGIT_STD / std)])
    reference = np.asarray(model(x_photos, training=False))
    log(f"{name}: head scaled")

    path = os.path.join(out, f"{name}.onnx")
    log(f"{name}: tf2onnx.convert.from_keras (opset 13)")
    t = time.perf_counter()
    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="input"),)
    try:
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=path)
        how = "tf2onnx.convert.from_keras"
    except Exception as e:  # Keras 3 models that this tf2onnx cannot take directly
        log(f"{name}: from_keras failed ({type(e).__name__}: {e}); converting the model's tf.function")
        fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=13, output_path=path)
        how = "tf2onnx.convert.from_function"
    log(f"{name}: converted in {time.perf_counter() - t:.1f} s")
    info = describe_onnx(path)
    log(f"{name}: wrote {written(info)}")
    got, diff, rel = check_with_onnxruntime(path, name, x_photos, reference)
    return [{
        "name": name,
        "file": os.path.basename(path),
        "framework": "keras",
        "export": f"{how}(model, input_signature=(TensorSpec((None,224,224,3)),), opset=13)",
        "layout": "nhwc",
        "mean": KERAS_MEAN,
        "std": KERAS_STD,
        "output_kind": "probabilities",
        "softmax_for_probabilities": False,
        "batch_norm_layers": len(bns),
        "onnxruntime_max_abs_diff": diff,
        "onnxruntime_rel_diff": rel,
        "photos": summarise_outputs(name, got, probabilities=True),
        **info,
    }]


# --------------------------------------------------------------------------- main

def versions(frameworks):
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ["torch", "torchvision", "onnxscript", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx",
                "onnx", "onnxruntime", "numpy", "scikit-image", "pillow"]:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--example-batch", type=int, default=2,
                    help="batch of the example input given to torch.onnx.export (see above)")
    ap.add_argument("--skip-torch", action="store_true", help="only the Keras model")
    ap.add_argument("--skip-keras", action="store_true", help="only the torch models")
    a = ap.parse_args()

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    seed_all(a.seed)
    paths, full, small = write_photos(out)
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.writelines(f"class_{i}\n" for i in range(N_CLASSES))
    photos_x = read_photos(paths)
    views = calibration_views(full, small, a.seed)

    models = []
    if not a.skip_torch:
        models += export_torch(out, views, photos_x, a.seed, a.example_batch)
    if not a.skip_keras:
        models += export_keras(out, views, photos_x, a.seed + 100)

    manifest = {
        "description": "ImageNet-shaped classifiers with random weights (batch norm set from the photos, "
                       "head scaled to a logit std of 3); written by benches/python/export_real_models.py",
        "seed": a.seed,
        "input_size": [SIZE, SIZE],
        "labels": "labels.txt",
        "images": [os.path.relpath(p, out) for p in paths],
        "models": models,
        "versions": versions(models),
    }
    path = os.path.join(out, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    log(f"done: {len(models)} models")
    print(path)


if __name__ == "__main__":
    main()
