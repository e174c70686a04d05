"""Session creation: provider choice, thread options, and the I/O contract check at load time."""

from __future__ import annotations

import pytest

from node_agent.runtime.errors import ModelLoadError
from node_agent.runtime.repository import ModelRepository
from node_agent.runtime.session import choose_providers, create_session, session_options

CPU = "CPUExecutionProvider"
ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]


@pytest.mark.parametrize(
    ("device_kind", "available", "expected"),
    [
        ("cpu", ALL, [CPU]),
        ("simulated", ALL, [CPU]),
        ("nvidia", ALL, ALL),
        ("jetson", ["CUDAExecutionProvider", CPU], ["CUDAExecutionProvider", CPU]),
        ("nvidia", ["AzureExecutionProvider", CPU], [CPU]),
    ],
)
def test_choose_providers(device_kind, available, expected):
    assert choose_providers(device_kind, available) == expected


def test_choose_providers_defaults_to_this_build():
    assert choose_providers("cpu") == [CPU]
    assert choose_providers("nvidia")[-1] == CPU


def test_session_options_threads():
    assert session_options(3).intra_op_num_threads == 3
    with pytest.raises(ValueError, match="intra_op_threads"):
        session_options(-1)


def test_valid_model_loads_on_cpu(tmp_path, write_model):
    write_model(tmp_path, "m", kind="latent")
    spec = ModelRepository(tmp_path).get("m")
    for role in ("denoiser", "decoder"):
        session = create_session(spec, role, [CPU], intra_op_threads=1)
        assert session.get_providers() == [CPU]


def _load_with(tmp_path, write_model, build):
    write_model(tmp_path, "m", denoiser=build)
    spec = ModelRepository(tmp_path).get("m")
    return create_session(spec, "denoiser", [CPU], 1)


def test_wrong_input_names(tmp_path, write_model, onnx_kit):
    def build(path, shape):
        onnx_kit.affine_denoiser(path, shape, x_name="sample", t_name="timestep")

    with pytest.raises(ModelLoadError, match=r"denoiser.onnx: denoiser inputs are \['sample', 'timestep', 'y'\]"):
        _load_with(tmp_path, write_model, build)


def test_wrong_static_shape(tmp_path, write_model, onnx_kit):
    def build(path, shape):
        onnx_kit.affine_denoiser(path, (1, 4, 4))  # the spec says 1x8x8

    with pytest.raises(ModelLoadError, match=r"input 'x': axis 2 is 4, model.toml says 8"):
        _load_with(tmp_path, write_model, build)


def test_fixed_batch_refused(tmp_path, write_model, onnx_kit):
    def build(path, shape):
        onnx_kit.affine_denoiser(path, shape, batch=2)

    with pytest.raises(ModelLoadError, match="batch axis is fixed to 2, contract says dynamic"):
        _load_with(tmp_path, write_model, build)


def test_wrong_input_type(tmp_path, write_model, onnx_kit):
    def build(path, shape):
        inputs, outputs = onnx_kit.denoiser_io(shape)
        inputs[1] = onnx_kit.tensor_info("t", onnx_kit.FLOAT, ("batch",))
        from onnx import helper

        nodes = [helper.make_node("Identity", ["x"], ["eps"])]
        onnx_kit.save_onnx(path, nodes, inputs, outputs)

    with pytest.raises(ModelLoadError, match=r"input 't': type tensor\(float\), contract says tensor\(int64\)"):
        _load_with(tmp_path, write_model, build)


def test_corrupt_and_missing_files(tmp_path, write_model):
    folder = write_model(tmp_path, "m")
    spec = ModelRepository(tmp_path).get("m")
    (folder / "denoiser.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError, match=r"denoiser.onnx: cannot load denoiser"):
        create_session(spec, "denoiser", [CPU])
    (folder / "denoiser.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"denoiser.onnx: cannot read denoiser"):
        create_session(spec, "denoiser", [CPU])
    with pytest.raises(ModelLoadError, match=r"files.decoder: not given"):
        create_session(spec, "decoder", [CPU])
