"""What the bundled examples' training scripts share: reading the rows `cutover dataset`
writes, the training record, and xgboost's own outputs on holdout rows."""

import hashlib
import json

import numpy as np
import pandas as pd
import xgboost as xgb


def load(data_path):
    """The file's bytes, the frame of features, the label, the names, their types, the matrix."""
    raw = open(data_path, "rb").read()
    frame = pd.read_csv(data_path, dtype=np.float64)
    y = frame.pop("label").to_numpy()
    names = list(frame.columns)
    types = ["q"] * len(names)
    return raw, frame, y, names, types, frame.to_numpy(dtype=np.float64)


def record(params, rounds, names, types, command, raw, rows, data_extra, holdout):
    """The training record: versions, parameters, features, the data's command and hash."""
    data = {"command": command, "rows": int(rows), "sha256": hashlib.sha256(raw).hexdigest()}
    data.update(data_extra)
    return {
        "xgboost_version": xgb.__version__,
        "numpy_version": np.__version__,
        "pandas_version": pd.__version__,
        "params": params,
        "rounds": rounds,
        "feature_names": names,
        "feature_types": types,
        "data": data,
        "holdout": holdout,
    }


def write(out_dir, report, frame, cut, p, float_format=None):
    """training.json, and model_check.csv: xgboost's own outputs on 300 holdout rows, so
    tests can check the exact evaluator on them."""
    check = frame.iloc[cut:cut + 300].copy()
    check["xgboost_prediction"] = [repr(float(v)) for v in np.asarray(p[:300], dtype=np.float32)]
    check.to_csv(f"{out_dir}/model_check.csv", index=False, na_rep="", float_format=float_format)
    with open(f"{out_dir}/training.json", "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps(report["holdout"]))
