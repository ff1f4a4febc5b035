"""``mlops serve``: the real command on a loopback port, real HTTP requests, a trained project."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import registry_entry, run_mlops
from tests.functional.serving import Server, feature_rows, in_process_scores, records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(trained: Path) -> Any:
    with Server(trained, "churn@champion", "--max-rows", "50", "--max-body-bytes", "60000") as running:
        yield running


def test_predict_scores_records_columns_and_csv_like_the_model_in_process(server: Server, trained: Path) -> None:
    rows = feature_rows(trained, 5)
    expected = in_process_scores(trained, rows)
    key = "customer_id"
    as_records = httpx.post(f"{server.url}/predict", json=records(rows), timeout=30)
    as_columns = httpx.post(f"{server.url}/predict", json={"columns": {c: [r[c] for r in records(rows)] for c in rows.columns}},
                            timeout=30)
    as_csv = httpx.post(f"{server.url}/predict", content=rows.to_csv(index=False).encode(),
                        headers={"content-type": "text/csv"}, timeout=30)
    one = httpx.post(f"{server.url}/predict", json=records(rows)[0], timeout=30)
    for response in (as_records, as_columns, as_csv):
        assert response.status_code == 200, response.text
        body = response.json()
        assert [p["key"] for p in body["predictions"]] == rows[key].tolist()
        assert [p["score"] for p in body["predictions"]] == pytest.approx(expected, abs=1e-12)
        threshold = body["threshold"]
        assert [p["decision"] for p in body["predictions"]] == [int(s >= threshold) for s in expected]
        assert body["model"]["name"] == "churn" and body["model"]["version"] == 1
        assert len(body["model"]["sha256"]) == 64 and body["model"]["run_id"]
    assert one.status_code == 200 and len(one.json()["predictions"]) == 1
    assert one.json()["predictions"][0]["score"] == pytest.approx(expected[0], abs=1e-12)


def test_rows_outside_the_training_domain_are_scored_and_flagged(server: Server, trained: Path) -> None:
    rows = records(feature_rows(trained, 3))
    domain = httpx.get(f"{server.url}/model", timeout=30).json()["input_schema"]["columns"]
    rows[1]["plan"] = "daily"  # never seen in training
    rows[2]["tenure_days"] = domain["tenure_days"]["max"] + 1000
    rows[2]["n_orders"] = None  # n_orders was never missing in training
    response = httpx.post(f"{server.url}/predict", json=rows, timeout=30)
    assert response.status_code == 200, response.text
    first, second, third = response.json()["predictions"]
    assert first["in_domain"] is True and first["flags"] == []
    assert second["in_domain"] is False
    assert second["flags"] == [{"column": "plan", "flag": "unseen_category", "value": "daily"}]
    assert {(f["column"], f["flag"]) for f in third["flags"]} == {("tenure_days", "above_range"),
                                                                  ("n_orders", "missing")}
    assert all(isinstance(p["score"], float) for p in (first, second, third))
    # serve.quality: flag (conf/config.yaml): the training config's known_plan rule judges
    # the plan column, which the model takes as it is; the row is scored and the rule named
    assert first["rules"] == [] and third["rules"] == []
    assert second["rules"] == [{"column": "plan", "flag": "rule", "rule": "known_plan", "check": "in_set",
                                "severity": "error", "value": "daily",
                                "expected": "one of ['monthly', 'annual', 'family', 'weekly']"}]


def test_the_quality_rules_kept_with_the_model_are_listed_and_counted(server: Server, trained: Path) -> None:
    described = httpx.get(f"{server.url}/model", timeout=30).json()["quality"]
    assert described["mode"] == "flag"
    # of the demo's rules only known_plan reads a column the model takes as it is
    assert [(r["name"], r["columns"]) for r in described["rules"]] == [("known_plan", ["plan"])]
    counted = ("mlops_rule_violations_total", (("rule", "known_plan"), ("severity", "error")))
    before = _samples(httpx.get(f"{server.url}/metrics", timeout=30).text).get(counted, 0)
    row = {**records(feature_rows(trained, 1))[0], "plan": "daily"}
    assert httpx.post(f"{server.url}/predict", json=[row, row], timeout=30).status_code == 200
    assert _samples(httpx.get(f"{server.url}/metrics", timeout=30).text)[counted] == before + 2


@pytest.mark.parametrize(("mode", "status"), [("enforce", 422), ("off", 200)])
def test_quality_enforce_refuses_a_row_breaking_an_error_rule_and_off_checks_none(trained: Path, mode: str,
                                                                                  status: int) -> None:
    rows = records(feature_rows(trained, 3))
    rows[2]["plan"] = "daily"
    with Server(trained, "churn@champion", "--quality", mode, "--no-log") as running:
        response = httpx.post(f"{running.url}/predict", json=rows, timeout=30)
        good = httpx.post(f"{running.url}/predict", json=rows[:2], timeout=30)
    assert response.status_code == status, response.text
    assert good.status_code == 200 and [p.get("rules") for p in good.json()["predictions"]] == \
        ([[], []] if mode == "enforce" else [None, None])
    if mode == "enforce":
        assert response.json() == {
            "error": "request error at row 2 column 'plan': quality rule 'known_plan' (in_set) expects one of "
                     "['monthly', 'annual', 'family', 'weekly'], got 'daily'", "status": 422, "row": 2, "column": "plan"}
    else:
        assert all("rules" not in p for p in response.json()["predictions"])


@pytest.mark.parametrize(("make", "status", "column", "row", "words"), [
    (lambda r: [r[0], {k: v for k, v in r[1].items() if k != "tenure_days"}], 422, "tenure_days", 1, "missing"),
    (lambda r: [r[0], {**r[1], "tenure_days": "long"}], 422, "tenure_days", 1, "expected a number"),
    (lambda r: [{**r[0], "plan": 3}], 422, "plan", 0, "expected a string"),
    (lambda r: [{**r[0], "n_orders": [1, 2]}], 422, "n_orders", 0, "expected a number"),
    (lambda r: [{**r[0], "n_orders": True}], 422, "n_orders", 0, "expected a number"),
    (lambda r: r * 30, 422, None, None, "at most 50"),
    (lambda r: [], 422, None, None, "no rows"),
    (lambda r: [1, 2], 422, None, 0, "expected a row object"),
    (lambda r: "a string", 400, None, None, "expected a JSON object or list"),
], ids=["missing-column", "wrong-type", "number-for-category", "list-value", "bool-for-number", "too-many-rows",
        "no-rows", "not-objects", "scalar-body"])
def test_rows_that_do_not_fit_the_model_get_422_naming_row_and_column(
        server: Server, trained: Path, make: Any, status: int, column: str | None, row: int | None,
        words: str) -> None:
    body = make(records(feature_rows(trained, 2)))
    response = httpx.post(f"{server.url}/predict", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and words in error["error"]
    assert error["column"] == column and error["row"] == row


@pytest.mark.parametrize(("content", "content_type", "status", "words"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b'[{"n_orders": NaN}]', "application/json", 400, "NaN is not a JSON value"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "not valid JSON"),
    (b"[" * 100_00 + b"]" * 100_00, "application/json", 400, "not valid JSON"),
    (b"plan,plan\na,b\n", "text/csv", 400, "names a column twice"),
    (b"plan,segment\n\"a,b\n", "text/csv", 400, "CSV"),
    (b"a=1&b=2", "application/x-www-form-urlencoded", 400, "not valid JSON"),
    (b"<rows/>", "application/xml", 400, "expected a body of Content-Type"),
    (b"x" * 60_001, "application/json", 413, "at most 60,000"),
], ids=["broken-json", "nan", "binary", "deep-nesting", "duplicate-csv-header", "broken-csv", "form", "xml",
     "too-large"])
def test_bodies_that_are_not_json_or_csv_get_400_and_large_ones_413(server: Server, content: bytes,
                                                                    content_type: str, status: int,
                                                                    words: str) -> None:
    response = httpx.post(f"{server.url}/predict", content=content, headers={"content-type": content_type},
                          timeout=30)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_no_bad_payload_is_a_500(server: Server, trained: Path) -> None:
    """Bounded: every shape of JSON value in every input column, and odd bodies."""
    base = records(feature_rows(trained, 1))[0]
    odd: list[Any] = [None, True, 0, -1, 1e308, -1e308, 2**70, "", "x" * 5000, [], {}, [None], {"a": 1}, "\u0000"]
    bodies = [[{**base, column: value}] for column in base for value in odd]
    bodies += [{"columns": {"plan": [1, 2], "segment": ["a"]}}, {"columns": {"plan": "x"}},
               {"dataframe_split": {"columns": ["plan"], "data": [[1, 2]]}}, {"records": "x"}, {}, [[]], [{}]]
    with httpx.Client(timeout=30) as client:
        for body in bodies:
            response = client.post(f"{server.url}/predict", json=body)
            assert response.status_code < 500, (body, response.text)
            assert response.headers["content-type"] == "application/json"


def test_health_ready_model_metrics_and_docs(server: Server, trained: Path) -> None:
    assert httpx.get(f"{server.url}/health", timeout=30).json() == {"status": "alive"}
    ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.status_code == 200 and ready.json()["model"]["version"] == 1
    described = httpx.get(f"{server.url}/model", timeout=30).json()
    registry = registry_entry(trained)["versions"][0]
    assert described["sha256"] == registry["model_sha256"]
    assert described["config_sha256"] == registry["config_sha256"]
    assert described["alias"] == "champion" and described["run_id"] == registry["run_id"]
    assert described["threshold"] == pytest.approx(registry["threshold"])
    assert set(described["training_data"]) == set(json.loads((Path(registry["run_dir"]) / "run.json").read_text())["data"])
    assert "contacts" in described["training_data"]
    assert all(v.startswith("sha256:") for v in described["training_data"].values())
    schema = described["input_schema"]
    assert schema["key"] == {"name": "customer_id", "type": "integer"}
    assert schema["columns"]["plan"]["categories"] == ["annual", "family", "monthly"]
    assert schema["columns"]["tenure_days"]["type"] == "number" and schema["columns"]["tenure_days"]["max"] > 0

    httpx.post(f"{server.url}/predict", json=records(feature_rows(trained, 3)), timeout=30)
    httpx.post(f"{server.url}/predict", json=[{**records(feature_rows(trained, 1))[0], "plan": "daily"}],
               timeout=30)
    httpx.post(f"{server.url}/predict", content=b"{", timeout=30)
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    samples = _samples(text)
    assert samples[('mlops_requests_total', (('route', '/predict'), ('status', '200')))] >= 2
    assert samples[('mlops_requests_total', (('route', '/predict'), ('status', '400')))] >= 1
    assert samples[('mlops_rows_scored_total', ())] >= 4
    assert samples[('mlops_rows_outside_domain_total', ())] >= 1
    assert samples[('mlops_domain_flags_total', (('column', 'plan'), ('flag', 'unseen_category')))] >= 1
    assert samples[('mlops_request_latency_seconds_count', (('route', '/predict'),))] >= 3

    assert httpx.get(f"{server.url}/docs", timeout=30).status_code == 200
    body = httpx.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]["/predict"]["post"]["requestBody"]
    row = body["content"]["application/json"]["schema"]["oneOf"][1]["oneOf"][0]
    assert row["properties"]["tenure_days"]["type"] == ["number", "null"]
    assert "plan" in row["required"] and "text/csv" in body["content"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_binds_loopback_by_default(server: Server) -> None:
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(("args", "line"), [
    (("nobody@champion",), r"no registered model 'nobody'; expected one of: churn"),
    (("churn@gold",), r"model 'churn' has no alias 'gold'; expected one of: champion"),
    (("churn/9",), r"model 'churn' has no version 9"),
    (("churn@champion", "--port", "99999"), r"argument --port: expected a port number from 0 to 65535"),
    (("churn@champion", "--max-rows", "0"), r"argument --max-rows: expected a whole number >= 1, got '0'"),
], ids=["unknown-model", "unknown-alias", "unknown-version", "bad-port", "bad-max-rows"])
def test_bad_arguments_are_one_line_and_exit_2(trained: Path, args: tuple[str, ...], line: str) -> None:
    done = run_mlops(trained, "serve", *args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert re.search(line, done.stderr), done.stderr


def test_a_tampered_model_is_refused_before_it_is_read(trained: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained, project, symlinks=True)
    model = project / "outputs" / "registry" / "churn" / "1" / "model.skops"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    done = run_mlops(project, "serve", "churn@champion", "--port", "0", timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "refusing to load churn/1" in done.stderr and "was changed or replaced" in done.stderr


def test_a_tampered_input_domain_is_refused(trained: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained, project, symlinks=True)
    domain = project / "outputs" / "registry" / "churn" / "1" / "input_domain.json"
    domain.write_text(domain.read_text().replace('"annual"', '"anual"'))
    done = run_mlops(project, "serve", "churn@champion", "--port", "0", timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "input_domain.json" in done.stderr


def test_a_port_in_use_is_one_line_and_exit_2(trained: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_mlops(trained, "serve", "churn@champion", "--port", str(port), timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port} is already in use" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_cleanly_with_status_0(trained: Path, sig: int) -> None:
    running = Server(trained, "churn/1")
    assert httpx.get(f"{running.url}/ready", timeout=30).status_code == 200
    status = running.stop(sig)
    assert status == 0, running.stderr
    assert "Traceback" not in running.stderr
    assert f"stopped by {signal.Signals(sig).name}" in running.stderr


def test_every_scored_row_is_in_the_prediction_log_after_sigterm(trained: Path, tmp_path: Path) -> None:
    """The log is flushed on SIGTERM: rows scored just before the signal are on disk,
    with the answers' request ids, scores and flags, and pandas reads the folder."""
    project = tmp_path / "project"
    shutil.copytree(trained, project, symlinks=True)
    shutil.rmtree(project / "outputs" / "predictions", ignore_errors=True)
    rows = records(feature_rows(project, 7))
    rows[3]["plan"] = "daily"
    answers = []
    running = Server(project, "churn@champion")
    with httpx.Client(timeout=30) as client:
        for i in range(0, 7, 2):  # 4 requests: 2 + 2 + 2 + 1 rows
            response = client.post(f"{running.url}/predict", json=rows[i:i + 2])
            assert response.status_code == 200, response.text
            answers.append(response.json())
        assert client.post(f"{running.url}/predict", json=[{"plan": 1}]).status_code == 422  # not logged
    assert running.stop() == 0, running.stderr
    assert "prediction log: 7 row(s) written, 0 dropped" in running.stderr
    folder = project / "outputs" / "predictions" / "churn"
    assert [p.name.startswith("date=") for p in folder.iterdir()] == [True]
    logged = pd.read_parquet(folder).sort_values(["received_at", "row"]).reset_index(drop=True)
    assert len(logged) == 7
    expected = [(a["request_id"], p["row"], p["score"], str(p["key"])) for a in answers for p in a["predictions"]]
    assert list(zip(logged["request_id"], logged["row"], logged["score"], logged["key"], strict=True)) == expected
    assert logged["model_version"].unique().tolist() == [1] and logged["model_name"].unique().tolist() == ["churn"]
    assert logged["in_domain"].tolist() == [True, True, True, False, True, True, True]
    assert list(logged["domain_flags"].iloc[3]) == ["plan:unseen_category"]
    assert [list(f) for f in logged["rule_flags"]] == [[], [], [], ["known_plan:plan"], [], [], []]
    assert logged["inputs"].iloc[3]["plan"] == "daily"
    assert (logged["latency_ms"] > 0).all() and (logged["source"] == "request").all()


@pytest.fixture(scope="module")
def two_versions(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained project with churn/2 (a random forest) and churn/3 (its copy, tampered after registering)."""
    project = tmp_path_factory.mktemp("follow") / "project"
    shutil.copytree(trained, project, symlinks=True)
    shutil.rmtree(project / "outputs" / "predictions", ignore_errors=True)
    for args in (("run", "model=random_forest", "model.n_estimators=20"),
                 ("registry", "register", "latest", "--name", "churn"),
                 ("registry", "register", "latest", "--name", "churn")):
        done = run_mlops(project, *args)
        assert done.returncode == 0, done.stderr
    tampered = project / "outputs" / "registry" / "churn" / "3" / "model.skops"
    tampered.write_bytes(tampered.read_bytes()[:-4] + b"XXXX")
    return project


def test_a_promotion_swaps_the_new_version_in_under_load_without_a_failed_request(two_versions: Path) -> None:
    import threading
    import time

    rows = records(feature_rows(two_versions, 3))
    seen: list[tuple[int, int | None]] = []  # (status, version that answered)
    stop = threading.Event()
    with Server(two_versions, "churn@champion", "--poll-seconds", "0.2") as running:
        def load() -> None:
            with httpx.Client(timeout=30) as client:
                deadline = time.monotonic() + 240
                while not stop.is_set() and time.monotonic() < deadline and len(seen) < 20_000:
                    response = client.post(f"{running.url}/predict", json=rows)
                    version = response.json()["model"]["version"] if response.status_code == 200 else None
                    seen.append((response.status_code, version))

        loop = threading.Thread(target=load)
        loop.start()
        try:
            while len(seen) < 20 and loop.is_alive():
                time.sleep(0.05)
            promoted = run_mlops(two_versions, "registry", "promote", "churn/2", "--alias", "champion")
            assert promoted.returncode == 0, promoted.stderr
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and httpx.get(f"{running.url}/model", timeout=30).json()["version"] != 2:
                time.sleep(0.2)
            count = len(seen)
            while len(seen) < count + 20 and loop.is_alive():
                time.sleep(0.05)
        finally:
            stop.set()
            loop.join()
        described = httpx.get(f"{running.url}/model", timeout=30).json()
        assert described["version"] == 2 and described["alias"] == "champion"
        assert described["sha256"] == registry_entry(two_versions)["versions"][1]["model_sha256"]

        # a promotion to a tampered version: refused, one line, the old one keeps serving
        promoted = run_mlops(two_versions, "registry", "promote", "churn/3", "--alias", "champion")
        assert promoted.returncode == 0, promoted.stderr
        deadline = time.monotonic() + 120
        samples: dict[Any, float] = {}
        while time.monotonic() < deadline:
            samples = _samples(httpx.get(f"{running.url}/metrics", timeout=30).text)
            if samples.get(("mlops_model_swaps_total", (("outcome", "refused"),))):
                break
            time.sleep(0.2)
        assert samples[("mlops_model_swaps_total", (("outcome", "refused"),))] == 1
        assert samples[("mlops_model_swaps_total", (("outcome", "swapped"),))] == 1
        after = httpx.post(f"{running.url}/predict", json=rows, timeout=30)
        assert after.status_code == 200 and after.json()["model"]["version"] == 2
    statuses = {status for status, _ in seen}
    versions = [version for _, version in seen]
    assert statuses == {200}, statuses
    assert versions[0] == 1 and versions[-1] == 2
    assert versions == sorted(versions), "a request answered by v1 after one answered by v2"
    refused = [line for line in running.stderr.splitlines() if "was not swapped in" in line]
    assert len(refused) == 1 and "alias churn@champion moved to v3" in refused[0]
    assert "churn/2 keeps serving" in refused[0] and "Traceback" not in running.stderr


def test_rows_given_by_key_are_scored_from_the_latest_materialization(trained: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained, project, symlinks=True)
    shutil.rmtree(project / "outputs" / "predictions", ignore_errors=True)
    rows = feature_rows(project, 3)
    keys = rows["customer_id"].tolist()
    with Server(project, "churn@champion") as running:
        by_key = httpx.post(f"{running.url}/predict", json=[{"customer_id": keys[0]}, records(rows)[1],
                                                            {"customer_id": -5}, {"customer_id": str(keys[2])}],
                            timeout=30)
        assert by_key.status_code == 200, by_key.text
        first, given, unknown, third = by_key.json()["predictions"]
        by_values = httpx.post(f"{running.url}/predict", json=records(rows), timeout=30).json()["predictions"]
        assert first["key"] == keys[0] and first["as_of"] == "2026-10-01T00:00:00"
        assert first["score"] == pytest.approx(by_values[0]["score"], abs=1e-12)
        assert third["key"] == keys[2] and third["score"] == pytest.approx(by_values[2]["score"], abs=1e-12)
        assert "as_of" not in given and given["score"] == pytest.approx(by_values[1]["score"], abs=1e-12)
        assert unknown == {"row": 2, "status": 404, "key": -5, "error": unknown["error"]}
        assert "holds no customer_id -5" in unknown["error"]
        nobody = httpx.post(f"{running.url}/predict", json={"customer_id": -5}, timeout=30)
        assert nobody.status_code == 404 and nobody.json()["column"] == "customer_id"
        assert httpx.post(f"{running.url}/predict", json={"customer_id": "x"}, timeout=30).status_code == 422
        described = httpx.get(f"{running.url}/model", timeout=30).json()["feature_store"]
        assert described["as_of"] == "2026-10-01T00:00:00" and described["key"] == "customer_id"

        # a newer materialization of the same features is used without a restart
        done = run_mlops(project, "features", "materialize", "as_of=2026-10-15")
        assert done.returncode == 0, done.stderr
        import time

        deadline, answer = time.monotonic() + 60, first
        while time.monotonic() < deadline and answer.get("as_of") != "2026-10-15T00:00:00":
            time.sleep(0.3)
            answer = httpx.post(f"{running.url}/predict", json={"customer_id": keys[0]}, timeout=30).json()[
                "predictions"][0]
        assert answer["as_of"] == "2026-10-15T00:00:00"
    assert running.process.returncode == 0
    logged = pd.read_parquet(project / "outputs" / "predictions" / "churn")
    from_store = logged[logged["source"] == "feature_store"]
    assert len(from_store) >= 3 and set(from_store["as_of"]) >= {"2026-10-01T00:00:00", "2026-10-15T00:00:00"}
    assert -5 not in logged["key"].tolist() and "-5" not in logged["key"].tolist()  # unknown keys are not scored


def test_without_a_feature_store_a_row_given_by_key_is_422(trained: Path) -> None:
    with Server(trained, "churn/1", "--feature-store", "none", "--no-log") as running:
        response = httpx.post(f"{running.url}/predict", json={"customer_id": 1}, timeout=30)
    assert response.status_code == 422 and "no feature store" in response.json()["error"]
