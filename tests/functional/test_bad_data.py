"""Bad data files, case by case: one line on stderr naming the problem and where, a
documented exit status, no traceback, and the run recorded as failed with no model.

Each case runs the real ``mlops run`` in a subprocess on a small project of its own: a
customers table with a typed schema (``conf/data/mine.yaml``), its columns as features
and ``churn == "Yes"`` as the target. The case's file, one small file under
``tests/functional/bad_data/`` (made from ``good.csv`` by one change, see ``_make.py``),
is copied in as the project's ``data/customers.csv``. A few cases run twice: refused as
is, and accepted with the documented way out (a population that leaves unlabelled rows
out, ``infinite: missing``).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import CONF, read_json, run_dirs, run_mlops, without_local

BAD_DATA = Path(__file__).resolve().parent / "bad_data"

DATA = """\
# A customers table as an export gives it: one CSV file, typed columns.
sources:
  customers:
    type: csv
    path: data/customers.csv
    key: customer_id
    columns:
      customer_id: int
      tenure: int
      monthly_charges: {type: float, nullable: true}
      contract: category
      paperless: bool
      signed_up: datetime
"""

FEATURES = """\
entity: {key: customer_id, source: customers}
attributes:
  tenure: customers.tenure
  monthly_charges: customers.monthly_charges
  contract: customers.contract
  paperless: customers.paperless
derived:
  tenure_years: tenure / 12
target: {name: churned, expr: 'churn == "Yes"'}
"""

#: The demo's business numbers, without the gates a 120-row table cannot meet.
RUN = ("run", "data=mine", "features=mine", "quality=none", "report=false", "business.requirements.min_roc_auc=null",
       "business.requirements.min_net_value_per_month=null", "business.threshold_folds=null")


@dataclass(frozen=True)
class Case:
    """One bad file.

    Args:
        id: The test id.
        file: Its file under ``bad_data/``, copied to the project's ``data/customers.csv``.
        status: The exit status expected.
        line: A regular expression the one stderr line must match (``re.search``).
        overrides: More arguments after :data:`RUN`.
        before: What the engine did with it before it was caught (for the record).
    """

    id: str
    file: str
    status: int
    line: str
    overrides: tuple[str, ...] = ()
    before: str = ""


AT = r"^mlops: data error at data\.sources\.customers \(\S*/data/customers\.csv\): "
CASES = [
    Case("empty-file", "empty.csv", 2, AT + r"the file is empty \(0 bytes\); expected a header line and rows$",
         before="cannot read it: No columns to parse from file"),
    Case("header-only", "header_only.csv", 2,
         AT + r"the file has a header but no rows \(columns: customer_id, tenure, .*\); expected at least one row$"),
    Case("not-utf-8", "latin1.csv", 2,
         AT + r"byte 0xef at line 2 \(byte \d+\) is not valid utf-8; set data\.sources\.customers\.encoding to the "
         r"file's encoding \(latin-1, cp1252, \.\.\.\)$", before="the codec's message, without the line or the key"),
    Case("ragged-long-row", "ragged_long.csv", 2,
         AT + r"line 4 has 8 fields, the header has 7; expected one field per column"),
    Case("ragged-short-row", "ragged_short.csv", 2,
         AT + r"1 line does not have the header's 7 fields: line 5 has 5; expected one field per column$",
         before="the missing fields silently read as missing values"),
    Case("duplicated-column-names", "duplicated_columns.csv", 2,
         AT + r"column name 'tenure' appears more than once in the header; expected each name once",
         before="pandas renamed the second one tenure.1; reported as a config error"),
    Case("single-class-target", "single_class.csv", 2,
         r"^mlops: data error at features\.target: the target has one class only \(\{0: 120\}\)"),
    Case("missing-target-values", "missing_target.csv", 2,
         r"^mlops: data error at features\.target\.expr: the target 'churned' \('churn == \"Yes\"'\) reads 'churn', "
         r"missing on 3 of the 120 rows of the population \(customer_id 1005, 1018, 1061\); expected a label on every "
         r"row: leave them out with features\.population \(e\.g\. 'churn is not null'\)",
         before="trained as the negative class"),
    Case("wrong-dtype-in-a-declared-column", "wrong_dtype.csv", 2,
         r"^mlops: data error at data\.sources\.customers\.columns\.tenure \(\S*/data/customers\.csv\): expected int, "
         r"got 1 value that is not: 'twelve' \(line 7\)$", before="tenure read as text: one category per number"),
    Case("missing-value-in-a-required-column", "missing_required.csv", 2,
         r"^mlops: data error at data\.sources\.customers\.columns\.tenure \(\S*/data/customers\.csv\): declared int, "
         r"not nullable, got 1 missing value at line 4; expected a value on every row, or declare it "
         r"\{type: int, nullable: true\}$"),
    Case("infinite-values", "infinite.csv", 2,
         AT + r"infinite or out-of-float64-range values in 'monthly_charges' \(2, first at line 5\); expected finite "
         r"numbers, or set data\.sources\.customers\.infinite: missing to read them as missing values$",
         before="a traceback from the random forest, 'Input X contains NaN' from the logistic regression"),
    Case("duplicate-keys", "duplicate_keys.csv", 2,
         AT + r"'customer_id' must identify a row, got 1 duplicate row that repeats an earlier row's key: 1002 "
         r"\(line 6\)$"),
    Case("parquet-file-named-csv", "parquet_named_csv.csv", 2,
         AT + r"the file is a Parquet file, not CSV as type: csv says; expected type: parquet$",
         before="the codec's message about byte 0x80 (or nonsense columns in a one-byte encoding)"),
    Case("csv-file-declared-parquet", "good.csv", 2,
         AT + r"the file is not Parquet: it holds text, as a CSV file does; expected a Parquet file, or type: csv",
         overrides=("data.sources.customers.type=parquet",)),
]


def make_project(root: Path, file: str) -> Path:
    """A project whose data is ``bad_data/<file>``, its conf the repository's plus ``mine``."""
    shutil.copytree(CONF, root / "conf", ignore=without_local)
    (root / "conf" / "data" / "mine.yaml").write_text(DATA)
    (root / "conf" / "features" / "mine.yaml").write_text(FEATURES)
    (root / "data").mkdir()
    shutil.copyfile(BAD_DATA / file, root / "data" / "customers.csv")
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data_is_one_line_and_a_failed_run(case: Case, tmp_path: Path) -> None:
    project = make_project(tmp_path, case.file)

    done = run_mlops(project, *RUN, *case.overrides)

    lines = done.stderr.strip().splitlines()
    assert done.returncode == case.status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, lines
    assert re.search(case.line, lines[0]), lines[0]
    # Nothing lost, nothing half-written: the run is recorded as failed, with the same
    # message, and it left no model or predictions behind.
    (run_dir,) = run_dirs(project)
    record = read_json(run_dir / "run.json")
    assert record["status"] == "failed", record["status"]
    assert record["error"]["message"] == lines[0].removeprefix("mlops: ")
    assert not (run_dir / "model").exists() and not (run_dir / "predictions.parquet").exists()


def test_the_good_file_runs_and_records_its_declared_and_inferred_types(tmp_path: Path) -> None:
    project = make_project(tmp_path, "good.csv")

    done = run_mlops(project, *RUN)

    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(project)
    record = read_json(run_dir / "run.json")
    schema = record["data"]["customers"]["schema"]
    assert schema["tenure"] == {"type": "int", "nullable": False, "declared": True}
    assert schema["monthly_charges"] == {"type": "float", "nullable": True, "declared": True}
    assert schema["signed_up"] == {"type": "datetime", "nullable": False, "declared": True}
    assert schema["churn"] == {"type": "str", "nullable": True, "declared": False}  # not declared: inferred
    # The model's input schema is stored beside it, with the sha256 run.json records.
    model = record["model"]["input_schema"]
    path = run_dir / model["path"]
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == model["sha256"]
    inputs = json.loads(path.read_text())
    assert list(inputs["features"]) == ["tenure", "monthly_charges", "contract", "paperless", "tenure_years"]
    assert inputs["features"]["contract"] == {"type": "category", "from": ["customers.contract"]}
    assert inputs["features"]["paperless"]["type"] == "bool"
    assert inputs["sources"]["customers"]["tenure"] == schema["tenure"]
    assert "churn" not in inputs["sources"]["customers"]  # the label is not an input
    assert (inputs["key"], inputs["target"]) == ("customer_id", "churned")


@pytest.mark.parametrize("file, way_out", [
    ("missing_target.csv", "+features.population=churn is not null"),
    ("infinite.csv", "+data.sources.customers.infinite=missing"),
], ids=["population-leaves-unlabelled-rows-out", "infinite-read-as-missing"])
def test_the_documented_way_out_of_a_refusal_runs(tmp_path: Path, file: str, way_out: str) -> None:
    project = make_project(tmp_path, file)

    done = run_mlops(project, *RUN, way_out)

    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(project)
    rows = read_json(run_dir / "run.json")["stages"]["features"]["rows"]
    assert rows == (117 if file == "missing_target.csv" else 120)


def test_a_source_without_a_key_is_keyed_by_its_row_numbers(tmp_path: Path) -> None:
    project = make_project(tmp_path, "good.csv")

    done = run_mlops(project, *RUN, "data.sources.customers.key=null", "features.entity.key=row_number")

    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(project)
    assert read_json(run_dir / "run.json")["data"]["customers"]["key"] == "row_number"
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert predictions["row_number"].between(1, 120).all()
    # The row number is the row's place in the file: row 1 is customer 1001.
    source = pd.read_csv(project / "data" / "customers.csv")
    assert set(predictions["row_number"]) <= set(range(1, len(source) + 1))
