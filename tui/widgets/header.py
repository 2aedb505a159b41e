"""The overview header on every view: site, simulated clock and speed, broker and core status,
GPU counts, power, tokens/s, TTFT and ITL p99 against the SLOs, and goodput."""

from rich.text import Text
from textual.widgets import Static

from tui import format as fmt
from tui.fleet import Fleet

GOOD, WARN, BAD, DIM = "green", "yellow", "bold red", "dim"
SEP = ("  │  ", DIM)
SLO_GOOD = 0.99
SLO_WARN = 0.90


def _status(fleet: Fleet, url: str) -> list[tuple[str, str]]:
    link = fleet.link
    if link.up:
        broker = [("broker ", DIM), ("● ", GOOD), (url, "")]
    else:
        broker = [("broker ", DIM), ("✗ ", BAD), (link.note or f"connecting to {url}", BAD)]
    state = fleet.core_state()
    style = {"online": GOOD, "stalled": WARN, "offline": BAD}.get(state, DIM)
    mark = {"online": "● ", "stalled": "◌ ", "offline": "✗ "}.get(state, "? ")
    core = [("core ", DIM), (mark, style), (state, style)]
    if state == "stalled":
        core.append((" (no state lately)", WARN))
    return [*broker, SEP, *core]


def _slo_style(attained: float) -> str:
    return GOOD if attained >= SLO_GOOD else WARN if attained >= SLO_WARN else BAD


def overview(fleet: Fleet, url: str, read_only: bool) -> Text:
    """The header's two lines."""
    summary = fleet.summary
    first: list[tuple[str, str]] = [(" aidc ", "bold reverse"), (f" {fleet.site}", "bold")]
    if summary is not None:
        first += [
            SEP,
            (fmt.sim_clock(summary.time), "bold"),
            (" UTC ", DIM),
            (f"x{summary.speed:g}", "bold cyan"),
            (f"  tick {summary.tick:,}", DIM),
        ]
    first += [SEP, *_status(fleet, url)]
    if fleet.replay:
        first += [SEP, (" REPLAY ", "bold reverse magenta"), (f" {fleet.replay}", "magenta")]
    elif read_only:
        first += [SEP, (" READ-ONLY ", "bold reverse yellow")]
    second: list[tuple[str, str]] = []
    if summary is None:
        second.append((" waiting for the core's first state…", DIM))
    else:
        done = summary.completed_per_s
        attained = summary.goodput_rps / done if done else 1.0
        slo = _slo_style(attained)
        lost = BAD if summary.gpus_lost else DIM
        cordoned = WARN if summary.gpus_cordoned else DIM
        second += [
            (" GPUs ", DIM),
            (f"{summary.gpus:,}", "bold"),
            ("  healthy ", DIM),
            (f"{summary.gpus_healthy:,}", GOOD),
            ("  cordoned ", DIM),
            (f"{summary.gpus_cordoned:,}", cordoned),
            ("  lost ", DIM),
            (f"{summary.gpus_lost:,}", lost),
        ]
        if summary.lpus:
            second += [("  LPUs ", DIM), (f"{summary.lpus_healthy:,}/{summary.lpus:,}", "")]
        second += [
            SEP,
            (fmt.watts(summary.power_w), "bold"),
            SEP,
            (f"{fmt.count(summary.tokens_per_s)} tok/s", "bold"),
            SEP,
            ("TTFT p99 ", DIM),
            (fmt.seconds(summary.ttft_p99_s), slo),
            ("  ITL p99 ", DIM),
            (fmt.seconds(summary.itl_p99_s), slo),
            SEP,
            ("goodput ", DIM),
            (f"{fmt.count(summary.goodput_rps)}/{fmt.count(done)} req/s ", ""),
            (f"SLO met {fmt.percent(min(attained, 1.0))}", slo),
        ]
    return Text.assemble(*first, "\n", *second, no_wrap=True, overflow="ellipsis")


class OverviewHeader(Static):
    """The fleet in two lines, always at the top."""

    text = Text()
    """What it shows now."""

    def show(self, fleet: Fleet, url: str, read_only: bool) -> None:
        """Repaint from the fleet."""
        self.text = overview(fleet, url, read_only)
        self.update(self.text)
