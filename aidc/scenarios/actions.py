"""What a scenario step does to a running data center: send an operator command (it passes
if the core accepts it, or refuses it as expected), or change a model's traffic."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aidc.scenarios.conditions import Observation
from aidc.site.datacenter import DataCenter


@dataclass(frozen=True)
class SendCommand:
    """An operator command; it passes if the core accepts it, or refuses it with `error`."""

    op: str
    fields: Mapping[str, Any]
    error: str | None = None
    text: str = ""

    async def observe(self, dc: DataCenter) -> Observation:
        reply = await dc.command(self.op, **self.fields)
        if self.error is None:
            return Observation(reply.ok, "ok" if reply.ok else f"refused: {reply.error}")
        met = not reply.ok and self.error in (reply.error or "")
        return Observation(met, f"refused: {reply.error}" if not reply.ok else "accepted")

    def __str__(self) -> str:
        refused = f", refused with {self.error!r}" if self.error is not None else ""
        return (self.text or f"command {self.op}") + refused


@dataclass(frozen=True)
class ChangeTraffic:
    """A model's traffic changes: its daily peak, or a burst starting now."""

    model: str
    peak_rps: float | None = None
    burst_factor: float | None = None
    burst_s: float = 60.0

    async def observe(self, dc: DataCenter) -> Observation:
        dc.change_traffic(
            self.model, peak_rps=self.peak_rps, burst_factor=self.burst_factor, burst_s=self.burst_s
        )
        return Observation(True, "changed")

    def __str__(self) -> str:
        parts = [f"peak {self.peak_rps:g} req/s"] if self.peak_rps is not None else []
        if self.burst_factor is not None:
            parts.append(f"a {self.burst_factor:g}x burst for {self.burst_s:g} s")
        return f"traffic of {self.model}: " + " and ".join(parts)


Action = SendCommand | ChangeTraffic
