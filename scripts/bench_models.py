#!/usr/bin/python3
"""Trains the tree-benchmark models reproducibly (fixed seeds, Debian's
python3-xgboost) into build/bench-models/ (not committed):

  b500_d8_f100.json   500 trees, depth 8, 100 features, binary:logistic
  r1000_d6_f50.json   1000 trees, depth 6, 50 features, reg:squarederror
  b100_d4_f20.json    100 trees, depth 4, 20 features, binary:logistic
  b500_d8_f100_v1..3.json  three more models of b500_d8_f100's shape trained
                      on other draws (other signal weights, so other trees),
                      for the several-models-in-turn latency benchmark; they
                      score b500_d8_f100.csv (the same row distribution)

with <name>.csv beside each: 100,000 rows (header f0..fN-1) to score, drawn
from the training distribution, and <name>.pred.csv with XGBoost's own
margins for the first 1,000 rows (a cross-check for the benchmark); and
lgb_deep.csv, 10,000 rows for the LightGBM deep model of
/work/shared/bench/lightgbm (python3-sklearn).

Usage: /usr/bin/python3 scripts/bench_models.py [out_dir]
"""
import os
import sys

import numpy as np
import xgboost as xgb

MODELS = [
    # name, trees, depth, features, objective
    ("b500_d8_f100", 500, 8, 100, "binary:logistic"),
    ("r1000_d6_f50", 1000, 6, 50, "reg:squarederror"),
    ("b100_d4_f20", 100, 4, 20, "binary:logistic"),
]
# Variants of MODELS[0]'s shape: (name, seed of their training draw).
VARIANTS = [("b500_d8_f100_v1", 3001), ("b500_d8_f100_v2", 3002), ("b500_d8_f100_v3", 3003)]
TRAIN_ROWS = 20000
BENCH_ROWS = 100000


def data(rng, rows, features, objective):
    x = rng.standard_normal((rows, features)).astype(np.float32)
    w = rng.standard_normal(features)
    signal = x @ w + np.sin(3 * x[:, 0]) * 2 + x[:, 1] * x[:, 2 % features]
    if objective.startswith("binary"):
        y = (signal + rng.standard_normal(rows) > 0).astype(np.float32)
    else:
        y = (signal + 0.3 * rng.standard_normal(rows)).astype(np.float32)
    return x, y


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "bench-models")
    os.makedirs(out, exist_ok=True)
    for i, (name, trees, depth, features, objective) in enumerate(MODELS):
        booster = train(np.random.default_rng(1000 + i), trees, depth, features, objective)
        booster.save_model(os.path.join(out, name + ".json"))
        bx, _ = data(np.random.default_rng(2000 + i), BENCH_ROWS, features, objective)
        header = ",".join(f"f{j}" for j in range(features))
        np.savetxt(os.path.join(out, name + ".csv"), bx, delimiter=",", fmt="%.9g", header=header, comments="")
        margins = booster.predict(xgb.DMatrix(bx[:1000]), output_margin=True)
        np.savetxt(os.path.join(out, name + ".pred.csv"), margins, fmt="%.9g", header="margin", comments="")
        print(f"{name}: {trees} trees, depth {depth}, {features} features -> {out}")
    _, trees, depth, features, objective = MODELS[0]
    for name, seed in VARIANTS:
        train(np.random.default_rng(seed), trees, depth, features, objective).save_model(os.path.join(out, name + ".json"))
        print(f"{name}: {trees} trees, depth {depth}, {features} features -> {out}")
    lightgbm_rows(out)


def train(rng, trees, depth, features, objective):
    x, y = data(rng, TRAIN_ROWS, features, objective)
    params = {
        "objective": objective,
        "max_depth": depth,
        "eta": 0.1,
        "tree_method": "hist",
        "seed": 7,
        "nthread": 2,
        # Grow every tree to full depth so the model has the stated shape.
        "min_child_weight": 0,
        "gamma": 0,
        "lambda": 1,
    }
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=trees)


def lightgbm_rows(out, rows=10000):
    """Rows for the LightGBM deep model in /work/shared/bench/lightgbm (its
    README: the first rows of this make_classification matrix)."""
    from sklearn.datasets import make_classification

    x, _ = make_classification(n_samples=200000, n_features=100, n_informative=30, n_redundant=10, random_state=7)
    header = ",".join(f"f{j}" for j in range(100))
    np.savetxt(os.path.join(out, "lgb_deep.csv"), x[:rows], delimiter=",", fmt="%.17g", header=header, comments="")
    print(f"lgb_deep: {rows} rows -> {out}")


if __name__ == "__main__":
    main()
