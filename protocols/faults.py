"""Which devices each fault kind hits and which parameters it takes: one table for the core,
which refuses a fault its target cannot take, for the agents, which apply it, and for the
dashboard, which offers only what fits."""

from collections.abc import Mapping

FAULT_DEVICES: Mapping[str, tuple[str, ...]] = {
    "xid": ("gpu",),
    "cooling": ("gpu",),
    "link_flap": ("nic", "port"),
    "pause_storm": ("nic", "port"),
    "lpu_chip": ("lpu",),
    "power_loss": (),
}
"""The device kinds (Telemetry fields) each fault hits; () for the whole node."""
DEVICE_PARAMS: Mapping[str, str] = {"gpu": "gpu", "nic": "nic", "port": "port", "lpu": "chip"}
"""The parameter that picks one device of a kind within its node."""
DEVICE_NOUNS: Mapping[str, str] = {"gpu": "GPU", "nic": "NIC", "port": "port", "lpu": "LPU chip"}
FAULT_PARAMS: Mapping[str, tuple[str, ...]] = {
    "xid": ("code",),
    "cooling": ("severity",),
    "link_flap": ("down_s",),
    "pause_storm": (),
    "lpu_chip": (),
    "power_loss": ("duration_s",),
}
"""The parameters each fault takes besides the one that picks its device."""


def fault_problem(
    target: str, fault: str, params: Mapping[str, object], devices: Mapping[str, int]
) -> str | None:
    """Why a `fault` with `params` cannot apply to `target`, whose devices are counted by
    kind; None if it can."""
    hits = FAULT_DEVICES[fault]
    kinds = [kind for kind in hits if devices.get(kind, 0) > 0]
    if hits and not kinds:
        nouns = " or ".join(f"{DEVICE_NOUNS[kind]}s" for kind in hits)
        return f"{fault} faults hit {nouns}, and {target} has none"
    for name, value in params.items():
        picked = [kind for kind in kinds if DEVICE_PARAMS[kind] == name]
        if picked:
            count = devices[picked[0]]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
                noun = DEVICE_NOUNS[picked[0]]
                return f"{name} {value!r} is not one of {target}'s {noun}s 0..{count - 1}"
        elif name not in FAULT_PARAMS[fault]:
            takes = [*FAULT_PARAMS[fault], *(DEVICE_PARAMS[kind] for kind in kinds)]
            said = ", ".join(f"{p}=" for p in takes) or "no parameters"
            return f"{fault} on {target} takes {said}, not {name}="
    return None


DEVICE_FAULTS = tuple(sorted(kind for kind, hits in FAULT_DEVICES.items() if hits))
"""The faults that hit one device: those a fleet injects at random (`--fault-rate`)."""
