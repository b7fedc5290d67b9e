"""shap's image explainers on a Rust engine.

A shap user changes one import::

    import shap_toolkit as shap
    explainer = shap.Explainer(f, shap.maskers.Image("inpaint_telea", X[0].shape),
                               output_names=class_names)
    shap_values = explainer(X[:4], max_evals=500, batch_size=50,
                            outputs=shap.Explanation.argsort.flip[:4])
    shap.image_plot(shap_values)   # shap's own, when shap is installed

``f`` is a Python callable ``f(np.ndarray[N, H, W, C] float32) -> np.ndarray[N, K]`` (called
from Rust with masked images gathered across the images explained together), or the path of an
ONNX file or a ``shap-cli train`` checkpoint, run by the Rust engines with no Python in the loop.
``compat="shap"`` gives shap 0.51's numbers; the default is ours (docs/differences-from-shap.md).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _core
from . import maskers

__all__ = ["Explainer", "Explanation", "maskers", "load_npz", "save_npz", "image_plot"]
__version__ = _core.__version__


class _OutputsSpelling:
    """``Explanation.argsort.flip[:k]``, shap's spelling of "the top k outputs"."""

    def __init__(self, path: str = "Explanation") -> None:
        self._path = path

    def __getattr__(self, name: str) -> "_OutputsSpelling":
        if name.startswith("_"):
            raise AttributeError(name)
        return _OutputsSpelling(f"{self._path}.{name}")

    def __getitem__(self, item: slice) -> "_OutputsSpelling":
        stop = item.stop if isinstance(item, slice) else item
        return _OutputsSpelling(f"{self._path}[:{stop}]")

    def __repr__(self) -> str:
        return self._path


class Explanation:
    """Values ``(n, H, W, C, k)``, base values ``(n, k)``, the images and the output names ``(n, k)``,
    as ``shap.Explanation`` holds them (returned when shap is not installed)."""

    argsort = _OutputsSpelling("Explanation.argsort")

    def __init__(self, values, base_values, data, output_names=None, output_indexes=None):
        self.values = values
        self.base_values = base_values
        self.data = data
        self.output_names = output_names
        self.output_indexes = output_indexes

    @property
    def shape(self):
        return self.values.shape

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"shap_toolkit.Explanation(values.shape={self.values.shape})"


def _top_k(outputs: Any) -> Optional[int]:
    """k of shap's ``shap.Explanation.argsort.flip[:k]`` (ours or shap's own object)."""
    text = str(outputs)
    m = re.search(r"argsort\.flip(?:\[:(\d+)\]|\.__getitem__\(slice\(None, (\d+), None\)\))", text)
    return int(m.group(1) or m.group(2)) if m else None


def _outputs(outputs: Any):
    """(kind, top_k, indices) for the engine: None is every output, as in shap."""
    if outputs is None:
        return "all", None, None
    if isinstance(outputs, (int, np.integer)) and not isinstance(outputs, bool):
        return "top", int(outputs), None
    k = _top_k(outputs)
    if k is not None:
        return "top", k, None
    try:
        if isinstance(outputs, str):
            raise TypeError(outputs)
        indices = [int(i) for i in outputs]
    except (TypeError, ValueError):
        raise TypeError(
            "outputs: give None (every output), an int k, Explanation.argsort.flip[:k] or a list "
            f"of output indices; got {outputs!r}"
        ) from None
    return "indices", None, indices


def _as_images(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 3:
        X = X[None]
    if X.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"images must be numbers; got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype="<f4")
    if not np.all(np.isfinite(X)):
        raise ValueError("images hold NaN or infinite values")
    return X


class _Callable:
    """The user's ``f`` as the engine calls it: bytes of ``n`` images in, bytes of ``n x K`` out,
    with the output checked (shape, numbers, finite)."""

    def __init__(self, f: Callable, shape) -> None:
        self.f = f
        self.shape = tuple(shape)
        self.k: Optional[int] = None

    def outputs(self, x: np.ndarray) -> np.ndarray:
        y = self.f(x)
        try:
            y = np.asarray(y)
        except Exception as e:  # an object NumPy cannot read
            raise TypeError(f"the model returned {type(y).__name__}, not an array") from e
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise TypeError(f"the model returned an array of {y.dtype}, not real numbers")
        n = len(x)
        if y.ndim == 1 and self.k in (None, 1) and y.shape == (n,):
            y = y[:, None]
        if y.ndim != 2 or y.shape[0] != n or (self.k is not None and y.shape[1] != self.k):
            want = f"({n}, {self.k})" if self.k is not None else f"({n}, K)"
            raise ValueError(f"the model returned shape {y.shape} for {n} images; expected {want}")
        if not np.all(np.isfinite(y)):
            raise ValueError("the model returned NaN or infinite outputs")
        return np.ascontiguousarray(y, dtype="<f4")

    def __call__(self, images: bytes, n: int) -> bytes:
        x = np.frombuffer(images, dtype="<f4").reshape((n,) + self.shape)
        return self.outputs(x).tobytes()


class _Bar:
    """tqdm over the images when it is installed and wanted."""

    def __init__(self, total: int, silent: bool) -> None:
        self.bar = None
        if not silent:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="image", leave=False)
            except ImportError:
                pass

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Explainer:
    """``shap.Explainer`` for image maskers: ``algorithm`` is ``"partition"`` (also ``"auto"``) or
    ``"permutation"``; ``model`` a callable or a model file path."""

    def __init__(
        self,
        model: Union[Callable, str, os.PathLike],
        masker: "maskers.Image",
        output_names: Optional[Sequence[str]] = None,
        algorithm: str = "auto",
        seed: Optional[int] = None,
        model_batch_size: int = 64,
        onnxruntime: Optional[Union[str, os.PathLike]] = None,
    ) -> None:
        if not isinstance(masker, maskers.Image):
            raise TypeError("masker: give a shap_toolkit.maskers.Image")
        if algorithm not in ("auto", "partition", "permutation"):
            raise ValueError(f'algorithm {algorithm!r}: expected "auto", "partition" or "permutation"')
        if model_batch_size < 1:
            raise ValueError("model_batch_size must be at least 1")
        self.model = model
        self.masker = masker
        self.output_names = None if output_names is None else [str(n) for n in output_names]
        self.algorithm = "partition" if algorithm == "auto" else algorithm
        self.seed = seed
        self.model_batch_size = int(model_batch_size)
        self.onnxruntime = None if onnxruntime is None else os.fspath(onnxruntime)

    def __call__(
        self,
        X,
        max_evals: Optional[int] = None,
        batch_size: Union[int, str, None] = "auto",
        outputs: Any = None,
        seed: Optional[int] = None,
        compat: Optional[str] = None,
        silent: bool = False,
    ):
        """Explain images ``X`` (N, H, W, C), as ``shap``'s explainer call. ``batch_size`` is
        Partition's masks per step (shap's meaning; ``"auto"`` is 10); ``compat="shap"`` gives
        shap 0.51's numbers."""
        X = _as_images(X)
        shape = X.shape[1:]
        if self.masker.shape is not None and tuple(self.masker.shape) != tuple(shape):
            raise ValueError(f"the masker was made for shape {self.masker.shape}; images are {shape}")
        kind, top, indices = _outputs(outputs)
        step = None if batch_size in (None, "auto") else int(batch_size)
        seed = seed if seed is not None else (self.seed if self.seed is not None else 0)
        settings = dict(
            algorithm=self.algorithm,
            masker=self.masker.spec,
            max_evals=max_evals,
            batch_size=step,
            outputs_kind=kind,
            top_k=top,
            indices=indices,
            output_names=self.output_names,
            seed=int(seed),
            compat=compat or "default",
        )
        bar = _Bar(len(X), silent)
        try:
            if callable(self.model):
                call = _Callable(self.model, shape)
                call.k = call.outputs(X[:1]).shape[1]
                self._check_names(call.k)
                d = _core.explain_callable(
                    call, call.k, X.tobytes(), shape, settings, rows=self.model_batch_size,
                    progress=bar,
                )
            else:
                d = _core.explain_file(
                    os.fspath(self.model), X.tobytes(), shape, settings,
                    onnxruntime=self.onnxruntime, progress=bar,
                )
        finally:
            bar.close()
        return _explanation(d, X)

    def score(self, explanation, metric: str = "faithfulness", target: str = "predicted",
              seed: int = 0) -> dict:
        """Score an explanation of this explainer's model: ``metric`` is ``"faithfulness"``
        (deletion and insertion curves beside random orders, masking with this explainer's
        masker), ``"mufidelity"`` or ``"road"``; ``target`` is ``"predicted"``, ``"explained"``
        or ``"all"``. Returns the report as ``shap-cli faithfulness --json`` or ``shap-cli
        metrics --json`` writes it (docs/faithfulness.md, docs/metrics.md)."""
        X = _as_images(explanation.data)
        values = np.ascontiguousarray(explanation.values, dtype="<f8")
        if values.ndim != 5 or values.shape[:4] != X.shape:
            raise ValueError(f"values must be (N, H, W, C, k) for images {X.shape}; got {values.shape}")
        n, k = len(X), values.shape[-1]
        base = np.asarray(explanation.base_values, dtype="<f8")
        if base.size != n * k:
            raise ValueError(f"base_values hold {base.size} values for {n} images of {k} outputs")
        base = np.ascontiguousarray(base.reshape(n, k))
        extra = getattr(explanation, "_shap_toolkit", {})
        fx = extra.get("fx")
        if fx is None:  # efficiency: f(x) = base + the values' sum
            fx = base + values.reshape(n, -1, k).sum(axis=1)
        names = np.broadcast_to(np.asarray(explanation.output_names, dtype=object), (n, k))
        indices = extra.get("output_indices")
        if indices is None:
            indices = [[self._index(name) for name in row] for row in names]
        scored = dict(
            values=values.tobytes(), base_values=base.tobytes(),
            fx=np.ascontiguousarray(fx, dtype="<f8").tobytes(), data=X.tobytes(),
            shape=X.shape[1:], output_indices=[int(i) for i in np.ravel(indices)],
            output_names=[str(v) for v in names.ravel()], masker=self.masker.spec,
            metric=metric, target=target, seed=int(seed),
        )
        if callable(self.model):
            call = _Callable(self.model, X.shape[1:])
            call.k = call.outputs(X[:1]).shape[1]
            text = _core.score_callable(call, call.k, scored, rows=self.model_batch_size)
        else:
            text = _core.score_file(os.fspath(self.model), scored, onnxruntime=self.onnxruntime)
        return json.loads(text)

    def _index(self, name) -> int:
        """The model output an output name stands for (this explainer's names, else the index
        the engine writes as the name)."""
        if self.output_names is not None and str(name) in self.output_names:
            return self.output_names.index(str(name))
        try:
            return int(name)
        except (TypeError, ValueError):
            raise ValueError(f"output name {name!r} is none of this explainer's output_names") from None

    def _check_names(self, k: int) -> None:
        if self.output_names is not None and len(self.output_names) != k:
            raise ValueError(f"{len(self.output_names)} output_names for a model with {k} outputs")


def _explanation(d: dict, X: np.ndarray):
    n, k = d["num_images"], d["num_outputs"]
    values = np.frombuffer(d["values"], dtype="<f8").reshape(X.shape + (k,)).copy()
    base = np.frombuffer(d["base_values"], dtype="<f8").reshape(n, k).copy()
    names = np.array(d["output_names"], dtype=object).reshape(n, k)
    indices = np.array(d["output_indices"], dtype=np.int64).reshape(n, k)
    fx = np.frombuffer(d["fx"], dtype="<f8").reshape(n, k).copy()
    return _make(values, base, X, names, indices, fx)


def _make(values, base, data, names, indices, fx=None):
    """A ``shap.Explanation`` when shap is installed, else ours; either carries the model
    outputs explained and their f(x) for ``Explainer.score``."""
    try:
        import shap
    except ImportError:
        e = Explanation(values, base, data, output_names=names, output_indexes=indices)
    else:
        e = shap.Explanation(values, base, data, output_names=names)
    e._shap_toolkit = {"output_indices": indices, "fx": fx}
    return e


def save_npz(path: Union[str, os.PathLike], explanation) -> None:
    """Write ``values``, ``base_values``, ``data`` and ``output_names`` as an ``.npz`` that
    ``shap-cli plot`` and ``load_npz`` read."""
    names = np.asarray(explanation.output_names if explanation.output_names is not None else [])
    np.savez(
        path,
        values=np.asarray(explanation.values, dtype="<f8"),
        base_values=np.asarray(explanation.base_values, dtype="<f8"),
        data=np.asarray(explanation.data, dtype="<f4"),
        output_names=names.astype(str),
    )


def load_npz(path: Union[str, os.PathLike]):
    """Read an explanation written by ``shap-cli explain --npz`` or ``save_npz``."""
    with np.load(path, allow_pickle=False) as z:
        values = z["values"]
        base = z["base_values"]
        data = z["data"]
        n, k = base.shape if base.ndim == 2 else (len(base), 1)
        if "output_names" in z and z["output_names"].size:
            names = z["output_names"].astype(object)
            names = names.reshape(n, k) if names.size == n * k else np.tile(names, (n, 1))
        else:
            names = None
        indices = z["output_indices"].reshape(n, k) if "output_indices" in z else None
        fx = z["fx"].reshape(n, k) if "fx" in z else None
    return _make(values, base, data, names, indices, fx)


def image_plot(*args, **kwargs):
    """``shap.image_plot`` (needs shap installed)."""
    import shap

    return shap.image_plot(*args, **kwargs)
