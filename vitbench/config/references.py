"""``--references PATH.csv``: printed params/GFLOPs for many rows from one results table.

The default columns are those of timm's published benchmark CSVs
(``results/benchmark-infer-*.csv`` in its repository): ``model`` (an architecture name,
optionally ``name.tag``), ``param_count`` (millions), ``infer_gmacs`` (10⁹ MACs per image,
vitbench's GFLOPs) and ``infer_img_size`` (the side the count was made at; one model may
appear at several sizes). Any other CSV works with a mapping of its column names
(``--references-columns model=name,params_m=params,gflops=gmacs,image_size=res``).

A row takes a CSV line of its model at its own input size; a model listed only at other
sizes is not compared (its row's note says so), and a model absent from the CSV keeps no
reference. Values a suite printed itself win over the CSV's. Pure data: no torch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from vitbench.config.spec import ZOOS, Suite, resolve_settings
from vitbench.errors import VitbenchError

#: What a reference CSV provides, and the column names tried when no mapping is given
#: (timm's benchmark CSVs first; ``img_size`` is its accuracy tables' size column).
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "model": ("model",), "params_m": ("param_count",), "gflops": ("infer_gmacs",),
    "image_size": ("infer_img_size", "img_size")}
VALUE_KEYS = ("params_m", "gflops")
COLUMNS_HELP = "model=COL,params_m=COL,gflops=COL,image_size=COL (any subset)"


def parse_columns(text: Optional[str]) -> dict[str, str]:
    """``model=name,gflops=gmacs`` → ``{"model": "name", "gflops": "gmacs"}``."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not column or key not in DEFAULT_COLUMNS:
            raise VitbenchError(f"--references-columns: {part.strip()!r}: expected KEY=COLUMN "
                                f"with KEY one of {', '.join(DEFAULT_COLUMNS)}")
        mapping[key] = column
    return mapping


def _model_key(name: str) -> str:
    """A CSV's model name as a qualified lower-case key; a bare name means timm."""
    text = name.strip().lower()
    return text if text.split(":", 1)[0] in ZOOS and ":" in text else f"timm:{text}"


def _decimals(text: str) -> int:
    mantissa = text.strip().lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _size(text: str) -> Optional[tuple[int, int]]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) > 2:
        raise ValueError(text)
    numbers = [int(float(p)) for p in parts]
    return (numbers[0], numbers[-1])


@dataclass(frozen=True)
class ReferenceLine:
    """One CSV line: a model's counts at one input size (None: the CSV gives no size)."""

    line: int
    model: str
    size: Optional[tuple[int, int]]
    values: dict[str, float]
    decimals: dict[str, int]


@dataclass
class ReferenceTable:
    """A reference CSV, indexed by model (``name.tag`` lines also under ``name``)."""

    path: Path
    columns: dict[str, str]
    exact: dict[str, list[ReferenceLine]] = field(default_factory=dict)
    base: dict[str, list[ReferenceLine]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, columns: Optional[dict[str, str]] = None) -> "ReferenceTable":
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.reader(handle))
        except FileNotFoundError:
            raise VitbenchError(f"--references {path}: no such file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise VitbenchError(f"--references {path}: cannot read it as CSV ({exc})") from None
        if not rows:
            raise VitbenchError(f"--references {path}: the file is empty; a header line "
                                f"naming the columns comes first")
        header = [h.strip() for h in rows[0]]
        resolved = cls._resolve(path, header, columns or {})
        table = cls(path, resolved)
        where = {key: header.index(col) for key, col in resolved.items()}
        for number, cells in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in cells):
                continue
            table._add(table._parse(number, cells, where))
        return table

    @staticmethod
    def _resolve(path: Path, header: list[str], given: dict[str, str]) -> dict[str, str]:
        resolved = {}
        for key, names in DEFAULT_COLUMNS.items():
            if key in given:
                if given[key] not in header:
                    raise VitbenchError(f"--references {path}: no column {given[key]!r} (for "
                                        f"{key}); its columns: {', '.join(header)}")
                resolved[key] = given[key]
                continue
            found = next((n for n in names if n in header), None)
            if found:
                resolved[key] = found
        if "model" not in resolved or not any(k in resolved for k in VALUE_KEYS):
            raise VitbenchError(
                f"--references {path}: needs a model column and a params or GFLOPs column "
                f"(timm's model, param_count, infer_gmacs); its columns: {', '.join(header)}; "
                f"map them with --references-columns {COLUMNS_HELP}")
        return resolved

    def _parse(self, number: int, cells: list[str], where: dict[str, int]) -> ReferenceLine:
        def cell(key: str) -> str:
            index = where.get(key)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        values, decimals = {}, {}
        for key in VALUE_KEYS:
            text = cell(key)
            if not text:
                continue
            try:
                values[key] = float(text)
            except ValueError:
                raise VitbenchError(f"{self.path}: line {number}: {self.columns[key]}: {text!r} "
                                    f"is not a number") from None
            if values[key] != values[key] or values[key] in (float("inf"), float("-inf")):
                raise VitbenchError(f"{self.path}: line {number}: {self.columns[key]}: {text!r} "
                                    f"is not a finite number")
            decimals[key] = _decimals(text)
        size = None
        if cell("image_size"):
            try:
                size = _size(cell("image_size"))
            except ValueError:
                raise VitbenchError(f"{self.path}: line {number}: {self.columns['image_size']}: "
                                    f"{cell('image_size')!r} is not N or HxW") from None
        if not cell("model"):
            raise VitbenchError(f"{self.path}: line {number}: {self.columns['model']}: empty")
        return ReferenceLine(number, cell("model"), size, values, decimals)

    def _add(self, line: ReferenceLine) -> None:
        key = _model_key(line.model)
        self.exact.setdefault(key, []).append(line)
        if "." in key.split(":", 1)[1]:
            self.base.setdefault(key.rsplit(".", 1)[0], []).append(line)

    def lookup(self, model: str, size: tuple[int, int]) -> tuple[Optional[ReferenceLine],
                                                                 list[tuple[int, int]]]:
        """The line for ``model`` at ``size`` (an exact name first, then ``name.tag`` lines),
        and, when there is none, the sizes the CSV has the model at."""
        key = model.strip().lower()
        bare = key.rsplit(".", 1)[0] if "." in key.split(":", 1)[-1] else key
        groups = [self.exact.get(key, []), self.exact.get(bare, []), self.base.get(bare, [])]
        for lines in groups:
            for line in lines:
                if line.size is None or line.size == tuple(size):
                    return line, []
        sizes = sorted({line.size for lines in groups for line in lines if line.size})
        return None, sizes


def _px(size: tuple[int, int]) -> str:
    return f"{size[0]}" if size[0] == size[1] else f"{size[0]}x{size[1]}"


@dataclass
class ReferencesApplied:
    """What ``--references`` did to a suite's rows, for the one-line summary."""

    path: Path
    filled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    other_size: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def some(names: list[str]) -> str:
            shown = ", ".join(names[:3])
            return f" ({shown}{f' and {len(names) - 3} more' if len(names) > 3 else ''})"

        parts = [f"{len(self.filled)} row{'' if len(self.filled) == 1 else 's'} filled"]
        if self.missing:
            parts.append(f"{len(self.missing)} not in it{some(self.missing)}")
        if self.other_size:
            parts.append(f"{len(self.other_size)} listed only at another input size, not "
                         f"compared{some(self.other_size)}")
        if self.kept:
            parts.append(f"{len(self.kept)} kept the suite's own printed values")
        return f"references {self.path}: " + ", ".join(parts)


def apply_references(suite: Suite, table: ReferenceTable,
                     overrides: Optional[dict[str, Any]] = None) -> tuple[Suite, ReferencesApplied]:
    """The suite with each row's missing printed params/GFLOPs taken from ``table`` at the
    row's input size (suite defaults, row and command-line ``overrides`` resolved)."""
    applied = ReferencesApplied(table.path)
    entries = []
    for entry in suite.models:
        ref = entry.reference
        wanted = [k for k in VALUE_KEYS if k in table.columns and getattr(ref, k) is None]
        if entry.model is None or entry.unavailable:
            entries.append(entry)
            continue
        if not wanted:
            applied.kept.append(entry.name)
            entries.append(entry)
            continue
        raw = resolve_settings(suite.defaults, entry, overrides)["image_size"]
        size = (raw, raw) if isinstance(raw, int) else tuple(raw)
        line, sizes = table.lookup(entry.model, size)
        if line is None and sizes:
            applied.other_size.append(entry.name)
            why = (f"{table.path.name} lists {entry.model} at {', '.join(map(_px, sizes))} px, "
                   f"not {_px(size)}: not compared with it")
            entries.append(entry.model_copy(update={
                "note": f"{entry.note}; {why}" if entry.note else why}))
            continue
        values = {k: line.values[k] for k in wanted if k in line.values} if line else {}
        if not values:
            applied.missing.append(entry.name)
            entries.append(entry)
            continue
        applied.filled.append(entry.name)
        decimals = {**{k: line.decimals[k] for k in values}, **ref.printed_decimals}
        entries.append(entry.model_copy(update={"reference": ref.model_copy(
            update={**values, "printed_decimals": decimals})}))
    source = suite.source or f"{table.path.name} (--references)"
    return suite.model_copy(update={"models": entries, "source": source}), applied
