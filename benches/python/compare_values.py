"""Compare a shap-cli explanation (.npz) with shap's (shap_onnx_reference.py --save-values).

Both files hold `values` of shape (N, H, W, C, k) and `output_indices` of shape (N, k).
Prints one JSON object: the largest absolute difference of the values, the largest absolute
value of shap's, their ratio, and whether the explained classes are the same.

Usage: python compare_values.py OURS.npz SHAP.npz
"""
import json
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ours, theirs = np.load(sys.argv[1]), np.load(sys.argv[2])
    a = np.asarray(ours["values"], np.float64)
    b = np.asarray(theirs["values"], np.float64)
    same_classes = bool(
        np.array_equal(
            np.asarray(ours["output_indices"], np.int64),
            np.asarray(theirs["output_indices"], np.int64),
        )
    )
    if a.shape != b.shape:
        print(json.dumps({"error": f"shapes differ: {a.shape} vs {b.shape}", "same_classes": same_classes}))
        return
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    largest = float(np.max(np.abs(b))) if b.size else 0.0
    print(
        json.dumps(
            {
                "max_abs_diff": diff,
                "largest": largest,
                "relative": diff / largest if largest > 0 else diff,
                "same_classes": same_classes,
            }
        )
    )


if __name__ == "__main__":
    main()
