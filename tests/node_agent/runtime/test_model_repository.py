"""Model repository: parsing, validation messages (file + field), path containment."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest

from node_agent.runtime.repository import (
    InvalidModelSpec,
    ModelNotFound,
    ModelRepository,
    parse_model_spec,
)


def test_valid_pixel_and_latent_specs(tmp_path, write_model):
    write_model(tmp_path, "digits-px")
    write_model(tmp_path, "digits-ldm", kind="latent")
    repo = ModelRepository(tmp_path)
    assert repo.names() == ["digits-ldm", "digits-px"]
    px = repo.get("digits-px")
    assert px.kind == "pixel" and px.latent is None
    assert px.image_shape == (1, 8, 8) and px.denoise_shape == (1, 8, 8)
    assert px.value_range == (-1.0, 1.0)
    assert px.num_classes == 10 and px.null_label == 10 and px.class_names[3] == "3"
    assert px.schedule.num_train_timesteps == 1000 and px.schedule.beta_schedule == "linear"
    assert (px.default_steps, px.default_scheduler, px.default_guidance, px.max_batch) == (10, "ddim", 2.0, 8)
    assert px.files == {"denoiser": (tmp_path / "digits-px" / "denoiser.onnx").resolve()}
    assert px.training == {"arch": "affine", "seed": 0}
    ldm = repo.get("digits-ldm")
    assert ldm.latent is not None and ldm.latent.shape == (4, 2, 2) and ldm.latent.scale == 0.5
    assert ldm.denoise_shape == (4, 2, 2)
    assert set(ldm.files) == {"denoiser", "decoder"}


def _set(doc: dict, dotted: str, value) -> None:
    *tables, key = dotted.split(".")
    for t in tables:
        doc = doc.setdefault(t, {})
    if value is _DELETE:
        del doc[key]
    else:
        doc[key] = value


_DELETE = object()

BAD_FIELDS = [
    ("name", "other-name"),
    ("kind", "video"),
    ("image.channels", 0),
    ("image.height", 1.5),
    ("image.value_max", -2.0),
    ("image.value_min", float("nan")),
    ("classes.count", _DELETE),
    ("classes.names", ["a", "b"]),
    ("classes.null_label", 3),
    ("schedule.num_train_timesteps", 0),
    ("schedule.beta_schedule", "cosine"),
    ("schedule.beta_start", 0.0),
    ("schedule.beta_end", 0.00001),
    ("schedule.prediction_type", "noise"),
    ("schedule.clip_sample", "yes"),
    ("schedule.clip_sample_range", -1.0),
    ("defaults.steps", 1001),
    ("defaults.scheduler", "euler"),
    ("defaults.guidance", -1.0),
    ("defaults.max_batch", 0),
    ("defaults.max_batch", True),
    ("defaults.guidence", 2.0),
    ("files.denoiser", "missing.onnx"),
    ("files.denoiser", _DELETE),
    ("files.decoder", "denoiser.onnx"),
    ("image.extra", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_each_error_names_file_and_field(tmp_path, write_model, onnx_kit, field, value):
    folder = write_model(tmp_path, "m")
    doc = copy.deepcopy(onnx_kit.spec_doc("m"))
    _set(doc, field, value)
    spec_path = folder / "model.toml"
    spec_path.write_text(onnx_kit.to_toml(doc))
    expected_field = {"files.decoder": "files"}.get(field, field)
    with pytest.raises(InvalidModelSpec) as info:
        ModelRepository(tmp_path).get("m")
    assert str(info.value).startswith(f"{spec_path.resolve()}: {expected_field}"), str(info.value)


def test_latent_model_needs_latent_table_and_decoder(tmp_path, write_model, onnx_kit):
    folder = write_model(tmp_path, "l", kind="latent")
    for field in ("latent", "files.decoder"):
        doc = onnx_kit.spec_doc("l", "latent")
        _set(doc, field, _DELETE)
        (folder / "model.toml").write_text(onnx_kit.to_toml(doc))
        with pytest.raises(InvalidModelSpec, match=rf"model\.toml: {field.replace('.', '[.]')}: "):
            parse_model_spec(folder / "model.toml")


def test_not_toml_and_oversized(tmp_path, write_model):
    folder = write_model(tmp_path, "m")
    (folder / "model.toml").write_text("name = [unclosed")
    with pytest.raises(InvalidModelSpec, match=re.escape("model.toml: not valid TOML")):
        ModelRepository(tmp_path).get("m")
    (folder / "model.toml").write_text("# " + "x" * 300_000)
    with pytest.raises(InvalidModelSpec, match="bytes, limit"):
        ModelRepository(tmp_path).get("m")


@pytest.mark.parametrize("bad", ["../m", "/etc", "M", "", ".hidden", "a/b", "m\x00", "x" * 65, 3])
def test_invalid_names_refused(tmp_path, write_model, bad):
    write_model(tmp_path, "m")
    with pytest.raises(ModelNotFound):
        ModelRepository(tmp_path).get(bad)


def test_unknown_model(tmp_path):
    with pytest.raises(ModelNotFound, match="not found"):
        ModelRepository(tmp_path).get("nope")


@pytest.mark.parametrize("rel", ["../other/denoiser.onnx", "/abs/denoiser.onnx", "sub/../../x.onnx"])
def test_file_entries_leaving_the_folder_refused(tmp_path, write_model, onnx_kit, rel):
    folder = write_model(tmp_path / "repo", "m")
    write_model(tmp_path / "repo", "other")
    doc = onnx_kit.spec_doc("m")
    doc["files"]["denoiser"] = rel
    (folder / "model.toml").write_text(onnx_kit.to_toml(doc))
    with pytest.raises(
        InvalidModelSpec, match=re.escape("files.denoiser: must be a relative path inside the model folder")
    ):
        ModelRepository(tmp_path / "repo").get("m")


def test_symlinked_file_escaping_refused(tmp_path, write_model, onnx_kit):
    outside = tmp_path / "outside.onnx"
    onnx_kit.affine_denoiser(outside, (1, 8, 8))
    folder = write_model(tmp_path / "repo", "m")
    os.symlink(outside, folder / "link.onnx")
    doc = onnx_kit.spec_doc("m")
    doc["files"]["denoiser"] = "link.onnx"
    (folder / "model.toml").write_text(onnx_kit.to_toml(doc))
    with pytest.raises(
        InvalidModelSpec, match=re.escape("files.denoiser: 'link.onnx' resolves outside the model folder")
    ):
        ModelRepository(tmp_path / "repo").get("m")


def test_symlinked_model_folder_escaping_refused(tmp_path, write_model):
    elsewhere = write_model(tmp_path / "elsewhere", "m")
    (tmp_path / "repo").mkdir()
    os.symlink(elsewhere, tmp_path / "repo" / "m")
    repo = ModelRepository(tmp_path / "repo")
    with pytest.raises(ModelNotFound, match="outside the repository"):
        repo.get("m")
    entries = repo.list()
    assert [(e.name, e.spec) for e in entries] == [("m", None)]
    assert "outside the repository" in entries[0].error


def test_symlinked_model_folder_inside_root_allowed(tmp_path, write_model):
    write_model(tmp_path, "real")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    # The spec's name must equal the (resolved) folder name, so an alias reads as "real"'s folder.
    with pytest.raises(InvalidModelSpec, match="name"):
        ModelRepository(tmp_path).get("alias")
    assert ModelRepository(tmp_path).get("real").name == "real"


def test_broken_folder_listed_with_error_and_others_fine(tmp_path, write_model):
    write_model(tmp_path, "good-a")
    broken = write_model(tmp_path, "broken")
    write_model(tmp_path, "good-b", kind="latent")
    (broken / "model.toml").write_text((broken / "model.toml").read_text().replace('"ddim"', '"plms"'))
    (tmp_path / "not-a-model").mkdir()  # no model.toml: not listed
    (tmp_path / "README.md").write_text("hi")
    entries = {e.name: e for e in ModelRepository(tmp_path).list()}
    assert sorted(entries) == ["broken", "good-a", "good-b"]
    assert entries["broken"].spec is None and "defaults.scheduler" in entries["broken"].error
    assert entries["good-a"].spec is not None and entries["good-a"].error is None
    assert entries["good-b"].spec is not None and entries["good-b"].spec.kind == "latent"


def test_missing_root_lists_nothing(tmp_path):
    repo = ModelRepository(Path(tmp_path / "absent"))
    assert repo.names() == [] and repo.list() == []
