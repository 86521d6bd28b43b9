"""What `cutover predict` does, done with pandas and xgboost: the baseline it is timed against.

usage: predict_xgboost.py MODEL INPUT.csv OUTPUT.csv
"""

import sys

import numpy as np
import pandas as pd
import xgboost as xgb


def main():
    model_path, input_path, output_path = sys.argv[1:4]
    booster = xgb.Booster(model_file=model_path)
    frame = pd.read_csv(input_path, na_values=["", "NA", "NaN"], keep_default_na=False, dtype=np.float64)
    data = xgb.DMatrix(frame[booster.feature_names].to_numpy(), missing=np.nan, feature_names=booster.feature_names)
    pred = booster.predict(data)
    # Shortest repr that round-trips the float32, as cutover prints it.
    with open(output_path, "w") as f:
        f.write("prediction\n")
        f.write("\n".join(np.format_float_positional(v, unique=True, trim="-") for v in pred.astype(np.float32)))
        f.write("\n")


if __name__ == "__main__":
    main()
