"""The emulated radio downlink in a live in-process cluster (``[policy.radio]``).

One cell of 1 MHz, 12 500-byte images: at 0 dB (1 bit/s/Hz) the whole band sends an image in 0.1 s.
Fixed policies take half of the slot's free band (``bandwidth_share = 0.5``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from orchestrator.radio import Downlink

HEARTBEAT_S = 0.5  # down after 3 silent intervals: generous, the full suite loads the 2 cores
MODEL = "digits-mlp-s"
DOWNLINK = Downlink(bandwidth_hz=1e6, image_bytes=12_500, min_share=0.05)
#: asyncio.sleep and the answer's way back may overshoot a little; never undershoot
SLEEP_SLACK_S = 0.08


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, policy_cluster):
    policy = {
        "caching": "none", "allocation": "fixed-steps", "slot_s": 0.5, "frame_slots": 1000, "cache_models": 1,
        "fixed_steps": 2, "cloud_agent": "cloud", "w_latency": 0.5, "w_energy": 0.0, "bandwidth_share": 0.5,
        "radio": {"bandwidth_hz": DOWNLINK.bandwidth_hz, "image_bytes": DOWNLINK.image_bytes, "min_share": 0.05},
    }  # fmt: skip
    with policy_cluster(tmp_path_factory.mktemp("radio"), policy, ("edge-a",), HEARTBEAT_S) as running:
        yield running


def _rows(cluster, sql: str, *args) -> list[tuple]:
    assert cluster.daemon.store.flush(), "store flush timed out"
    with contextlib.closing(sqlite3.connect(cluster.daemon.store.path)) as db:
        return db.execute(sql, args).fetchall()


def test_the_image_waits_out_its_modeled_transmission(cluster) -> None:
    for snr_db in (0.0, 10.0):
        routed = cluster.client.submit(MODEL, 3, deadline_s=5.0, seed=1, request_id=f"radio-{snr_db:g}", snr_db=snr_db)
        assert routed.bandwidth_share is not None and 0.0 < routed.bandwidth_share <= 0.5
        expected_s = DOWNLINK.tx_time_s(routed.bandwidth_share, snr_db)
        assert expected_s <= routed.downlink_s <= expected_s + SLEEP_SLACK_S
        assert routed.latency_s >= routed.downlink_s


def test_shares_of_one_slot_halve_what_is_free_and_never_exceed_the_band(cluster) -> None:
    with ThreadPoolExecutor(4) as pool:  # several requests land in the same 0.5 s slot
        list(pool.map(lambda i: cluster.client.submit(MODEL, i % 10, deadline_s=5.0, seed=i, snr_db=20.0), range(8)))
    by_slot: dict[int, list[float]] = defaultdict(list)
    for (action_json,) in _rows(cluster, "SELECT action_json FROM decisions WHERE kind = 'allocation' ORDER BY id"):
        action = json.loads(action_json)
        by_slot[action["slot"]].append(action["bandwidth_share"])
    assert sum(len(s) for s in by_slot.values()) >= 8
    assert any(len(shares) > 1 for shares in by_slot.values()), "no two requests shared a slot"
    for shares in by_slot.values():
        free = 1.0
        for share in shares:  # fixed policy: half of what is still free (above the 5 % floor here)
            assert share == pytest.approx(0.5 * free, rel=1e-9)
            free -= share
        assert sum(shares) <= 1.0 + 1e-12


def test_the_reward_counts_the_downlink(cluster) -> None:
    routed = cluster.client.submit(MODEL, 5, deadline_s=5.0, seed=2, request_id="radio-reward", snr_db=0.0)
    rows = _rows(cluster, "SELECT reward, detail_json FROM rewards")
    reward, detail = next((r, json.loads(d)) for r, d in rows if json.loads(d)["request_id"] == "radio-reward")
    assert detail["downlink_s"] == pytest.approx(routed.downlink_s)
    assert detail["bandwidth_share"] == pytest.approx(routed.bandwidth_share)
    assert detail["latency_s"] >= detail["downlink_s"] > 0
    assert reward == pytest.approx(detail["quality"] - 0.5 * detail["latency_s"], abs=1e-6)


def test_the_users_own_weights_rate_the_request(cluster) -> None:
    routed = cluster.client.submit(
        MODEL, 4, deadline_s=5.0, seed=3, request_id="radio-weights", snr_db=0.0, w_latency=2.0, w_energy=0.0
    )
    rows = _rows(cluster, "SELECT reward, detail_json FROM rewards")
    reward, detail = next((r, json.loads(d)) for r, d in rows if json.loads(d)["request_id"] == "radio-weights")
    assert detail["latency_s"] == pytest.approx(routed.latency_s) and detail["w_latency"] == 2.0
    assert reward == pytest.approx(detail["quality"] - 2.0 * detail["latency_s"], abs=1e-6)  # not the 0.5 default
    for field, bad in (("w_latency", -0.1), ("w_energy", float("nan")), ("w_latency", 1e9)):
        with pytest.raises(grpc.RpcError) as info:
            cluster.client.submit(MODEL, 1, deadline_s=5.0, snr_db=10.0, **{field: bad})
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in info.value.details()


def test_a_request_without_its_snr_is_refused_naming_the_field(cluster) -> None:
    with pytest.raises(grpc.RpcError) as info:
        cluster.client.submit(MODEL, 1, deadline_s=5.0)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "snr_db" in info.value.details()
    assert cluster.client.submit(MODEL, 1, deadline_s=5.0, snr_db=10.0).downlink_s > 0  # still serving


def test_a_transmission_past_the_deadline_fails_at_the_deadline(cluster) -> None:
    start_s = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:  # -40 dB: ~1e-4 bit/s/Hz, hours on air
        cluster.client.submit(MODEL, 1, deadline_s=0.6, snr_db=-40.0)
    elapsed_s = time.monotonic() - start_s
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "downlink" in info.value.details()
    assert elapsed_s >= 0.55  # it waited until the deadline, as a transmission on air would
    # its reward row scores the miss as the simulator does: zero quality after the deadline
    [(reward, detail)] = [
        (r, json.loads(d)) for r, d in _rows(cluster, "SELECT reward, detail_json FROM rewards")
        if json.loads(d).get("outcome") == "DEADLINE_EXCEEDED"
    ]  # fmt: skip
    assert detail["quality"] == 0.0 and 0.55 <= detail["latency_s"] < elapsed_s + 0.05
    assert reward == pytest.approx(-detail["w_latency"] * detail["latency_s"])
