"""The pools and traffic a core starts with unless told otherwise: something is always
happening, on whatever hardware the fleet turns out to have."""

from sim.catalog import B200, GB200, GROQ_LPU, H100, H200
from sim.pools import PoolSpec
from sim.traffic import TrafficProfile

POOLS = (
    PoolSpec("llama-70b-gb200", "llama-3-1-70b", GB200.name, 4, replicas=4, min_available=2),
    PoolSpec("llama-70b-h100", "llama-3-1-70b", H100.name, 8, replicas=2, min_available=1),
    PoolSpec("llama-70b-h200", "llama-3-1-70b", H200.name, 4, replicas=2, min_available=1),
    PoolSpec(
        "llama-8b-b200",
        "llama-3-1-8b",
        B200.name,
        1,
        replicas=8,
        min_available=2,
        policy="p2c",
        prompt_tokens=600.0,
        output_tokens=150.0,
    ),
    PoolSpec(
        "llama-8b-lpu",
        "llama-3-1-8b",
        GROQ_LPU.name,
        64,
        replicas=2,
        min_available=1,
        prompt_tokens=600.0,
        output_tokens=150.0,
    ),
    PoolSpec(
        "llama-405b-b200",
        "llama-3-1-405b",
        B200.name,
        8,
        replicas=1,
        min_available=1,
        policy="kv_aware",
        prompt_tokens=2000.0,
        output_tokens=400.0,
    ),
    PoolSpec(
        "llama-405b-gb200",
        "llama-3-1-405b",
        GB200.name,
        8,
        replicas=1,
        min_available=1,
        policy="kv_aware",
        prompt_tokens=2000.0,
        output_tokens=400.0,
    ),
)
"""A pool whose hardware the fleet lacks places nothing, and says so once."""

TRAFFIC = {
    "llama-3-1-70b": TrafficProfile(
        peak_rps=12.0,
        diurnal_amplitude=0.4,
        bursts_per_hour=1.0,
        burst_factor=2.0,
        burst_s=120.0,
        prompt_tokens_mean=1000.0,
        output_tokens_mean=250.0,
    ),
    "llama-3-1-8b": TrafficProfile(
        peak_rps=40.0,
        diurnal_amplitude=0.5,
        bursts_per_hour=2.0,
        burst_factor=3.0,
        burst_s=60.0,
        prompt_tokens_mean=600.0,
        output_tokens_mean=150.0,
    ),
    "llama-3-1-405b": TrafficProfile(
        peak_rps=1.5,
        diurnal_amplitude=0.3,
        prompt_tokens_mean=2000.0,
        output_tokens_mean=400.0,
    ),
}
"""Requests per model, with a daily curve and bursts."""
