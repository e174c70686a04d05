"""A blocking client of the orchestrator daemon (workloads, the harness, tests)."""

from __future__ import annotations

from orchestrator import daemon_serde as serde
from orchestrator.client import insecure_channel
from orchestrator.router import Routed, SubmitSpec
from protos import orchestrator_pb2_grpc

#: Channel limits matching the daemon's defaults.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class OrchestratorClient:
    """Submit and GetStatus with a per-call timeout; errors surface as ``grpc.RpcError``."""

    def __init__(self, target: str, timeout_s: float = 120.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = insecure_channel(target, MAX_MESSAGE_BYTES)
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    def submit(
        self,
        model: str,
        label: int,
        *,
        steps: int | None = None,
        quality_floor: float | None = None,
        deadline_s: float = 0.0,
        seed: int = 0,
        request_id: str = "",
        snr_db: float | None = None,
        w_latency: float | None = None,
        w_energy: float | None = None,
    ) -> Routed:
        """One image of class ``label``; ``steps`` or ``quality_floor`` (or neither: the model's default);
        ``snr_db``: the user's downlink SNR, dB (needed by a daemon that emulates a radio downlink);
        ``w_latency`` / ``w_energy``: the user's utility weights (None: the daemon's ``[policy]`` ones)."""
        spec = SubmitSpec(request_id, model, label, steps, quality_floor, deadline_s, seed, snr_db, w_latency, w_energy)
        return serde.routed_from_proto(self._stub.Submit(serde.submit_request(spec), timeout=self.timeout_s))

    def status(self) -> serde.DaemonStatus:
        return serde.status_from_proto(self._stub.GetStatus(serde.status_request(), timeout=self.timeout_s))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
