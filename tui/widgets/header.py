"""The overview header on every view: site, simulated clock and speed, broker and core status,
GPU counts, power, tokens/s, TTFT and ITL p99 against the SLOs, and goodput. Each line is laid
out for the terminal's width: the least needed parts go first, and no figure is ever cut."""

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from tui import format as fmt
from tui.picture import SitePicture

GOOD, WARN, BAD, DIM = "green", "yellow", "bold red", "dim"
SEP = ("  │  ", DIM)
NARROW_SEP = (" │ ", DIM)
NARROW_BELOW = 120
SLO_GOOD = 0.99
SLO_WARN = 0.90
FRESH_S = 2.0
"""Telemetry whose p99 age is at most this is fresh: the closed loop's goal at the default 1 s
interval (issue 16)."""
STALE_S = 3.0
"""Beyond this it is stale: the core counts a node lost after 3 silent intervals
(sim.liveness.STALE_INTERVALS), 3 s at the default interval."""
WIDE = 1000
"""The width the header is laid out for when it is not on a screen (tests, logs)."""

Piece = tuple[str, str]
Part = tuple[int, list[Piece]]
"""A part of a line: its priority (0: kept longest) and its pieces of (text, style); a line
is its parts in order, those of the highest priority numbers dropped first until it fits."""


def fit(parts: Sequence[Part], width: int) -> list[Piece]:
    """The parts that fit in `width` cells, one at a time dropped from the lowest priority
    (of those, the last first), order kept; a part is shown whole or not at all. Below
    NARROW_BELOW cells the separators are narrower."""
    if width < NARROW_BELOW:
        parts = [
            (p, [NARROW_SEP if piece == SEP else piece for piece in pieces]) for p, pieces in parts
        ]
    kept = set(range(len(parts)))
    for drop in sorted(kept, key=lambda i: (parts[i][0], i), reverse=True):
        if _width([parts[i] for i in kept]) <= width or parts[drop][0] == 0:
            break
        kept.discard(drop)
    return [piece for i in sorted(kept) for piece in parts[i][1]]


def _width(parts: Sequence[Part]) -> int:
    return sum(cell_len(text) for _, pieces in parts for text, _ in pieces)


def _status(picture: SitePicture, url: str) -> list[Part]:
    link = picture.link
    if link.up:
        broker = [(1, [SEP, ("broker ", DIM), ("●", GOOD)]), (5, [(" " + url, "")])]
    else:
        note = link.note or f"connecting to {url}"
        broker = [(1, [SEP, ("broker ", DIM), ("✗", BAD)]), (3, [(" " + note, BAD)])]
    state = picture.core_state()
    style = {"online": GOOD, "stalled": WARN, "offline": BAD}.get(state, DIM)
    mark = {"online": "● ", "stalled": "◌ ", "offline": "✗ "}.get(state, "? ")
    core: list[Part] = [(1, [SEP, ("core ", DIM), (mark, style), (state, style)])]
    if state == "stalled":
        core.append((3, [(" (no state lately)", WARN)]))
    return [*broker, *core]


def _slo_style(attained: float) -> str:
    return GOOD if attained >= SLO_GOOD else WARN if attained >= SLO_WARN else BAD


def first_line(picture: SitePicture, url: str, read_only: bool) -> list[Part]:
    """Site, clock, speed and tick; broker and core; replay or read-only."""
    summary = picture.summary
    parts: list[Part] = [(0, [(" aidc ", "bold reverse"), (f" {picture.site}", "bold")])]
    if picture.replay:
        parts.append((0, [SEP, (" REPLAY ", "bold reverse magenta")]))
        parts.append((4, [(f" {picture.replay}", "magenta")]))
    elif read_only:
        parts.append((0, [SEP, (" READ-ONLY ", "bold reverse yellow")]))
    if summary is not None:
        day, clock = fmt.sim_clock(summary.time).split(" ")
        parts += [
            (2, [SEP]),
            (4, [(f"{day} ", "bold")]),
            (2, [(clock, "bold"), (" UTC ", DIM), (f"x{summary.speed:g}", "bold cyan")]),
            (6, [(f"  tick {summary.tick:,}", DIM)]),
        ]
    return parts + _status(picture, url) + _freshness(picture)


def _freshness(picture: SitePicture) -> list[Part]:
    """How old the telemetry behind the figures is, and what the core shed: green while
    fresh, kept on a narrow screen once it is not."""
    summary = picture.summary
    if summary is None or not summary.telemetry_age_p99_s:
        return []
    age = summary.telemetry_age_p99_s
    style = GOOD if age <= FRESH_S else WARN if age <= STALE_S else BAD
    parts: list[Part] = [
        (1 if style != GOOD else 5, [SEP, ("data ", DIM), (fmt.seconds(age), style)]),
        (6, [(" old (p99)", DIM)]),
    ]
    if summary.telemetry_dropped:
        parts.append((1, [(f"  shed {summary.telemetry_dropped:,}", BAD)]))
    return parts


def second_line(picture: SitePicture, url: str) -> list[Part]:
    """GPUs by state, LPUs, power, tokens/s, p99 latencies and goodput; or what to wait for."""
    summary = picture.summary
    if summary is None:
        parts: list[Part] = [(0, [(" waiting for the core's first state… ", DIM)])]
        if picture.core_state() in ("unknown", "offline") and picture.link.up:
            hint = f"none running? start one: aidc core --broker {url} --site {picture.site}"
            parts.append((1, [(hint, WARN)]))
        return parts
    done = summary.completed_per_s
    attained = summary.goodput_rps / done if done else 1.0
    slo = _slo_style(attained)
    lost = BAD if summary.gpus_lost else DIM
    cordoned = WARN if summary.gpus_cordoned else DIM
    parts = [
        (0, [(" GPUs ", DIM), (f"{summary.gpus_healthy:,}", GOOD), (f"/{summary.gpus:,}", "bold")]),
        (3, [("  cordoned ", DIM), (f"{summary.gpus_cordoned:,}", cordoned)]),
        (0, [("  lost ", DIM), (f"{summary.gpus_lost:,}", lost)]),
    ]
    if summary.lpus:
        parts.append((4, [("  LPUs ", DIM), (f"{summary.lpus_healthy:,}/{summary.lpus:,}", "")]))
    parts += [
        (0, [SEP, (fmt.watts(summary.power_w), "bold")]),
        (0, [SEP, (f"{fmt.count(summary.tokens_per_s)} tok/s", "bold")]),
        (1, [SEP, ("TTFT p99 ", DIM), (fmt.seconds(summary.ttft_p99_s), slo)]),
        (2, [("  ITL p99 ", DIM), (fmt.seconds(summary.itl_p99_s), slo)]),
        (1, [SEP, ("SLO ", DIM), (fmt.percent(min(attained, 1.0)), slo)]),
        (2, [("  goodput ", DIM), (f"{fmt.count(summary.goodput_rps)}/{fmt.count(done)}", "")]),
        (5, [(" req/s", DIM)]),
    ]
    return parts


def overview(picture: SitePicture, url: str, read_only: bool, width: int = WIDE) -> Text:
    """The header's two lines, each fitted to `width` cells."""
    first = fit(first_line(picture, url, read_only), width)
    second = fit(second_line(picture, url), width)
    return Text.assemble(*first, "\n", *second, no_wrap=True, overflow="crop")


class OverviewHeader(Static):
    """The fleet in two lines, always at the top."""

    text = Text()
    """What it shows now."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[SitePicture, str, bool] | None = None

    def show(self, picture: SitePicture, url: str, read_only: bool) -> None:
        """Repaint from the picture."""
        self._shown = (picture, url, read_only)
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        if self._shown is not None:
            self.text = overview(*self._shown, width=self.size.width or WIDE)
            self.update(self.text)
