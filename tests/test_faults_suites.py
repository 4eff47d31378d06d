"""Fault corpus, suites: hostile and malformed suite files given to a real ``vitbench``.

Every malformed suite is refused by ``vitbench validate`` and by ``vitbench run
--static-only`` alike: exit 2, one error line naming the file (and the entry and field
where there is one), no traceback, and no output folder written. Odd but valid files (a
byte-order mark, UTF-16, merge keys, CRLF) are accepted. See issue 13, Deliver 7 and 8.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Callable, Union

import pytest

from tests.helpers_faults import assert_clean_failure, vitbench_cli

SUITE = "suites/x.yaml"
VALID = "name: x\nmodels:\n  - name: Café-Ti\n    unavailable: no public code\n"


def entry(*lines: str) -> str:
    """A suite whose second row (models[1], named B) carries ``lines`` (and, unless they
    name one, a model)."""
    if not any(line.startswith("model:") for line in lines):
        lines = ("model: timm:resnet18", *lines)
    body = "".join(f"    {line}\n" for line in lines)
    return f"name: x\nmodels:\n  - name: A\n    model: timm:resnet18\n  - name: B\n{body}"


def nested(depth: int) -> str:
    return "name: x\nmodels:\n  - name: A\n    unavailable: none\n    kwargs: {k: " \
           + "[" * depth + "]" * depth + "}\n"


def anchored_kwargs(*lines: str) -> str:
    """A suite whose one row's kwargs hold ``lines`` (where anchors can be defined)."""
    body = "".join(f"      {line}\n" for line in lines)
    return f"name: x\nmodels:\n  - name: A\n    unavailable: none\n    kwargs:\n{body}"


#: nine levels of nine aliases: 9**9 strings once expanded, from 0.7 KB of YAML
BILLION_LAUGHS = anchored_kwargs(
    "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    *(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)))

#: aliases of one long string: few nodes, but 54 MB once written out
WIDE_STRING = anchored_kwargs(
    "s: &s " + "x" * 60_000, "l1: &l1 [" + ", ".join(["*s"] * 30) + "]",
    "l2: [" + ", ".join(["*l1"] * 30) + "]")


Content = Union[bytes, str, Callable[[Path], None]]


def directory(path: Path) -> None:
    path.mkdir()


def fifo(path: Path) -> None:
    os.mkfifo(path)


def symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


def huge(path: Path) -> None:
    path.write_text(VALID + ("# padding\n" * 120_000))


# (id, file content or a function making the path, fragments the error line must hold)
MALFORMED: list[tuple[str, Content, tuple[str, ...]]] = [
    # bytes and encodings
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ("not UTF-8", "0x89", "offset 0")),
    ("latin-1", VALID.replace("Café", "Caf\xe9").encode("latin-1"),
     ("not UTF-8", "0xe9", "offset 29", "line 3")),
    ("truncated-utf8", VALID.encode() + b"# \xe2\x82", ("not UTF-8", "0xe2")),
    ("utf16-no-bom", VALID.encode("utf-16-le"), ("NUL", "line 1")),
    ("utf16-bad-surrogate", codecs.BOM_UTF16_LE + VALID.encode("utf-16-le") + b"\x00\xd8a\x00",
     ("not UTF-16",)),
    ("nul-byte", b"name: x\x00\nmodels: []\n", ("NUL", "line 1")),
    ("escape-byte", entry("note: \x1b[31mred").encode(), ("line 7", "U+001B")),
    # not a suite at all
    ("empty", b"", ("empty",)),
    ("only-comments", b"# a suite\n# to be written\n", ("empty",)),
    ("only-blank", b"\n\n   \n", ("empty",)),
    ("top-level-list", b"- name: A\n  model: timm:resnet18\n", ("mapping", "a list")),
    ("top-level-scalar", b"just some text\n", ("mapping", "a string")),
    ("two-documents", VALID + "---\n" + VALID, ("line 5", "single document")),
    # structure
    ("missing-models", b"name: x\n", ("models", "required")),
    ("models-not-a-list", b"name: x\nmodels: resnet18\n", ("models", "list")),
    ("models-a-number", b"name: x\nmodels: 5\n", ("models", "list")),
    ("models-empty", b"name: x\nmodels: []\n", ("models", "at least 1")),
    ("entry-not-a-mapping", b"name: x\nmodels:\n  - timm:resnet18\n", ("models[0]", "mapping", "a string")),
    ("entry-null", b"name: x\nmodels:\n  -\n", ("models[0]", "mapping", "null")),
    ("unknown-entry-key", entry("batchsize: 2"), ("models[1] (B)", "batchsize", "'batch_size'")),
    ("typo-top-level-key", "name: x\nmodles:\n  - {name: A, model: timm:resnet18}\n",
     ("suites/x.yaml: modles: unknown key", "'models'")),
    ("unknown-reference-key", entry("reference: {gflop: 1.2}"), ("models[1] (B)", "gflop", "'gflops'")),
    ("unhashable-key", b"name: x\n[a, b]: 1\nmodels: []\n", ("line 2", "key")),
    ("printed-decimals-wrong", entry("reference: {gflops: 1.2, printed_decimals: 5}"),
     ("models[1] (B)", "printed_decimals")),
    # wrong types and values
    ("batch-not-int", entry("batch_size: two"), ("models[1] (B)", "batch_size")),
    ("threads-not-int", entry("threads: many"), ("models[1] (B)", "threads")),
    ("name-a-list", "name: x\nmodels:\n  - {name: [1, 2], model: timm:resnet18}\n",
     ("models[0]", "name")),
    ("reference-a-number", entry("reference: 5"), ("models[1] (B): reference", "a number")),
    ("negative-batch", entry("batch_size: -4"), ("models[1] (B)", "batch_size")),
    ("zero-image-size", entry("image_size: 0"), ("models[1] (B)", "image_size", "positive")),
    ("negative-timeout", entry("timeout_s: -1"), ("models[1] (B)", "timeout_s")),
    ("bad-device", entry("device: tpu"), ("models[1] (B)", "device")),
    ("bad-model-name", entry("model: resnet18"), ("models[1] (B)", "model", "zoo:identifier")),
    ("bad-suite-name", VALID.replace("name: x", "name: ../../etc"), ("name",)),
    # numbers that are not finite
    ("timeout-inf", entry("timeout_s: .inf"), ("models[1] (B): timeout_s", "finite", ".inf")),
    ("min-time-nan", entry("min_time_s: .nan"), ("models[1] (B): min_time_s", "finite", ".nan")),
    ("warmup-s-inf", entry("warmup_s: .Inf"), ("models[1] (B): warmup_s", "finite")),
    ("max-time-inf", entry("max_time_s: .INF"), ("models[1] (B): max_time_s", "finite")),
    ("tolerance-minus-inf", entry("tolerance_pct: -.inf"),
     ("models[1] (B): tolerance_pct", "finite", "-.inf")),
    ("target-ci-nan", entry("target_ci_pct: .NaN"), ("models[1] (B): target_ci_pct", "finite")),
    ("reference-nan", entry("reference: {gflops: .nan}"),
     ("models[1] (B): reference.gflops", "finite")),
    ("reference-overflow", entry("reference: {params_m: 1.0e+400}"),
     ("models[1] (B): reference.params_m", "finite")),
    ("warmup-int-inf", entry("warmup: .inf"), ("models[1] (B): warmup", "finite")),
    ("image-size-inf", entry("image_size: .inf"), ("models[1] (B): image_size",)),
    ("defaults-timeout-inf", "name: x\ndefaults: {timeout_s: .inf}\nmodels:\n"
     "  - {name: A, model: timm:resnet18}\n", ("defaults.timeout_s", "finite")),
    # expansion, nesting and size
    ("billion-laughs", BILLION_LAUGHS, ("alias",)),
    ("alias-of-long-string", WIDE_STRING, ("alias",)),
    ("recursive-alias", anchored_kwargs("loop: &l [*l]"),
     ("alias", "itself")),
    ("deep-nesting-10000", nested(10_000), ("nested", "line 5")),
    ("deep-nesting-block", "name: x\nmodels:\n  - name: A\n    unavailable: none\n    kwargs:\n"
     + "".join("  " * (i + 3) + f"k{i}:\n" for i in range(300)) + "  " * 303 + "v: 1\n",
     ("nested",)),
    ("long-row-name", "name: x\nmodels:\n  - {name: " + "N" * 200_000 + ", unavailable: none}\n",
     ("models[0]", "name", "at most")),
    ("long-suite-name", "name: " + "s" * 5000 + "\nmodels:\n  - {name: A, unavailable: none}\n",
     ("name", "at most")),
    ("long-model-name", entry("model: timm:" + "m" * 100_000), ("models[1] (B)", "model")),
    ("row-name-with-newline", 'name: x\nmodels:\n  - {name: "A\\nB", unavailable: none}\n',
     ("models[0]", "name", "control")),
    ("huge-file", huge, ("MiB",)),
    # YAML syntax
    ("duplicate-row-names", "name: x\nmodels:\n  - {name: A, model: timm:a}\n"
     "  - {name: A, model: timm:b}\n", ("models[1] (A): name", "twice")),
    ("duplicate-keys", entry("batch_size: 1", "batch_size: 2"), ("line 8", "duplicate key 'batch_size'")),
    ("tab-indent", "name: x\nmodels:\n\t- name: A\n", ("line 3", "tab")),
    ("unclosed-quote", 'name: x\nmodels:\n  - {name: "A, model: timm:resnet18}\n', ("not valid YAML",)),
    ("unclosed-bracket", "name: x\nmodels: [\n", ("not valid YAML",)),
    ("undefined-alias", "name: x\nmodels: *nothing\n", ("line 2", "undefined alias")),
    ("python-object-tag", "name: x\nmodels:\n  - !!python/object/apply:os.system [echo pwned]\n",
     ("line 3", "python/object")),
    ("python-name-tag", entry("kwargs: {f: !!python/name:os.system ''}"), ("line 7", "python/name")),
    ("unknown-tag", entry("note: !custom thing"), ("line 7", "!custom")),
    # paths
    ("directory", directory, ("directory",)),
    ("fifo", fifo, ("not a regular file",)),
    ("symlink-loop", symlink_loop, ("cannot read",)),
]

#: odd but valid: these load
ACCEPTED: list[tuple[str, bytes]] = [
    ("utf8-bom", codecs.BOM_UTF8 + VALID.encode()),
    ("utf16-le-bom", codecs.BOM_UTF16_LE + VALID.encode("utf-16-le")),
    ("utf16-be-bom", codecs.BOM_UTF16_BE + VALID.encode("utf-16-be")),
    ("utf32-le-bom", codecs.BOM_UTF32_LE + VALID.encode("utf-32-le")),
    ("crlf", VALID.replace("\n", "\r\n").encode()),
    ("merge-key", ("name: x\nmodels:\n  - &base {name: A, unavailable: no code, image_size: 256}\n"
                   "  - {<<: *base, name: B, image_size: 320}\n").encode()),
    ("anchored-note", ("name: x\nmodels:\n  - {name: A, unavailable: &why no public code}\n"
                       "  - {name: B, unavailable: *why}\n").encode()),
    ("non-ascii", "name: x\nmodels:\n  - {name: 中文-Tiny, unavailable: なし}\n".encode()),
]


def make_suite(root: Path, content: Content) -> Path:
    path = root / SUITE
    path.parent.mkdir(parents=True, exist_ok=True)
    if callable(content):
        content(path)
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def malformed_params():
    return [pytest.param(content, fragments, id=name) for name, content, fragments in MALFORMED]


@pytest.mark.parametrize("content, fragments", malformed_params())
def test_validate_refuses_malformed_suite(tmp_path, content, fragments):
    make_suite(tmp_path, content)
    outcome = vitbench_cli("validate", SUITE, cwd=tmp_path, timeout=60)
    line = assert_clean_failure(outcome, 2, SUITE, *fragments)
    assert len(line) < 400, "the message quotes no huge value"


@pytest.mark.parametrize("content, fragments", malformed_params())
def test_run_refuses_malformed_suite_before_writing(tmp_path, content, fragments):
    make_suite(tmp_path, content)
    outcome = vitbench_cli("run", SUITE, "--static-only", "--out", "out", cwd=tmp_path, timeout=60)
    assert_clean_failure(outcome, 2, SUITE, *fragments)
    assert not (tmp_path / "out").exists(), "nothing is written for a suite that is refused"


@pytest.mark.parametrize("content", [pytest.param(c, id=name) for name, c in ACCEPTED])
def test_validate_accepts_odd_but_valid_suite(tmp_path, content):
    make_suite(tmp_path, content)
    outcome = vitbench_cli("validate", SUITE, cwd=tmp_path, timeout=60)
    assert outcome.code == 0, outcome.stderr
    assert f"ok {SUITE}: " in outcome.stdout and "Traceback" not in outcome.stderr


def test_utf16_suite_runs_with_its_names_decoded(tmp_path):
    make_suite(tmp_path, codecs.BOM_UTF16_BE + VALID.encode("utf-16-be"))
    outcome = vitbench_cli("run", SUITE, "--static-only", "--out", "out", cwd=tmp_path, timeout=120)
    assert outcome.code == 0, outcome.stderr
    assert '"Café-Ti"' in (tmp_path / "out" / "results.json").read_text(encoding="utf-8")


def test_seed_suites_stay_within_the_limits():
    """The bounds on size, nesting and alias expansion are far from any real suite."""
    from vitbench.config.suite import load_suite

    for path in sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.yaml")):
        assert load_suite(path).models
