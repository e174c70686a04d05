"""The emulated radio downlink that carries each generated image to its user (modeled, never measured).

One cell of ``bandwidth_hz`` serves every user. Time is cut in the policies' slots; the band is
split per slot among the requests decided in that slot (the slot model of the T2DRL paper:
bandwidth shares of a slot sum to at most 1). Decisions come one request at a time, so a request
takes a *fraction* of the band still free in its slot: ``share = max(fraction, min_share) x free``.
What a request takes early is missing for the later ones of the slot: that is the trade-off the
allocation policy learns.

The image (``image_bytes``) goes out at the Shannon rate of its share:
``downlink_s = 8 image_bytes / (share x bandwidth_hz x log2(1 + snr))``, with the SNR the user
reports for that request (its mean SNR times a Rayleigh fading draw, see ``orchestrator.workload``).
The simulator adds ``downlink_s`` to a request's latency; the live daemon waits it out before it
answers (``SubmitResponse.downlink_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiles.scenario import Scenario

#: A share below this is no share: the request cannot get its image out (free band exhausted).
MIN_USABLE_SHARE = 1e-9
#: SNRs a request may report, dB (the workload clips its fading draws to them; the daemon refuses others).
SNR_MIN_DB, SNR_MAX_DB = -50.0, 80.0


@dataclass(frozen=True)
class Downlink:
    """The cell.

    Attributes:
        bandwidth_hz: the band every user shares, Hz.
        image_bytes: bytes sent per generated image.
        min_share: the least fraction of the free band a request takes, (0, 1].
    """

    bandwidth_hz: float
    image_bytes: int
    min_share: float = 0.05

    def __post_init__(self) -> None:
        if not self.bandwidth_hz > 0 or not math.isfinite(self.bandwidth_hz):
            raise ValueError(f"bandwidth_hz: {self.bandwidth_hz!r} must be a finite number > 0")
        if isinstance(self.image_bytes, bool) or not isinstance(self.image_bytes, int) or self.image_bytes < 1:
            raise ValueError(f"image_bytes: {self.image_bytes!r} must be an integer >= 1")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"min_share: {self.min_share!r} must be in (0, 1]")

    def tx_time_s(self, share: float, snr_db: float) -> float:
        """Seconds to send one image on ``share`` of the band at ``snr_db`` (inf when the share is empty)."""
        rate_bps = share * self.bandwidth_hz * spectral_efficiency(snr_db)
        if share < MIN_USABLE_SHARE or not rate_bps > 0:
            return math.inf
        return 8.0 * self.image_bytes / rate_bps


def spectral_efficiency(snr_db: float) -> float:
    """Shannon spectral efficiency ``log2(1 + snr)``, bit/s/Hz, of an SNR in dB."""
    return math.log1p(10.0 ** (snr_db / 10.0)) / math.log(2.0)  # log1p: exact for very low SNRs


class SlotBand:
    """The fraction of the cell's band still free in the current slot (a new slot frees all of it).

    Args:
        min_share: the least fraction of the free band one grant takes, (0, 1].
    """

    def __init__(self, min_share: float) -> None:
        if not 0 < min_share <= 1:
            raise ValueError(f"min_share: {min_share!r} must be in (0, 1]")
        self.min_share = min_share
        self.slot = -1
        self._free = 1.0

    def free(self, slot: int) -> float:
        """The free fraction of the band in ``slot`` (slots before the current one: nothing is free)."""
        if slot > self.slot:
            return 1.0
        return self._free if slot == self.slot else 0.0

    def grant(self, slot: int, fraction: float) -> float:
        """Take ``fraction`` (at least ``min_share``, at most 1) of what is free in ``slot``; the share of the band."""
        if not math.isfinite(fraction):
            raise ValueError(f"fraction: {fraction!r} must be a finite number")
        if slot > self.slot:
            self.slot, self._free = slot, 1.0
        elif slot < self.slot:
            return 0.0  # a slot that is over has no band left
        share = min(max(fraction, self.min_share), 1.0) * self._free
        self._free -= share
        return share


def downlink_of(scenario: Scenario) -> Downlink | None:
    """The downlink of a scenario's ``[radio]`` table (None without one)."""
    r = scenario.radio
    return None if r is None else Downlink(r.bandwidth_hz, r.image_bytes, r.min_share)
