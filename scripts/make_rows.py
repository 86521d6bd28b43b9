"""Writes N rows for the benchmark model's 20 features (x0..x19), 10 % missing, seeded.

usage: make_rows.py N OUTPUT.csv
"""

import sys

import numpy as np


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 20)) * rng.uniform(0.5, 20.0, size=20)
    x[:, 0] = np.round(x[:, 0], 1)
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    with open(path, "w") as f:
        f.write(",".join(f"x{i}" for i in range(20)) + "\n")
        for row in x:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


if __name__ == "__main__":
    main()
