"""Tests of the shipped digit models: model.toml and ONNX contracts, torch-vs-ORT equality, quality."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from digits_models import (  # noqa: E402
    build_denoiser,
    load_onnx_weights,
    load_torch_decoder,
    load_torch_denoiser,
)

MODELS_DIR = ROOT / "profiles" / "models"
EVALUATOR_DIR = ROOT / "profiles" / "evaluator" / "digits"
SHIPPED = ("digits-mlp-s", "digits-resmlp-l", "digits-ldm")


def spec_of(name: str) -> dict:
    with open(MODELS_DIR / name / "model.toml", "rb") as f:
        return tomllib.load(f)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def io_signature(sess: ort.InferenceSession) -> tuple[list, list]:
    """(name, type, shape) of the inputs and outputs; symbolic dims as strings."""
    ins = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
    outs = [(o.name, o.type, o.shape) for o in sess.get_outputs()]
    return ins, outs


@pytest.mark.parametrize("name", SHIPPED)
def test_model_toml_follows_contract(name: str) -> None:
    spec = spec_of(name)
    assert spec["name"] == name
    assert spec["kind"] == ("latent" if name == "digits-ldm" else "pixel")
    assert (spec["image"]["channels"], spec["image"]["height"], spec["image"]["width"]) == (1, 8, 8)
    assert (spec["image"]["value_min"], spec["image"]["value_max"]) == (-1.0, 1.0)
    assert spec["classes"]["count"] == 10 and spec["classes"]["null_label"] == 10
    assert spec["classes"]["names"] == [str(i) for i in range(10)]
    sch = spec["schedule"]
    assert (sch["num_train_timesteps"], sch["beta_schedule"], sch["prediction_type"]) == (1000, "linear", "epsilon")
    assert (sch["beta_start"], sch["beta_end"]) == (0.0001, 0.02)
    assert 1 <= spec["defaults"]["steps"] <= 1000 and spec["defaults"]["scheduler"] == "ddim"
    assert 1.0 <= spec["defaults"]["guidance"] <= 5.0
    for rel in spec["files"].values():
        assert (MODELS_DIR / name / rel).is_file()
    assert spec["training"]["params"] > 0 and spec["training"]["arch"] in ("mlp", "resmlp")


def test_repository_parser_accepts_shipped_models() -> None:
    repo_mod = pytest.importorskip("node_agent.runtime.repository")
    entries = {e.name: e for e in repo_mod.ModelRepository(MODELS_DIR).list()}
    for name in SHIPPED:
        assert entries[name].error is None, entries[name].error


@pytest.mark.parametrize("name", SHIPPED)
def test_denoiser_onnx_contract(name: str) -> None:
    spec = spec_of(name)
    sec = spec["latent"] if spec["kind"] == "latent" else spec["image"]
    shape = (sec["channels"], sec["height"], sec["width"])
    sess = session(MODELS_DIR / name / spec["files"]["denoiser"])
    ins, outs = io_signature(sess)
    assert [(n, ty) for n, ty, _ in ins] == [("x", "tensor(float)"), ("t", "tensor(int64)"), ("y", "tensor(int64)")]
    assert [(n, ty) for n, ty, _ in outs] == [("eps", "tensor(float)")]
    assert isinstance(ins[0][2][0], str) and tuple(ins[0][2][1:]) == shape  # dynamic batch axis
    assert tuple(outs[0][2][1:]) == shape
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    (eps,) = sess.run(None, {"x": x, "t": np.array([0, 500, 999]), "y": np.array([0, 9, 10])})
    assert eps.shape == (3, *shape) and eps.dtype == np.float32 and np.isfinite(eps).all()


def test_latent_files_contract_and_scale() -> None:
    spec = spec_of("digits-ldm")
    lat = spec["latent"]
    latent_shape = (lat["channels"], lat["height"], lat["width"])
    assert latent_shape == (4, 2, 2)
    enc = session(MODELS_DIR / "digits-ldm" / spec["files"]["encoder"])
    dec = session(MODELS_DIR / "digits-ldm" / spec["files"]["decoder"])
    assert [(i.name, i.type) for i in enc.get_inputs()] == [("image", "tensor(float)")]
    assert [o.name for o in enc.get_outputs()] == ["z"]
    assert [(i.name, i.type) for i in dec.get_inputs()] == [("z", "tensor(float)")]
    assert [o.name for o in dec.get_outputs()] == ["image"]
    with np.load(EVALUATOR_DIR / "reference.npz") as ref:
        images = ref["images"]
    (z,) = enc.run(None, {"image": images})
    assert z.shape == (len(images), *latent_shape)
    assert 0.7 < float((z * lat["scale"]).std()) < 1.4  # scaled latents have about unit std
    (recon,) = dec.run(None, {"z": z})
    assert recon.shape == images.shape
    assert float(np.mean((recon - images) ** 2)) < 0.1  # held-out digits survive the round trip
    (three,) = dec.run(None, {"z": z[:3]})
    np.testing.assert_allclose(three, recon[:3], atol=1e-5)


def test_evaluator_onnx_contract() -> None:
    sess = session(EVALUATOR_DIR / "evaluator.onnx")
    ins, outs = io_signature(sess)
    assert [(n, ty) for n, ty, _ in ins] == [("image", "tensor(float)")]
    assert [n for n, _, _ in outs] == ["logits", "features"]
    logits, feats = sess.run(None, {"image": np.zeros((3, 1, 8, 8), np.float32)})
    assert logits.shape == (3, 10) and 32 <= feats.shape[1] <= 64
    with np.load(EVALUATOR_DIR / "reference.npz") as ref:
        assert ref["images"].dtype == np.float32 and ref["images"].shape[1:] == (1, 8, 8)
        assert ref["labels"].dtype == np.int64 and set(ref["labels"].tolist()) == set(range(10))
        assert ref["mu"].shape == (feats.shape[1],) and ref["sigma"].shape == (feats.shape[1],) * 2


def test_shipped_files_are_small() -> None:
    files = [*MODELS_DIR.glob("*/*.onnx"), *EVALUATOR_DIR.glob("*.onnx"), *EVALUATOR_DIR.glob("*.npz")]
    total_bytes = sum(p.stat().st_size for p in files)
    assert len(files) >= 7 and total_bytes <= 20 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_torch_rebuild_matches_onnx_runtime(name: str) -> None:
    spec = spec_of(name)
    module = load_torch_denoiser(MODELS_DIR / name)
    sec = spec["latent"] if spec["kind"] == "latent" else spec["image"]
    x = np.random.default_rng(1).standard_normal((5, sec["channels"], sec["height"], sec["width"]))
    x = x.astype(np.float32)
    t, y = np.array([0, 1, 250, 998, 999]), np.array([3, 10, 0, 9, 10])
    (expected,) = session(MODELS_DIR / name / "denoiser.onnx").run(None, {"x": x, "t": t, "y": y})
    with torch.no_grad():
        got = module(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).mean() > 0.1  # a real network output, not zeros


def test_torch_decoder_matches_onnx_runtime() -> None:
    z = np.random.default_rng(2).standard_normal((4, 4, 2, 2)).astype(np.float32)
    (expected,) = session(MODELS_DIR / "digits-ldm" / "decoder.onnx").run(None, {"z": z})
    with torch.no_grad():
        got = load_torch_decoder(MODELS_DIR / "digits-ldm")(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_weights_of_another_architecture_are_refused() -> None:
    onnx_path = MODELS_DIR / "digits-mlp-s" / "denoiser.onnx"
    other_arch = build_denoiser("resmlp", (1, 8, 8), 10, {"width": 128, "blocks": 2, "time_dim": 64})
    with pytest.raises(ValueError, match=r"no initializer named 'blocks\.0\.norm\.weight'"):
        load_onnx_weights(other_arch, onnx_path)
    other_width = build_denoiser("mlp", (1, 8, 8), 10, {"width": 256, "depth": 3, "time_dim": 64})
    with pytest.raises(ValueError, match="has shape"):
        load_onnx_weights(other_width, onnx_path)
