"""The Python package against shap 0.51, against the CLI, and on bad input.

Run by ``cargo xtask test`` in a venv with the built wheel, shap 0.51, onnxruntime, OpenCV
(shap's image masker needs it) and matplotlib. ``SHAP_CLI`` names the ``shap-cli`` binary
for the bit-for-bit comparison with the CLI.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import shap

import shap_toolkit

FIXTURES = Path(__file__).resolve().parents[2] / "shap-onnx" / "fixtures"
RGB = FIXTURES / "rgb_nchw.onnx"  # (N, 3, 24, 32) -> 5 outputs
TUTORIAL_ONNX = FIXTURES / "tutorial_nhwc.onnx"  # (N, 28, 28, 1) -> 10 probabilities
TUTORIAL = FIXTURES / "tutorial.safetensors"  # the same network, as `shap-cli train` saves it


def onnx_callable(path, nchw):
    """``f(np.ndarray[N, H, W, C]) -> np.ndarray[N, K]`` through onnxruntime in Python."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def f(x):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if nchw else x, dtype=np.float32)
        return sess.run(None, {name: x})[0]

    return f


def images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype=np.float32)


def close_to(ours, theirs, rel=1e-5):
    """Within ``rel`` of the largest value (the issue's bar for compat values)."""
    assert ours.shape == theirs.shape
    scale = float(np.abs(theirs).max())
    assert scale > 0
    err = float(np.abs(ours - theirs).max())
    assert err <= rel * scale, f"max difference {err} against largest value {scale}"


@pytest.mark.parametrize("masker", ["blur(8,8)", "inpaint_telea"])
def test_compat_values_equal_shaps_for_the_same_callable(masker):
    f = onnx_callable(RGB, nchw=True)
    X = images(2, (24, 32, 3))
    names = ["a", "b", "c", "d", "e"]
    theirs = shap.Explainer(f, shap.maskers.Image(masker, X[0].shape), output_names=names)(
        X, max_evals=200, batch_size=10, outputs=shap.Explanation.argsort.flip[:2]
    )
    ours = shap_toolkit.Explainer(
        f, shap_toolkit.maskers.Image(masker, X[0].shape), output_names=names
    )(X, max_evals=200, batch_size=10, outputs=shap.Explanation.argsort.flip[:2], compat="shap")
    assert isinstance(ours, shap.Explanation)
    close_to(ours.values, theirs.values)
    close_to(ours.base_values, theirs.base_values)
    # shap gives one row of names when every image has the same top classes, else a row each.
    theirs_names = np.broadcast_to(np.asarray(theirs.output_names, dtype=object), (2, 2))
    assert ours.output_names.tolist() == theirs_names.tolist()


def test_tutorial_checkpoint_compat_equals_shap_on_the_same_network():
    X = images(2, (28, 28, 1), seed=3)
    f = onnx_callable(TUTORIAL_ONNX, nchw=False)
    theirs = shap.Explainer(f, shap.maskers.Image("blur(28,28)", X[0].shape))(
        X, max_evals=300, batch_size=50, outputs=shap.Explanation.argsort.flip[:4]
    )
    ours = shap_toolkit.Explainer(
        str(TUTORIAL), shap_toolkit.maskers.Image("blur(28,28)", X[0].shape)
    )(X, max_evals=300, batch_size=50, outputs=4, compat="shap", silent=True)
    close_to(ours.values, theirs.values)


def test_a_callable_and_the_onnx_file_agree():
    X = images(3, (24, 32, 3), seed=1)
    masker = shap_toolkit.maskers.Image("blur(8,8)", X[0].shape)
    by_file = shap_toolkit.Explainer(str(RGB), masker)(X, max_evals=300, outputs=2, silent=True)
    by_call = shap_toolkit.Explainer(onnx_callable(RGB, nchw=True), masker)(
        X, max_evals=300, outputs=2, silent=True
    )
    # Two onnxruntime sessions, called with other batch sizes: equal to float rounding.
    close_to(by_call.values, by_file.values, rel=1e-5)


@pytest.mark.skipif("SHAP_CLI" not in os.environ, reason="SHAP_CLI names the shap-cli binary")
def test_the_onnx_path_equals_the_cli_bit_for_bit(tmp_path):
    out = tmp_path / "cli.npz"
    images_ = [str(FIXTURES / "images" / f"rgb_{i}.png") for i in range(3)]
    cmd = [os.environ["SHAP_CLI"], "explain", "--model", str(RGB), "--masker", "blur(8,8)"]
    cmd += ["--max-evals", "300", "--top-k", "2", "--seed", "42", "--npz", str(out), "-q"]
    for p in images_:
        cmd += ["--image", p]
    subprocess.run(cmd, check=True)
    cli = np.load(out)
    X = cli["data"]
    ours = shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("blur(8,8)"))(
        X, max_evals=300, outputs=2, seed=42, silent=True
    )
    assert np.array_equal(ours.values, cli["values"])
    assert np.array_equal(ours.base_values, cli["base_values"])


@pytest.mark.skipif("SHAP_CLI" not in os.environ, reason="SHAP_CLI names the shap-cli binary")
def test_scores_equal_the_clis(tmp_path):
    npz = tmp_path / "cli.npz"
    cmd = [os.environ["SHAP_CLI"], "explain", "--model", str(RGB), "--masker", "blur(8,8)"]
    cmd += ["--max-evals", "300", "--top-k", "2", "--npz", str(npz), "-q"]
    for i in range(3):
        cmd += ["--image", str(FIXTURES / "images" / f"rgb_{i}.png")]
    subprocess.run(cmd, check=True)
    reports = {}
    for what in ["faithfulness", "metrics"]:
        out = tmp_path / f"{what}.json"
        score = [os.environ["SHAP_CLI"], what, "--model", str(RGB), "--npz", str(npz)]
        score += ["--seed", "7", "--json", str(out), "-q"]
        subprocess.run(score, check=True, stdout=subprocess.DEVNULL)
        reports[what] = json.loads(out.read_text())
    e = shap_toolkit.load_npz(npz)
    by_file = shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("blur(8,8)"))
    by_call = shap_toolkit.Explainer(onnx_callable(RGB, nchw=True), by_file.masker)
    for explainer in [by_file, by_call]:
        ours = explainer.score(e, "faithfulness", seed=7)
        theirs = reports["faithfulness"]
        assert ours["mean"].keys() == theirs["mean"].keys()
        for key, value in theirs["mean"].items():
            assert ours["mean"][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
        mu = explainer.score(e, "mufidelity", seed=7)
        for key in ["pearson", "spearman"]:
            assert mu[key] == pytest.approx(reports["metrics"]["mufidelity"][key], rel=1e-5, abs=1e-7)
        road = explainer.score(e, "road", seed=7)
        for key in ["morf_mean", "lerf_mean", "gap"]:
            assert road[key] == pytest.approx(reports["metrics"]["road"][key], rel=1e-5, abs=1e-7)
        # Every explained class, not only the predicted one: two per image.
        every = explainer.score(e, "mufidelity", target="all")
        assert sum(len(i["classes"]) for i in every["images"]) == 6


def test_scoring_refuses_bad_settings_and_arrays():
    X = images(2, (24, 32, 3), seed=4)
    explainer = shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("blur(8,8)"))
    e = explainer(X, max_evals=100, outputs=2, silent=True)
    with pytest.raises(ValueError, match="metric"):
        explainer.score(e, "accuracy")
    with pytest.raises(ValueError, match="target"):
        explainer.score(e, "road", target="best")
    e.values = e.values[..., :1]
    with pytest.raises(ValueError, match="base_values hold 4 values for 2 images of 1 outputs"):
        explainer.score(e, "road")
    # The engine checks the arrays against each other too.
    x = np.asarray(e.data, dtype="<f4")
    scored = dict(
        values=np.zeros(x.size * 2).tobytes(), base_values=np.zeros(4).tobytes(),
        fx=np.zeros(4).tobytes(), data=x.tobytes(), shape=x.shape[1:],
        output_indices=[0, 1, 0, 1], output_names=["0", "1", "0"], masker="blur(8,8)",
        metric="road", target="all", seed=0,
    )
    with pytest.raises(ValueError, match="disagree"):
        shap_toolkit._core.score_file(str(RGB), scored, onnxruntime=None)


def test_an_exception_in_the_model_is_raised_as_it_was():
    f = onnx_callable(RGB, nchw=True)
    calls = []

    def flaky_model(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise ValueError("boom in the user's model")
        return f(x)

    X = images(2, (24, 32, 3))
    explainer = shap_toolkit.Explainer(flaky_model, shap_toolkit.maskers.Image("blur(8,8)"))
    with pytest.raises(ValueError, match="boom in the user's model") as info:
        explainer(X, max_evals=300, silent=True)
    assert any(entry.name == "flaky_model" for entry in info.traceback)


@pytest.mark.parametrize(
    "bad, error, needle",
    [
        (lambda y: np.concatenate([y, y[:, :1]], axis=1), ValueError, "returned shape"),
        (lambda y: np.where(y > -1, np.nan, y), ValueError, "NaN"),
        (lambda y: np.full(y.shape, "x"), TypeError, "not real numbers"),
    ],
)
def test_a_model_returning_the_wrong_thing_is_refused(bad, error, needle):
    f = onnx_callable(RGB, nchw=True)
    calls = []

    def model(x):
        calls.append(1)
        y = f(x)
        return y if len(calls) == 1 else bad(y)

    X = images(1, (24, 32, 3))
    with pytest.raises(error, match=needle):
        shap_toolkit.Explainer(model, shap_toolkit.maskers.Image("0.5"))(X, max_evals=50, silent=True)


def test_float64_outputs_are_taken_as_float32():
    f = onnx_callable(RGB, nchw=True)
    X = images(1, (24, 32, 3))
    masker = shap_toolkit.maskers.Image("blur(8,8)")
    a = shap_toolkit.Explainer(f, masker)(X, max_evals=100, silent=True)
    b = shap_toolkit.Explainer(lambda x: f(x).astype(np.float64), masker)(X, max_evals=100, silent=True)
    assert np.array_equal(a.values, b.values)


def test_ctrl_c_stops_a_long_run():
    f = onnx_callable(RGB, nchw=True)
    calls = []

    def model(x):
        calls.append(1)
        if len(calls) == 5:
            signal.raise_signal(signal.SIGINT)
        time.sleep(0.002)  # a model of some size: 5,000 calls would take 10 s
        return f(x)

    X = images(4, (24, 32, 3))
    explainer = shap_toolkit.Explainer(model, shap_toolkit.maskers.Image("blur(8,8)"), model_batch_size=4)
    # Python's own Ctrl-C handler, even when this process started with SIGINT ignored (as a
    # background job of a non-interactive shell does): Python then keeps ignoring it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            explainer(X, max_evals=5000, silent=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    # 4 images x 5000 evaluations in calls of 4 rows are about 5,000 calls; the run stops at
    # the next call after Python's main thread sees the signal (it looks every 50 ms).
    assert len(calls) < 200, len(calls)


def test_shap_image_plot_draws_the_explanation(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = images(2, (28, 28, 1), seed=5)
    e = shap_toolkit.Explainer(str(TUTORIAL), shap_toolkit.maskers.Image("blur(28,28)"))(
        X, max_evals=200, outputs=shap_toolkit.Explanation.argsort.flip[:3], silent=True
    )
    assert e.values.shape == (2, 28, 28, 1, 3)
    # The values add up to f(x) - base (efficiency), as shap's do.
    shap.image_plot(e, show=False)
    out = tmp_path / "plot.png"
    plt.savefig(out)
    assert out.stat().st_size > 10_000


def test_npz_round_trip_and_cli_files(tmp_path):
    X = images(2, (24, 32, 3))
    e = shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("0.0"), output_names=list("abcde"))(
        X, max_evals=100, outputs=[1, 3], silent=True
    )
    path = tmp_path / "e.npz"
    shap_toolkit.save_npz(path, e)
    back = shap_toolkit.load_npz(path)
    assert np.array_equal(back.values, e.values)
    assert np.array_equal(back.base_values, e.base_values)
    assert [list(r) for r in back.output_names] == [["b", "d"], ["b", "d"]]


def test_bad_settings_are_clear_errors():
    X = images(1, (24, 32, 3))
    ok = shap_toolkit.maskers.Image("blur(8,8)", X[0].shape)
    with pytest.raises(ValueError, match="algorithm"):
        shap_toolkit.Explainer(str(RGB), ok, algorithm="exact")
    with pytest.raises(ValueError, match="unknown masker"):
        shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("sharpen(3)"))(X, silent=True)
    with pytest.raises(TypeError, match="outputs"):
        shap_toolkit.Explainer(str(RGB), ok)(X, outputs="top", silent=True)
    with pytest.raises(ValueError, match="NaN"):
        shap_toolkit.Explainer(str(RGB), ok)(np.full_like(X, np.nan), silent=True)
    with pytest.raises(ValueError, match="masker was made for shape"):
        shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("0", (8, 8, 3)))(X, silent=True)
    with pytest.raises(ValueError, match="takes"):
        shap_toolkit.Explainer(str(RGB), shap_toolkit.maskers.Image("0"))(images(1, (8, 8, 3)), silent=True)
    with pytest.raises(ValueError, match="output_names"):
        shap_toolkit.Explainer(onnx_callable(RGB, True), ok, output_names=["a"])(X, silent=True)
