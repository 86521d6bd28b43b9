"""Trains the bundled fraud domain's reference model with real xgboost.

usage: train_reference.py DATA.csv OUT_DIR DATASET_COMMAND

Reads the legacy-path features and hidden labels written by `cutover dataset`, trains a
binary:logistic gbtree on the first 80 % (in time order), reports AUC on the last 20 %,
and writes OUT_DIR/model.ubj, OUT_DIR/model_v0.ubj (an older artifact: 60 rounds on the
first 40 %), OUT_DIR/training.json (parameters, versions, the data's
sha256, the command that made the data, and the holdout metrics) and OUT_DIR/model_check.csv
(300 holdout rows with xgboost's own predictions).
"""

import sys

import numpy as np
import xgboost as xgb

from xgb_training import load, record, write

# The legacy service fed category codes to xgboost as plain numbers (no enable_categorical),
# as many services trained before xgboost 1.6 do; that also lets the gbdt runtime score it.
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 2,
    "seed": 2026,
    "nthread": 2,
}
ROUNDS = 150


def auc(y, p):
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main():
    data_path, out_dir, command = sys.argv[1], sys.argv[2], sys.argv[3]
    raw, frame, y, names, types, x = load(data_path)
    cut = int(len(x) * 0.8)
    train = xgb.DMatrix(x[:cut], label=y[:cut], feature_names=names, feature_types=types, enable_categorical=False)
    hold = xgb.DMatrix(x[cut:], label=y[cut:], feature_names=names, feature_types=types, enable_categorical=False)
    booster = xgb.train(PARAMS, train, num_boost_round=ROUNDS)
    p = booster.predict(hold)
    booster.save_model(f"{out_dir}/model.ubj")
    # An older artifact (fewer rounds, older data, another seed): the wrong model a
    # deployment can ship, for the model-artifact fault.
    old = xgb.DMatrix(x[:cut // 2], label=y[:cut // 2], feature_names=names, feature_types=types)
    xgb.train(dict(PARAMS, seed=7), old, num_boost_round=60).save_model(f"{out_dir}/model_v0.ubj")
    holdout = {"rows": int(len(p)), "auc": auc(y[cut:], p),
               "share_above_0.5": float((p > 0.5).mean()), "positive_rate": float(y[cut:].mean())}
    report = record(PARAMS, ROUNDS, names, types, command, raw, len(x), {"positive_rate": float(y.mean())}, holdout)
    write(out_dir, report, frame, cut, p, float_format="%.17g")


if __name__ == "__main__":
    main()
