"""edgetb node agent: serves diffusion models with ONNX Runtime and reports measured telemetry."""

__version__ = "0.1.0"
