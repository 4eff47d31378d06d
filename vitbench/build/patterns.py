"""``--model 'timm:vit_*'``: shell patterns that name many models at once.

A ``--model`` value with ``*``, ``?`` or ``[`` is a pattern over its zoo's names (a bare
pattern means timm, as a bare name does); it expands to every matching name, sorted. Plain
names pass through untouched (their existence is checked with the suite's rows, with close
names on a typo). A pattern that matches nothing is an :class:`UnknownModelError` (exit 2)
that suggests patterns which do match.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable

from vitbench.build.zoo import ZOO_TABLE, edit_distance
from vitbench.errors import UnknownModelError

WILDCARDS = "*?["


def is_pattern(model: str) -> bool:
    """True when the identifier (after any ``zoo:``) holds a shell wildcard."""
    return any(ch in model.split(":", 1)[-1] for ch in WILDCARDS)


def _split(model: str) -> tuple[str, str]:
    text = model.strip()
    if ":" in text and text.split(":", 1)[0] in ZOO_TABLE:
        zoo, ident = text.split(":", 1)
        return zoo, ident
    return "timm", text


def _zoo_names(zoo: str, pattern: str) -> tuple[str, ...]:
    listing = ZOO_TABLE[zoo].names
    if listing is None:
        raise UnknownModelError(f"--model {pattern}: {zoo} models cannot be listed, so they take "
                                f"no pattern; name each one")
    try:
        return listing()
    except ImportError as exc:
        raise UnknownModelError(f"--model {pattern}: {exc}") from None


def close_patterns(ident: str, names: Iterable[str], n: int = 4) -> list[str]:
    """Patterns that do match, for one that matched nothing: the text before its first
    wildcard compared with the same-length beginnings of real names (``vitt_*`` → ``vit_*``,
    ``vitamin*``...), closest first."""
    cut = min((ident.find(ch) for ch in WILDCARDS if ch in ident), default=len(ident))
    head = ident[:cut].lower()
    if not head:
        return []
    scored: dict[str, int] = {}
    for name in names:
        for size in (len(head) - 1, len(head), len(head) + 1):
            if size < 1 or size > len(name):
                continue
            stem = name[:size].lower()
            distance = edit_distance(head, stem, 2)
            if distance <= 2 and distance < scored.get(stem, 3):
                scored[stem] = distance
    ranked = sorted(scored, key=lambda stem: (scored[stem], abs(len(stem) - len(head)), stem))
    return [f"{stem}*" for stem in ranked[:n]]


def expand_patterns(models: Iterable[str]) -> list[str]:
    """Every ``--model`` value with its patterns expanded (each pattern's matches sorted,
    case-insensitive like ``vitbench models``), in the order given, first spelling kept.
    Expanded names come back zoo-qualified; plain names as typed."""
    expanded: list[str] = []
    seen: set[str] = set()
    for raw in models:
        if not is_pattern(raw):
            found = [raw]
        else:
            zoo, ident = _split(raw)
            names = _zoo_names(zoo, raw)
            found = [f"{zoo}:{name}" for name in sorted(names)
                     if fnmatch.fnmatchcase(name.lower(), ident.lower())]
            if not found:
                close = close_patterns(ident, names)
                hint = (f"; did you mean {', '.join(f'{zoo}:{c}' for c in close)}?" if close
                        else "")
                raise UnknownModelError(f"--model {raw}: no {zoo} model matches{hint} "
                                        f"(see `vitbench models PATTERN`)")
        for name in found:
            key = name if ":" in name else f"timm:{name}"
            if key not in seen:
                seen.add(key)
                expanded.append(name)
    return expanded
