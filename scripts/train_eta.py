"""Trains the bundled ETA example's model with real xgboost, and adds the legacy service's
answers to its request log.

usage: train_eta.py DATA.csv REQUESTS.csv OUT_DIR DATASET_COMMAND

DATA.csv holds the legacy path's features of every logged request (in log order) and the
minutes the delivery took, as `cutover dataset --from ... --label delivered_minutes` writes
them. Trains a reg:squarederror gbtree on the first 80 %, reports the holdout's mean
absolute error, and writes OUT_DIR/model.ubj, OUT_DIR/model_v0.ubj (an older artifact:
40 rounds on the first 40 %, another seed), OUT_DIR/training.json and OUT_DIR/model_check.csv
(300 holdout rows with xgboost's own predictions). Then rewrites REQUESTS.csv with the
column `legacy_eta`: the model's prediction for each row, as the legacy service answered.
"""

import sys

import numpy as np
import xgboost as xgb

from xgb_training import load, record, write

PARAMS = {
    "objective": "reg:squarederror",
    "eval_metric": "mae",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.08,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 4,
    "seed": 2026,
    "nthread": 2,
}
ROUNDS = 200


def main():
    data_path, requests_path, out_dir, command = sys.argv[1:5]
    raw, frame, y, names, types, x = load(data_path)
    cut = int(len(x) * 0.8)
    train = xgb.DMatrix(x[:cut], label=y[:cut], feature_names=names, feature_types=types)
    hold = xgb.DMatrix(x[cut:], label=y[cut:], feature_names=names, feature_types=types)
    booster = xgb.train(PARAMS, train, num_boost_round=ROUNDS)
    p = booster.predict(hold)
    booster.save_model(f"{out_dir}/model.ubj")
    old = xgb.DMatrix(x[: cut // 2], label=y[: cut // 2], feature_names=names, feature_types=types)
    xgb.train(dict(PARAMS, seed=7, max_depth=4), old, num_boost_round=40).save_model(f"{out_dir}/model_v0.ubj")
    holdout = {"rows": int(len(p)), "mae_minutes": float(np.abs(p - y[cut:]).mean()),
               "mae_of_the_mean_minutes": float(np.abs(y[cut:] - y[:cut].mean()).mean())}
    extra = {"label": "delivered_minutes", "label_mean": float(y.mean())}
    write(out_dir, record(PARAMS, ROUNDS, names, types, command, raw, len(x), extra, holdout), frame, cut, p)
    # The legacy service's answers, in the log: xgboost's float32 prediction for each row.
    every = booster.predict(xgb.DMatrix(x, feature_names=names, feature_types=types))
    lines = open(requests_path).read().splitlines()
    header = lines[0].split(",")
    if header[-1] == "legacy_eta":
        lines = [",".join(l.split(",")[:-1]) for l in lines]
    out = [lines[0] + ",legacy_eta"]
    for line, v in zip(lines[1:], np.asarray(every, dtype=np.float32)):
        out.append(f"{line},{repr(float(v))}")
    assert len(out) == len(lines)
    with open(requests_path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
