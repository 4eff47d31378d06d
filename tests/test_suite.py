"""Suite files: valid ones load with every default resolved; broken ones fail with a line
that names the file, the entry and the field."""

import pytest

from vitbench.errors import SuiteError
from vitbench.config.spec import BUILTIN_DEFAULTS
from vitbench.config.suite import load_suite, parse_suite, resolve_job, select_entries

VALID = """
name: demo
defaults: {image_size: 224, batch_size: 2, threads: 1}
models:
  - name: A
    model: timm:resnet18
    reference: {params_m: 11.7, gflops: 1.80}
  - name: B
    model: timm:deit_tiny_patch16_224
    image_size: [192, 256]
    warmup: 0
  - name: C
    unavailable: no public code
"""


def test_valid_suite_resolves_defaults_in_order():
    suite = parse_suite(VALID, "demo.yaml")
    a, b, c = suite.models
    job_a = resolve_job(suite, a)
    assert job_a.image_size == (224, 224) and job_a.batch_size == 2 and job_a.threads == 1
    assert job_a.repeat == BUILTIN_DEFAULTS["repeat"]
    assert job_a.flops_convention == "matmul-only"
    job_b = resolve_job(suite, b, {"batch_size": 1})
    assert job_b.image_size == (192, 256) and job_b.warmup == 0
    assert job_b.batch_size == 1, "command-line overrides win over suite defaults"
    assert c.model is None and c.unavailable == "no public code"


def test_printed_precision_is_kept_from_the_yaml_text():
    suite = parse_suite(VALID, "demo.yaml")
    ref = suite.models[0].reference
    assert ref.values() == {"params_m": 11.7, "gflops": 1.8}
    assert ref.printed_decimals == {"params_m": 1, "gflops": 2}



@pytest.mark.parametrize("text, expected", [
    ("name: x\nmodels:\n  - {name: A, model: timm:resnet18, batchsize: 2}\n",
     "x.yaml: models[0] (A): batchsize: unknown key; did you mean 'batch_size'?"),
    ("name: x\nmodels:\n  - {name: A, model: timm:resnet18, batch_size: 0}\n",
     "x.yaml: models[0] (A): batch_size: Input should be greater than or equal to 1"),
    ("name: x\nmodels:\n  - {name: A, model: resnet18}\n",
     "x.yaml: models[0] (A): model: expected 'zoo:identifier'"),
    ("name: x\nmodels:\n  - {name: A, model: foo:bar}\n",
     "x.yaml: models[0] (A): model: unknown zoo 'foo'"),
    ("name: x\nmodels:\n  - {name: A, model: timm:a}\n  - {name: A, model: timm:b}\n",
     "x.yaml: models[1] (A): name: appears twice (also models[0])"),
    ("name: x\nmodels:\n  - {name: A, model: timm:a, image_size: [224]}\n",
     "x.yaml: models[0] (A): image_size: expected an integer or [height, width]"),
    ("name: x\nmodels:\n  - {name: A, model: timm:a, reference: {gflop: 1}}\n",
     "x.yaml: models[0] (A): reference.gflop: unknown key; did you mean 'gflops'?"),
    ("name: x\nmodels:\n  - {name: A}\n",
     "x.yaml: models[0] (A): model: required (or say why the row is `unavailable`)"),
    ("name: x\nmodels: []\n", "x.yaml: models: List should have at least 1 item"),
    ("name: x\nmodels:\n  - {name: A, model: timm:a, device: tpu}\n",
     "x.yaml: models[0] (A): device: Input should be 'cpu', 'cuda' or 'auto'"),
    ("name: x\nname: y\nmodels: []\n", "x.yaml: line 2: not valid YAML"),
    ("- just\n- a list\n", "x.yaml: expected a mapping"),
    ("name: x\nmodels:\n  - {name: A, model: timm:a}\n   bad: indent\n", "x.yaml: line"),
])
def test_broken_suites_name_file_entry_and_field(text, expected):
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "x.yaml")
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value), "one line, never a traceback"


def test_missing_file_is_a_suite_error(tmp_path):
    with pytest.raises(SuiteError, match="no such file"):
        load_suite(tmp_path / "nope.yaml")


def test_only_selects_rows_and_suggests_close_names():
    suite = parse_suite(VALID, "demo.yaml")
    assert [e.name for e in select_entries(suite, ["a", "B"])] == ["A", "B"]
    with pytest.raises(SuiteError, match="no row named 'D'"):
        select_entries(suite, ["D"])
