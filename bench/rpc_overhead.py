"""What gRPC adds to a generation: ``Generate`` over loopback vs the same call in-process.

One agent runs in this process (its server on a background event loop). Each round makes the same
request twice, alternating order: once through a gRPC channel to the agent's port (serde, HTTP/2,
the servicer), once as a direct ``Agent.generate`` coroutine scheduled on the agent's own loop from
this thread — the same thread hop, queue and measurement, without gRPC. It prints both latency
distributions and the added time at p50 (goal <= 1 ms).

Run: ``python bench/rpc_overhead.py [--model digits-mlp-s] [--steps 10] [--batch 1] [--rounds 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node_agent.config import AgentConfig  # noqa: E402
from node_agent.generation import GenerationRequest  # noqa: E402
from node_agent.server import running_agent  # noqa: E402
from orchestrator import serde  # noqa: E402
from protos import edge_agent_pb2_grpc  # noqa: E402


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "profiles/models")
    parser.add_argument("--model", default="digits-mlp-s")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    labels = [i % 10 for i in range(args.batch)]
    config = AgentConfig(
        name="bench", listen="127.0.0.1:0", models=args.models, device="cpu", telemetry_hz=10, preload=(args.model,)
    )
    with running_agent(config) as server, grpc.insecure_channel(server.address) as channel:
        stub = edge_agent_pb2_grpc.EdgeAgentStub(channel)
        loop = server.loop
        request = serde.generate_request(args.model, labels, args.steps, seed=0)
        in_process = GenerationRequest(model=args.model, labels=tuple(labels), steps=args.steps, seed=0)

        def over_grpc() -> float:
            started = time.perf_counter()
            stub.Generate(request, timeout=30)
            return time.perf_counter() - started

        def direct() -> float:
            started = time.perf_counter()
            coro = server.agent.generate(in_process, deadline_monotonic_s=None)
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)
            return time.perf_counter() - started

        for _ in range(20):  # warm-up: connection, sessions, allocator
            over_grpc(), direct()
        grpc_s, direct_s = [], []
        for i in range(args.rounds):
            pair = (over_grpc, direct) if i % 2 == 0 else (direct, over_grpc)
            first, second = pair[0](), pair[1]()
            (grpc_s if pair[0] is over_grpc else direct_s).append(first)
            (direct_s if pair[0] is over_grpc else grpc_s).append(second)
    added_ms = percentile_ms(grpc_s, 50) - percentile_ms(direct_s, 50)
    paired_ms = statistics.median(g - d for g, d in zip(grpc_s, direct_s, strict=True)) * 1e3
    print(f"model={args.model} steps={args.steps} batch={args.batch} rounds={args.rounds}")
    print(f"{'path':<12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}")
    for name, values in (("gRPC", grpc_s), ("in-process", direct_s)):
        print(
            f"{name:<12}{percentile_ms(values, 50):>10.3f}{percentile_ms(values, 90):>10.3f}"
            f"{percentile_ms(values, 99):>10.3f}"
        )
    print(
        f"added by gRPC at p50: {added_ms:.3f} ms (median of paired differences {paired_ms:.3f} ms); "
        f"ratio {percentile_ms(grpc_s, 50) / percentile_ms(direct_s, 50):.2f}x; goal <= 1 ms: "
        f"{'met' if added_ms <= 1.0 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
