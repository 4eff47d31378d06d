"""Fault corpus, result files: every command that reads results or baselines (``show``,
``report``, ``agreement``, ``baseline``, ``compare`` on either side, ``gate-selftest --from``)
given a corrupt file exits 2 (bad input, never a gate verdict code) with one line naming the
file and what is wrong, no traceback, and writes nothing.

Each case is a file as it could reach a user: truncated by a full disk, re-encoded by an
editor, hand-edited, written by another tool or a newer vitbench, or made hostile.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli
from vitbench.errors import ExitCode

DATA = Path(__file__).parent / "data"
#: A real ``vitbench.result/1`` run (committed golden) and the same run as ``/2``.
V1_TEXT = (DATA / "report_cpu_b1.json").read_text(encoding="utf-8")


def _v2_document() -> dict:
    from vitbench.records import RunResult

    return json.loads(RunResult.from_document(json.loads(V1_TEXT)).to_json())


V2 = _v2_document()
V2_TEXT = json.dumps(V2, indent=1)
V1 = json.loads(V1_TEXT)


def _edited(document: dict, edit: Callable[[dict], Any]) -> bytes:
    document = copy.deepcopy(document)
    edit(document)
    return json.dumps(document, indent=1).encode()


def _v2(edit: Callable[[dict], Any]) -> bytes:
    return _edited(V2, edit)


def _v1(edit: Callable[[dict], Any]) -> bytes:
    return _edited(V1, edit)


def _number_replaced(token: str) -> bytes:
    """The /2 file with the first row's params count replaced by ``token`` (raw JSON text)."""
    params = str(V2["results"][0]["counts"]["params"])
    assert V2_TEXT.count(params) >= 1
    return V2_TEXT.replace(f'"params": {params}', f'"params": {token}', 1).encode()


def _many_problems(document: dict) -> None:
    del document["results"][0]["name"]
    document["results"][1]["batch_size"] = "one"
    document["created_utc"] = 5


def _pop_key(key: str) -> Callable[[dict], Any]:
    return lambda d: d["results"][0].pop(key)


def _set(where: Callable[[dict], dict], key: str, value: Any) -> Callable[[dict], Any]:
    return lambda d: where(d).__setitem__(key, value)


def _row0(d: dict) -> dict:
    return d["results"][0]


BASELINE = {"schema": "vitbench.baseline/1", "runs": 1, "suite": {"name": "lightweight"},
            "models": {"MobileViTv1-XXS": {"model": "timm:mobilevit_xxs", "params": 1272024,
                                            "gflops": 0.407364096,
                                            "latency_ms": {"q0.2": [40.0], "q0.5": [41.0]}}}}


#: id → (the file's bytes, or None for a special path; what the error line must say)
RESULT_CASES: dict[str, tuple[Optional[bytes], Union[str, tuple[str, ...]]]] = {
    "empty": (b"", "empty"),
    "blank": (b" \n\t\n", "empty"),
    "latin-1": (V2_TEXT.replace('"note": ""', '"note": "caf\u00e9"', 1).encode("latin-1"),
                "not UTF-8 (byte 0xe9 at offset"),
    "utf-16": (V2_TEXT.encode("utf-16"), "not UTF-8 (byte 0xff at offset 0)"),
    "binary": (bytes(range(256)) * 4, "not UTF-8 (byte 0x80 at offset 128)"),
    "truncated": (V2_TEXT.encode()[:700], "not JSON"),
    "not-json": (b"results: yes\n", "not JSON (line 1"),
    # compare says "not a vitbench results or baseline file": it reads either
    "array": (b"[]", ("not a vitbench results", "(a JSON array, not an object)")),
    "number": (b"42", ("not a vitbench results", "(a JSON number, not an object)")),
    "no-schema": (b'{"results": []}', ("not a vitbench results", "file (no 'schema')")),
    "foreign-schema": (b'{"schema": "other.tool/1"}',
                       ("not a vitbench results", "file (schema 'other.tool/1')")),
    "schema-not-text": (b'{"schema": 2}', ("not a vitbench results", "file (schema 2)")),
    "newer-schema": (_v2(_set(lambda d: d, "schema", "vitbench.result/9")),
                     "schema vitbench.result/9 is newer than this vitbench (reads /1, /2)"),
    "nan": (_number_replaced("NaN"), "NaN is not a JSON number"),
    "infinity": (_number_replaced("-Infinity"), "-Infinity is not a JSON number"),
    "huge-float": (_number_replaced("1e999"), "number 1e999 is out of range"),
    "huge-int": (_number_replaced("9" * 5000), "is out of range"),
    "int-beyond-float": (_number_replaced("9" * 400), "is out of range"),
    "deep-nesting": (b'{"schema": "vitbench.result/2", "suite": ' + b"[" * 100_000
                     + b"]" * 100_000 + b"}", "nested too deeply"),
    "missing-field": (_v2(_pop_key("name")), "results[0]: name: Field required"),
    "wrong-type": (_v2(_set(lambda d: _row0(d)["counts"], "params", "many")),
                   "results[0] (MobileViTv1-XXS): counts.params: Input should be a valid integer"),
    "results-not-list": (_v2(_set(lambda d: d, "results", {"a": 1})),
                         "results: Input should be a valid list"),
    "row-not-object": (_v2(_set(lambda d: d, "results", ["MobileViTv1-XXS"])), "results[0]: "),
    "many-problems": (_v2(_many_problems), "(and 2 more problems)"),
    "suite-name-not-text": (_v2(_set(lambda d: d["suite"], "name", ["lightweight"])),
                            "suite.name: Input should be a valid string"),
    "suite-name-a-path": (_v2(_set(lambda d: d["suite"], "name", "../../outside")),
                          "suite.name: String should match pattern"),
    "suite-rows-not-list": (_v2(_set(lambda d: d["suite"], "as_run", {"models": 3})),
                            "suite.as_run.models: Input should be a valid list"),
    "v1-wrong-type": (_v1(_set(_row0, "params", "many")),
                      "results[0] (MobileViTv1-XXS): params: Input should be a valid integer"),
    "v1-environment-text": (_v1(_set(_row0, "environment", "cpu")),
                            "results[0] (MobileViTv1-XXS): environment: "),
    "v1-memory-parts-number": (_v1(_set(_row0, "environment", {"memory": 5})),
                               "results[0] (MobileViTv1-XXS): environment.memory: "),
    "v1-results-not-list": (_v1(_set(lambda d: d, "results", "none")),
                            "results: Input should be a valid list"),
    "baseline-file": (json.dumps(BASELINE).encode(), "a vitbench baseline file, not a results file"),
    "missing": (None, "no such file"),
    "folder-without-results": (None, "no results.json in this folder"),
    "results-json-is-a-folder": (None, "is a folder, not a results file"),
}

#: The commands that read results files; each is given the case's path where it reads it.
READERS = ("show", "report", "agreement", "baseline", "compare-baseline", "compare-candidate",
           "selftest-from")
#: Cases a reader does not apply to: a baseline file is what compare's BASELINE reads, and
#: --from finds its runs by name, so a missing or misplaced results.json is not one of them.
NOT_APPLICABLE = {("baseline-file", "compare-baseline"), ("baseline-file", "compare-candidate"),
                  *((case, "selftest-from") for case in ("missing", "folder-without-results",
                                                         "results-json-is-a-folder"))}


def _place(case: str, content: Optional[bytes], folder: Path) -> tuple[Path, Path]:
    """Put the case under ``folder``: (the path to give the command, the path it must name)."""
    folder.mkdir(parents=True, exist_ok=True)
    if case == "missing":
        path = folder / "results.json"
        return path, path
    if case == "folder-without-results":
        return folder, folder
    if case == "results-json-is-a-folder":
        (folder / "results.json").mkdir()
        return folder, folder / "results.json"
    path = folder / "results.json"
    path.write_bytes(content)
    return path, path


def _good(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(V2_TEXT, encoding="utf-8")
    return path


def _command(reader: str, case: str, content: Optional[bytes], tmp: Path) -> tuple[list[str], Path]:
    """The command line of ``reader`` with the case in place, and the path its line must name."""
    if reader == "selftest-from":
        ab = tmp / "ab"
        given, named = _place(case, content, ab / "stage1-round01-A")
        _good(ab / "stage1-round01-B")
        return ["gate-selftest", "--from", str(ab), "--out", str(tmp / "out"), "--trials", "10"], named
    given, named = _place(case, content, tmp / "case")
    if reader == "show":
        return ["show", str(given)], named
    if reader == "report":
        return ["report", str(given), "--format", "md,csv", "--out", str(tmp / "out")], named
    if reader == "agreement":
        return ["agreement", str(given), "--out", str(tmp / "out" / "agreement.md")], named
    if reader == "baseline":
        return ["baseline", str(given), "--out", str(tmp / "out" / "baseline.json")], named
    good = str(_good(tmp / "good"))
    if reader == "compare-baseline":
        return ["compare", str(given), good, "--out", str(tmp / "out")], named
    return ["compare", good, str(given), "--out", str(tmp / "out")], named


@pytest.mark.parametrize("case, reader", [
    pytest.param(case, reader, id=f"{case}-{reader}") for case in RESULT_CASES for reader in READERS
    if (case, reader) not in NOT_APPLICABLE])
def test_a_corrupt_results_file_is_one_line_naming_it_and_exit_2(case, reader, tmp_path):
    content, fragments = RESULT_CASES[case]
    args, named = _command(reader, case, content, tmp_path)
    outcome = vitbench_cli(*args, cwd=tmp_path)
    line = assert_clean_failure(outcome, ExitCode.BAD_INPUT, str(named),
                                *([fragments] if isinstance(fragments, str) else fragments))
    assert line.count("\n") == 0 and len(line) < 600, line
    assert not (tmp_path / "out").exists(), sorted((tmp_path / "out").rglob("*"))


#: id → (the baseline file's bytes, what the error line must say): what ``compare`` reads as
#: its BASELINE when the file claims to be one.
BASELINE_CASES: dict[str, tuple[bytes, str]] = {
    "entry-wrong-type": (json.dumps({**BASELINE, "models": {"m": {"params": "many"}}}).encode(),
                         "models.m.params: Input should be a valid integer"),
    "models-not-object": (json.dumps({**BASELINE, "models": [1, 2]}).encode(),
                          "models: Input should be a valid dictionary"),
    "bad-quantile-key": (json.dumps({**BASELINE, "models": {"m": {"latency_ms": {"qx": [1.0]}}}}
                                    ).encode(), "models.m.latency_ms: 'qx' is not q<quantile>"),
    "quantile-out-of-range": (json.dumps({**BASELINE, "models": {"m": {"latency_ms": {
        "q7": [1.0]}}}}).encode(), "models.m.latency_ms: 'q7' is not q<quantile>"),
    "runs-zero": (json.dumps({**BASELINE, "runs": 0}).encode(),
                  "runs: Input should be greater than or equal to 1"),
    "nan": (json.dumps({**BASELINE, "models": {"m": {"gflops": float("nan")}}}).encode(),
            "NaN is not a JSON number"),
    "newer-schema": (json.dumps({**BASELINE, "schema": "vitbench.baseline/3"}).encode(),
                     "schema vitbench.baseline/3 is newer than this vitbench (reads /1)"),
    "not-utf8": (json.dumps(BASELINE).encode().replace(b"lightweight", b"light\xffweight"),
                 "not UTF-8 (byte 0xff at offset"),
    "truncated": (json.dumps(BASELINE).encode()[:60], "not JSON"),
}


@pytest.mark.parametrize("case", BASELINE_CASES)
def test_a_corrupt_baseline_file_is_one_line_naming_it_and_exit_2(case, tmp_path):
    content, fragment = BASELINE_CASES[case]
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    good = _good(tmp_path / "good")
    outcome = vitbench_cli("compare", str(path), str(good), "--out", str(tmp_path / "out"),
                           cwd=tmp_path)
    assert_clean_failure(outcome, ExitCode.BAD_INPUT, str(path), fragment)
    assert not (tmp_path / "out").exists()


def test_a_results_file_with_a_byte_order_mark_is_read(tmp_path):
    """An editor's UTF-8 BOM is not corruption: the file reads as it would without it."""
    path = tmp_path / "results.json"
    path.write_bytes(b"\xef\xbb\xbf" + V2_TEXT.encode())
    outcome = vitbench_cli("show", str(path), cwd=tmp_path)
    assert outcome.code == 0, outcome.stderr
    assert "MobileViTv1-XXS" in outcome.stdout


def test_each_reader_still_reads_a_good_file(tmp_path):
    """The corpus's control: the good file every case corrupts is read by every reader."""
    good = _good(tmp_path / "good")
    assert vitbench_cli("show", str(good), cwd=tmp_path).code == 0
    assert vitbench_cli("agreement", str(good), cwd=tmp_path).code == 0
    assert vitbench_cli("baseline", str(good), "--out", str(tmp_path / "b.json"),
                        cwd=tmp_path).code == 0
    compared = vitbench_cli("compare", str(tmp_path / "b.json"), str(good), "--metrics",
                            "params,gflops", cwd=tmp_path)
    assert compared.code == 0, compared.stdout + compared.stderr
    shutil.rmtree(tmp_path / "good")


@pytest.mark.parametrize("content, fragment", [
    (b'{"ViT": [0.1, NaN]}', "NaN is not a JSON number"),
    (b'{"ViT": "0.1"}', "ViT: Input should be a valid list"),
    (b"\xff\xfe{}", "not UTF-8 (byte 0xff at offset 0)"),
])
def test_a_corrupt_paired_file_in_a_from_folder_is_one_line_naming_it(content, fragment, tmp_path):
    """``gate-selftest --from`` also reads the lockstep ratios an ``ab`` folder saved."""
    ab = tmp_path / "ab"
    _good(ab / "stage1-round01-A")
    _good(ab / "stage1-round01-B")
    (ab / "paired.json").write_bytes(content)
    outcome = vitbench_cli("gate-selftest", "--from", str(ab), "--out", str(tmp_path / "out"),
                           "--trials", "10", cwd=tmp_path)
    assert_clean_failure(outcome, ExitCode.BAD_INPUT, str(ab / "paired.json"), fragment)
    assert not (tmp_path / "out").exists()
