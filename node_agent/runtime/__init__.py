"""Model execution on the node: repository, numpy schedulers, ONNX pipeline and the execution engine.

Modules: :mod:`.repository` (model.toml parsing, path containment), :mod:`.schedulers` (DDPM/DDIM),
:mod:`.session` (ONNX Runtime sessions and the I/O contract), :mod:`.pipeline` (sampling),
:mod:`.denoise_steps` (the precomputed fast DDIM step and the general scheduler step),
:mod:`.engine` (per-model queues and workers), :mod:`.errors` (exceptions).
"""
