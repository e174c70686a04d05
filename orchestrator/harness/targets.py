"""What the harness drives: an edgetb agent over EdgeAgent, or any KServe v2 server.

Both sit behind :class:`Target`: ``open`` checks the address and the model (loading it when the
server can and it is not loaded; unloaded again at ``close``), ``infer`` runs one query (blocking,
thread-safe; gRPC errors surface as ``grpc.RpcError``), ``idle_baseline`` measures the device's
idle power where the protocol has a way to (EdgeAgent ``StreamTelemetry``; KServe has none).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass

import grpc

from orchestrator import serde, serde_kserve
from orchestrator.client import MAX_MESSAGE_BYTES, AgentClient
from orchestrator.serde_kserve import InferReply as Reply  # one query's reply, for either protocol
from protos import edge_agent_pb2_grpc, kserve_v2_pb2_grpc

PROTOCOLS = ("edgeagent", "kserve")
#: How long ``open`` waits for the channel to connect, s.
CONNECT_TIMEOUT_S = 5.0
#: Timeout of the control calls (info, metadata, ready), s; loading a model gets ``LOAD_TIMEOUT_S``.
CONTROL_TIMEOUT_S = 10.0
#: Samples per StreamTelemetry message (the agent allows 10..100).
TELEMETRY_BATCH = 10
LOAD_TIMEOUT_S = 120.0
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


class BenchError(RuntimeError):
    """The run cannot be done: unreachable target, wrong protocol, unknown or unservable model."""


@dataclass(frozen=True)
class TargetFacts:
    """What ``open`` learnt about the server and the model."""

    server: str
    server_version: str
    device: str | None
    num_classes: int | None
    loaded_by_harness: bool


@dataclass(frozen=True)
class IdleBaseline:
    """Mean device power with no load: ``power_w`` None and source ``unavailable`` when not measured.

    Attributes:
        power_w: mean idle power, W.
        source: source label of the power readings, or ``unavailable``.
        samples: telemetry samples averaged.
        duration_s: time spanned by those samples, s (agent clock).
        reason: why unavailable; empty when measured.
    """

    power_w: float | None
    source: str
    samples: int
    duration_s: float
    reason: str = ""


def _describe(exc: grpc.RpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]


def _wait_connected(channel: grpc.Channel, address: str, timeout_s: float) -> None:
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise BenchError(f"cannot connect to {address} within {timeout_s:g} s") from None


class Target(ABC):
    """One server and one model under test."""

    protocol: str

    def __init__(self, address: str, timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Args: address: HOST:PORT. timeout_s: deadline of each query, s. connect_timeout_s: for ``open``, s."""
        self.address = address
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.model = ""

    @abstractmethod
    def open(self, model: str) -> TargetFacts:
        """Connect, check the model, load it if needed. Raises :class:`BenchError`."""

    @abstractmethod
    def infer(self, labels: list[int], seed: int, steps: int) -> Reply:
        """One query of ``len(labels)`` images."""

    @abstractmethod
    def idle_baseline(self, idle_s: float) -> IdleBaseline:
        """Mean device power over ``idle_s`` seconds with no load."""

    @abstractmethod
    def close(self) -> None:
        """Unload the model if ``open`` loaded it; close the channels."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EdgeAgentTarget(Target):
    """An edgetb agent over its own EdgeAgent API."""

    protocol = "edgeagent"

    def __init__(self, address: str, timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        super().__init__(address, timeout_s, connect_timeout_s)
        self._client = AgentClient(address, timeout_s=timeout_s)
        self._telemetry = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._loaded_by_harness = False
        self._telemetry_hz = 1.0
        self._power_note = ""

    def open(self, model: str) -> TargetFacts:
        self.model = model
        try:
            self._client.wait_ready(self.connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise BenchError(f"cannot connect to {self.address} within {self.connect_timeout_s:g} s") from None
        try:
            info = self._client.info()
            models = {m.name: m for m in self._client.models()}
        except grpc.RpcError as exc:
            raise BenchError(
                f"{self.address} does not answer EdgeAgent calls ({_describe(exc)}); "
                "for a plain KServe v2 server use --protocol kserve"
            ) from None
        self._telemetry_hz = info.telemetry_hz or 1.0
        self._power_note = info.sources.get("power", ("unavailable", ""))[1]
        if model not in models:
            raise BenchError(f"model '{model}' is not in agent {info.name}'s repository; it has: {sorted(models)}")
        if models[model].error:
            raise BenchError(f"model '{model}' cannot be served by agent {info.name}: {models[model].error}")
        if not models[model].loaded:
            try:
                self._client.load(model)
            except grpc.RpcError as exc:
                raise BenchError(f"loading model '{model}' failed: {_describe(exc)}") from None
            self._loaded_by_harness = True
        return TargetFacts(
            server=info.name,
            server_version=info.version,
            device=f"{info.device_kind}: {info.device_name}",
            num_classes=models[model].num_classes or None,
            loaded_by_harness=self._loaded_by_harness,
        )

    def infer(self, labels: list[int], seed: int, steps: int) -> Reply:
        g = self._client.generate(self.model, labels, steps=steps, seed=seed)
        return Reply(int(g.images.shape[0]), g.queue_time_s, g.compute_time_s, g.energy_j, g.energy_source)

    def idle_baseline(self, idle_s: float) -> IdleBaseline:
        if idle_s <= 0:
            return IdleBaseline(None, "unavailable", 0, 0.0, "not measured (--idle-s 0)")
        stub = edge_agent_pb2_grpc.EdgeAgentStub(self._telemetry)
        wait_s = idle_s + TELEMETRY_BATCH / self._telemetry_hz + 2.0
        # from_seq 0: from the newest sample on.
        call = stub.StreamTelemetry(serde.telemetry_request(0, TELEMETRY_BATCH), timeout=wait_s)
        samples: list[serde.TelemetryRow] = []
        try:
            for batch in call:
                samples += serde.telemetry_from_proto(batch, self.address).rows
                if samples and samples[-1].t_unix_s - samples[0].t_unix_s >= idle_s:
                    break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                return IdleBaseline(None, "unavailable", 0, 0.0, f"StreamTelemetry failed: {_describe(exc)}")
        finally:
            call.cancel()
        window = [s for s in samples if s.t_unix_s - samples[0].t_unix_s <= idle_s] if samples else []
        powered = [s for s in window if s.power_w is not None]
        span_s = window[-1].t_unix_s - window[0].t_unix_s if window else 0.0
        if not powered:
            why = "no telemetry samples arrived" if not window else "the agent reports no power"
            note = f" ({self._power_note})" if self._power_note else ""
            return IdleBaseline(None, "unavailable", len(window), span_s, why + note)
        mean_w = sum(s.power_w for s in powered) / len(powered)  # type: ignore[misc]
        source = "+".join(sorted({s.power_source for s in powered}))
        return IdleBaseline(mean_w, source, len(powered), span_s)

    def close(self) -> None:
        if self._loaded_by_harness:
            with contextlib.suppress(grpc.RpcError):  # then the agent keeps it loaded
                self._client.unload(self.model)
            self._loaded_by_harness = False
        self._client.close()
        self._telemetry.close()


class KServeTarget(Target):
    """Any KServe v2 gRPC server (an edgetb agent's extras are used when present)."""

    protocol = "kserve"

    def __init__(self, address: str, timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        super().__init__(address, timeout_s, connect_timeout_s)
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = kserve_v2_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._loaded_by_harness = False

    def open(self, model: str) -> TargetFacts:
        self.model = model
        _wait_connected(self._channel, self.address, self.connect_timeout_s)
        stub, t_s = self._stub, CONTROL_TIMEOUT_S
        try:
            stub.ServerLive(serde_kserve.server_live_request(), timeout=t_s)
            server, version = serde_kserve.server_metadata(
                stub.ServerMetadata(serde_kserve.server_metadata_request(), timeout=t_s)
            )
        except grpc.RpcError as exc:
            raise BenchError(
                f"{self.address} does not answer KServe v2 calls ({_describe(exc)}); "
                "for an edgetb agent's own API use --protocol edgeagent"
            ) from None
        try:
            ready = stub.ModelReady(serde_kserve.model_ready_request(model), timeout=t_s).ready
        except grpc.RpcError as exc:
            raise BenchError(f"model '{model}' on {self.address}: {_describe(exc)}") from None
        if not ready:
            try:
                stub.RepositoryModelLoad(serde_kserve.load_request(model), timeout=LOAD_TIMEOUT_S)
            except grpc.RpcError as exc:
                raise BenchError(f"model '{model}' is not ready and loading it failed: {_describe(exc)}") from None
            self._loaded_by_harness = True
        try:
            meta = serde_kserve.model_meta(stub.ModelMetadata(serde_kserve.model_metadata_request(model), timeout=t_s))
        except grpc.RpcError as exc:
            raise BenchError(f"model '{model}' metadata: {_describe(exc)}") from None
        inputs, outputs = [t.name for t in meta.inputs], [t.name for t in meta.outputs]
        if serde_kserve.INPUT_NAME not in inputs or serde_kserve.OUTPUT_NAME not in outputs:
            raise BenchError(
                f"model '{model}' has inputs {inputs} and outputs {outputs}; the harness drives diffusion "
                f"models with input '{serde_kserve.INPUT_NAME}' and output '{serde_kserve.OUTPUT_NAME}'"
            )
        return TargetFacts(server, version, None, None, self._loaded_by_harness)

    def infer(self, labels: list[int], seed: int, steps: int) -> Reply:
        request = serde_kserve.infer_request(self.model, labels, steps, seed)
        return serde_kserve.infer_reply(self._stub.ModelInfer(request, timeout=self.timeout_s), len(labels))

    def idle_baseline(self, idle_s: float) -> IdleBaseline:
        return IdleBaseline(None, "unavailable", 0, 0.0, "the KServe v2 protocol has no telemetry API")

    def close(self) -> None:
        if self._loaded_by_harness:
            with contextlib.suppress(grpc.RpcError):
                self._stub.RepositoryModelUnload(serde_kserve.unload_request(self.model), timeout=CONTROL_TIMEOUT_S)
            self._loaded_by_harness = False
        self._channel.close()


def open_target(protocol: str, address: str, timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Target:
    """A (not yet opened) target for ``protocol`` (``edgeagent`` or ``kserve``)."""
    if protocol == "edgeagent":
        return EdgeAgentTarget(address, timeout_s, connect_timeout_s)
    if protocol == "kserve":
        return KServeTarget(address, timeout_s, connect_timeout_s)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
