"""Where a key of a TOML document is written: the line of `steps[2].expect` and the like, so
an error about a parsed value can name its line (tomllib keeps no positions)."""

import re

Path = tuple[str | int, ...]
"""Keys and array indices from the document root, e.g. ("steps", 2, "expect")."""

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _keys(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def key_lines(text: str) -> dict[Path, int]:
    """The 1-based line of every table header and `key =` line, by its path. Keys inside
    inline tables are found through the key that holds them."""
    lines: dict[Path, int] = {}
    arrays: dict[tuple[str, ...], int] = {}
    table: Path = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            names = _keys(header.group(2))
            table = _resolve(names, arrays)
            if header.group(1) == "[[":
                arrays[tuple(names)] = arrays.get(tuple(names), -1) + 1
                table = (*_resolve(names[:-1], arrays), names[-1], arrays[tuple(names)])
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_keys(key.group(1))), number)
    return lines


def _resolve(names: list[str], arrays: dict[tuple[str, ...], int]) -> Path:
    """A dotted table name as a path, each array-of-tables prefix at its latest element."""
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        index = arrays.get(tuple(names[: i + 1]))
        if index is not None:
            path.append(index)
    return tuple(path)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of `path`, or of its nearest ancestor written in the document."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
