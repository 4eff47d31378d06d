"""Read a suite file defensively: a bounded read, a known encoding, YAML with limits.

A suite is user input, wrong by accident or hostile on purpose; each way it can be is one
:class:`~vitbench.errors.SuiteError` naming the file (and the line where there is one):

* size: a file above :data:`MAX_FILE_BYTES` is refused before it is read; only regular
  files are read (a pipe or ``/dev/zero`` would block or never end);
* encoding: UTF-8 with or without a byte-order mark, UTF-16/32 only when a BOM says so;
  otherwise the first undecodable byte (or NUL) and its offset are named;
* YAML: the safe loader (no ``!!python`` tags), duplicate keys refused, merge keys (``<<:``)
  kept, nesting bounded by :data:`MAX_DEPTH` (PyYAML composes recursively, so 10,000
  nested lists would otherwise exhaust Python's stack) and aliases bounded by what they
  expand to (:data:`MAX_VALUES`, :data:`MAX_EXPANDED_CHARS`), so 0.7 KB of anchors cannot
  become gigabytes of results (a "billion laughs").

The bounds are far above any real suite: the largest seed suite is 14 KB, 618 values and
6 levels deep.
"""

from __future__ import annotations

import codecs
import stat
from pathlib import Path
from typing import Any

import yaml

from vitbench.errors import SuiteError

#: the largest suite file read (the largest seed suite is 14 KB)
MAX_FILE_BYTES = 1 << 20
#: the deepest nesting of lists and mappings (seed suites: 6)
MAX_DEPTH = 32
#: the most values (scalars, lists, mappings) a suite may hold once aliases are expanded
MAX_VALUES = 100_000
#: the most characters of scalar text a suite may hold once aliases are expanded
MAX_EXPANDED_CHARS = 4 << 20

#: byte-order marks, longest first (a UTF-32-LE BOM starts with the UTF-16-LE one)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"))
_MERGE_TAG = "tag:yaml.org,2002:merge"


def clip(text: str, limit: int = 160) -> str:
    """``text`` on one line (control characters escaped), at most ``limit`` characters."""
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit + 1])
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def read_suite_text(path: Path) -> str:
    """The decoded text of the suite file at ``path``; a :class:`SuiteError` otherwise."""
    name = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SuiteError(name, "", "is a directory; give a suite file, e.g. suites/lightweight.yaml")
        if not stat.S_ISREG(info.st_mode):
            raise SuiteError(name, "", "not a regular file (a pipe, socket or device); "
                                       "give a suite file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SuiteError(name, "", "no such file") from None
    except OSError as exc:
        raise SuiteError(name, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        size = max(info.st_size, len(data)) / (1 << 20)
        raise SuiteError(name, "", f"{size:.1f} MiB, more than a suite may be "
                                   f"({MAX_FILE_BYTES >> 20} MiB); is this the right file?")
    return decode_suite_bytes(data, name)


def decode_suite_bytes(data: bytes, name: str) -> str:
    """UTF-8 (a BOM is dropped), or UTF-16/32 where a BOM says so; else name the bad byte."""
    bom, encoding, label = next((b for b in _BOMS if data.startswith(b[0])), (b"", "utf-8", "UTF-8"))
    try:
        text = data[len(bom):].decode(encoding)
    except UnicodeDecodeError as exc:
        offset = len(bom) + exc.start
        nul = data.find(b"\x00")
        if not bom and 0 <= nul < offset:
            raise _nul_error(data, nul, name) from None
        lines = data[:offset].count(b"\n") + 1
        line = f", line {lines}" if label == "UTF-8" else ""
        after_bom = f", though it starts with a {label} byte-order mark" if bom else ""
        raise SuiteError(name, "", f"not {label} text (byte 0x{data[offset]:02x} at offset "
                                   f"{offset}{line}{after_bom}); save it as UTF-8") from None
    if "\x00" in text:
        raise _nul_error(data, data.find(b"\x00"), name)
    return text


def _nul_error(data: bytes, offset: int, name: str) -> SuiteError:
    line = data[:offset].count(b"\n") + 1
    return SuiteError(name, "", f"a NUL byte at offset {offset} (line {line}): binary, or UTF-16 "
                                "without a byte-order mark? save it as UTF-8")


def load_yaml(text: str, name: str) -> Any:
    """The YAML document in ``text``: plain data (safe tags only), within the bounds above.

    ``None`` for an empty document; a :class:`SuiteError` naming the line otherwise.
    """
    loader = None
    try:
        loader = _SuiteLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, name)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SuiteError(name, f"line {line}", f"character U+{exc.character:04X} is not allowed "
                                               "in YAML; remove it or write it as an escape "
                                               "inside double quotes") from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, name) from None
    except yaml.YAMLError as exc:
        raise SuiteError(name, "", f"not valid YAML: {clip(str(exc))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, name: str) -> SuiteError:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}" if mark is not None else ""
    problem = exc.problem or exc.context or "?"
    if exc.context and problem.startswith("but "):
        problem = f"{exc.context}, {problem}"
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    elif "python/" in problem:
        problem += " (suites are plain data: tags that make Python objects are refused)"
    if isinstance(exc, _LimitError):
        return SuiteError(name, where, clip(problem, 300))
    return SuiteError(name, where, f"not valid YAML: {clip(problem, 300)}")


class _LimitError(yaml.composer.ComposerError):
    """Valid YAML beyond a bound of this module."""


class PrintedFloat(float):
    """A float that remembers how many decimals it was printed with (0.60 → 2)."""

    decimals: int

    def __new__(cls, text: str):
        value = super().__new__(cls, float(text.replace("_", "")))
        mantissa = text.lower().split("e")[0]
        value.decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return value


class _SuiteLoader(yaml.SafeLoader):
    """SafeLoader that keeps the printed precision of floats, refuses duplicate keys and
    bounds the nesting depth while composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep; "
                                              "a suite needs a handful", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    try:
        return PrintedFloat(str(text))
    except ValueError:  # .inf, .nan and friends
        return yaml.SafeLoader.construct_yaml_float(loader, node)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """A mapping whose own keys are unique; keys merged in by ``<<:`` may be overridden."""
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own
    mapping: dict[Any, Any] = {}
    seen: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key is a list or a mapping; keys are plain names",
                key_node.start_mark) from None
        if index >= merged:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {clip(repr(key), 80)}", key_node.start_mark)
            seen.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_SuiteLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_SuiteLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Refuse a document whose aliases expand beyond :data:`MAX_VALUES` values or
    :data:`MAX_EXPANDED_CHARS` characters, or refer to a value that holds them.

    Aliases share their node, so each node is measured once (memoised): linear in the
    file's size however large the expansion.
    """
    sizes: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        line = f"line {node.start_mark.line + 1}"
        if key in open_nodes:
            raise SuiteError(name, line, "an alias refers to a value that holds it (an anchor "
                                         "used inside itself); a suite cannot be infinite")
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = (1, len(node.value))
            return sizes[key]
        open_nodes.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [
            part for pair in node.value for part in pair]
        values, chars = 1, 0
        for child in children:
            child_values, child_chars = measure(child)
            values, chars = values + child_values, chars + child_chars
            if values > MAX_VALUES or chars > MAX_EXPANDED_CHARS:
                raise SuiteError(name, line, f"aliases expand this value beyond {MAX_VALUES:,} "
                                             f"values or {MAX_EXPANDED_CHARS >> 20} MiB of text "
                                             "(a 'billion laughs'?); write it out or use fewer aliases")
        open_nodes.discard(key)
        sizes[key] = (values, chars)
        return sizes[key]

    measure(root)
