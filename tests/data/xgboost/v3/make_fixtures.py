#!/usr/bin/python3
"""XGBoost 2.x/3.x layouts built from models Debian's xgboost 1.7.4 trains.

1.7.4 cannot write 2.x/3.x files, so each model is trained and predicted by
1.7.4 (the expected values), then its JSON is rewritten by hand into the
later layout, following XGBoost's model IO (see src/model/loaders/xgboost_loader.cpp):
  dart34.json       DART as 3.4 writes it: "gbtree" + model.weight_drop,
                    base_score "[b]", iteration_indptr, version 3.4.1
  dart31.json       the same model as 1.7/3.1 write it ("dart")
  multitarget.json  reg:squarederror on a 2-column label (one tree per target
                    per round), 3.x base_score "[b,b]" and iteration_indptr
  multilabel.json   binary:logistic on 2 labels, likewise
Expected: <name>.pred.csv (default output), <name>.margin.csv,
<name>.at3.pred.csv (iteration_range (0, 3)); input (all): input.csv.
dart31.json has dart34's expected values.
Run: /usr/bin/python3 make_fixtures.py  (deterministic: fixed seeds)
"""
import json

import numpy as np
import xgboost as xgb

rng = np.random.default_rng(11)
X = rng.normal(size=(200, 4)).astype(np.float32)
X[rng.random(X.shape) < 0.08] = np.nan
Xt = rng.normal(size=(40, 4)).astype(np.float32)
Xt[rng.random(Xt.shape) < 0.1] = np.nan
names = ["a", "b", "c", "d"]


def write_csv(path, rows, header=None):
    with open(path, "w") as f:
        if header:
            f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join("" if np.isnan(v) else "%.9g" % v for v in np.atleast_1d(r)) + "\n")


def to_3x(model, booster_key="gbtree"):
    """Rewrites a 1.7.4 JSON document into the 3.x layout."""
    lr = model["learner"]
    lmp = lr["learner_model_param"]
    k = max(int(lmp["num_class"]), int(lmp.get("num_target", "1")), 1)
    lmp["base_score"] = "[" + ",".join([lmp["base_score"]] * k) + "]"
    gb = lr["gradient_booster"]
    inner = gb["gbtree"]["model"] if gb["name"] == "dart" else gb["model"]
    n = len(inner["trees"])
    per = int(inner["gbtree_model_param"]["num_parallel_tree"]) * k
    inner["iteration_indptr"] = list(range(0, n + 1, per))
    for t in inner["trees"]:
        t["tree_param"]["size_leaf_vector"] = "1"
    model["version"] = [3, 4, 1]
    return model


def save(name, bst, dm_t, doc, at3=True):
    with open(name + ".json", "w") as f:
        json.dump(doc, f)
    pred = bst.predict(dm_t)
    margin = bst.predict(dm_t, output_margin=True)
    k = 1 if pred.ndim == 1 else pred.shape[1]
    hdr = ["score"] if k == 1 else ["score_%d" % i for i in range(k)]
    write_csv(name + ".pred.csv", pred, hdr)
    write_csv(name + ".margin.csv", margin, hdr)
    if at3:
        write_csv(name + ".at3.pred.csv", bst.predict(dm_t, iteration_range=(0, 3)), hdr)


dt = xgb.DMatrix(Xt, feature_names=names)
write_csv("input.csv", Xt, names)

# DART, binary:logistic, 6 rounds.
y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) > 0).astype(np.float32)
d = xgb.DMatrix(X, label=y, feature_names=names)
bst = xgb.train({"booster": "dart", "objective": "binary:logistic", "max_depth": 3, "rate_drop": 0.3,
                 "skip_drop": 0.0, "eta": 0.5, "seed": 3}, d, 6)
raw = json.loads(bst.save_raw("json"))
with open("dart31.json", "w") as f:
    json.dump(raw, f)
doc = to_3x(json.loads(bst.save_raw("json")))
gb = doc["learner"]["gradient_booster"]
inner = gb["gbtree"]["model"]
inner["weight_drop"] = gb["weight_drop"]
doc["learner"]["gradient_booster"] = {"name": "gbtree", "model": inner}
save("dart34", bst, dt, doc)

# Multi-target regression, one tree per target per round.
Y = np.stack([np.nan_to_num(X[:, 0]) * 2 + 1, np.nan_to_num(X[:, 2]) - np.nan_to_num(X[:, 3])], axis=1)
d = xgb.DMatrix(X, label=Y, feature_names=names)
bst = xgb.train({"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 3, "eta": 0.4,
                 "base_score": 0.5}, d, 5)
save("multitarget", bst, dt, to_3x(json.loads(bst.save_raw("json"))))

# Multi-label binary:logistic on 2 labels.
Y = np.stack([(np.nan_to_num(X[:, 0]) > 0), (np.nan_to_num(X[:, 1]) > 0.3)], axis=1).astype(np.float32)
d = xgb.DMatrix(X, label=Y, feature_names=names)
bst = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 2, "eta": 0.5}, d, 4)
save("multilabel", bst, dt, to_3x(json.loads(bst.save_raw("json"))))
