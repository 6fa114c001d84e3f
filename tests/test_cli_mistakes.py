"""Every user mistake, through the real command line (`python -m stream_moe.cli` in a subprocess): a mistake in the
arguments or settings exits 2 and one in the input or the environment 1, each with the single line
`stream-moe <command>: error: ...` that names the bad value, and never a traceback (unless --verbose asks for it).

The cases run concurrently (each pays for a Python start), then each is checked on its own.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

# (name, arguments, environment, exit status, the error line after "stream-moe <command>: error: ")
# {d} stands for the directory of the input files, {busy} for a port in use, {closed} for one nobody listens on.
CASES = [
    ("n zero", ["replay", "--n", "0"], {}, 2, "argument --n: must be a positive integer, got 0"),
    ("n negative", ["replay", "--n", "-5"], {}, 2, "argument --n: must be a positive integer, got -5"),
    ("n not a number", ["replay", "--n", "ten"], {}, 2, "argument --n: must be a positive integer, got 'ten'"),
    ("size zero", ["replay", "--size", "0"], {}, 2, "argument --size: must be a positive integer, got 0"),
    ("unknown stream", ["replay", "--stream", "sea"], {}, 2, "argument --stream: invalid choice: 'sea' (choose from"),
    ("unknown device", ["replay", "--device", "gpu"], {}, 2,
     "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("missing file", ["replay", "--file", "{d}/absent.csv"], {}, 2, "argument --file: no such file: '{d}/absent.csv'"),
    ("a directory", ["replay", "--file", "{d}"], {}, 2, "argument --file: '{d}' is a directory, expected a file"),
    ("unknown file type", ["replay", "--file", "{d}/rows.txt"], {}, 2,
     "argument --file: {d}/rows.txt: unknown stream file type '.txt' (expected .arff or .csv, optionally .gz)"),
    ("empty file", ["replay", "--file", "{d}/empty.csv"], {}, 1, "{d}/empty.csv: empty file"),
    ("header only", ["replay", "--file", "{d}/header.csv"], {}, 1, "{d}/header.csv: no data rows after the header"),
    ("not gzip", ["replay", "--file", "{d}/plain.csv.gz"], {}, 1, "{d}/plain.csv.gz: not a gzip file"),
    ("truncated gzip", ["replay", "--file", "{d}/cut.csv.gz", "--model", "hoeffding-tree", "--no-progress",
                        "--out", "{d}/cut"], {}, 1,
     "{d}/cut.csv.gz: the gzip data ends early, after line"),
    ("unknown target", ["replay", "--file", "{d}/rows.csv", "--target", "lable"], {}, 2,
     "argument --target: 'lable' is not a column of rows.csv (did you mean label?); its columns: a, b, label"),
    ("target without file", ["replay", "--target", "label"], {}, 2, "argument --target: names a column of --file"),
    ("string attribute", ["replay", "--file", "{d}/names.arff"], {}, 1,
     "{d}/names.arff:2: attribute 'name' is of type string, which cannot be streamed"),
    ("unknown param", ["replay", "--param", "top_kk=2"], {}, 2,
     "argument --param: driftmoe-data has no parameter 'top_kk' (did you mean top_k?)"),
    ("param of the wrong type", ["replay", "--param", "top_k=many"], {}, 2,
     "argument --param: top_k='many': expected int | None (default None): Input should be a valid integer"),
    ("param not name=value", ["replay", "--param", "top_k"], {}, 2,
     "argument --param: expected NAME=VALUE, got 'top_k'"),
    ("size of a model without one", ["replay", "--model", "hoeffding-tree", "--size", "3"], {}, 2,
     "argument --size: model 'hoeffding-tree' has no ensemble size"),
    ("missing config", ["replay", "--config", "{d}/absent.yaml"], {}, 2,
     "argument --config: no such file: '{d}/absent.yaml'"),
    ("bad yaml", ["replay", "--config", "{d}/broken.yaml"], {}, 2, "{d}/broken.yaml: not valid YAML at line 3"),
    ("settings not a mapping", ["replay", "--config", "{d}/list.yaml"], {}, 2,
     "{d}/list.yaml: expected a mapping of sections (loop, model, serve, ...), found a list"),
    ("invalid setting", ["replay", "--config", "{d}/zero_batch.yaml"], {}, 2,
     "{d}/zero_batch.yaml: loop.batch_size: input should be greater than or equal to 1, got 0"),
    ("unknown nested setting", ["replay", "--config", "{d}/misspelt.yaml"], {}, 2,
     "{d}/misspelt.yaml: serve.embeded_stream: unknown setting (did you mean serve.embedded_stream?)"),
    ("unknown variable", ["replay", "--n", "10"], {"STREAM_MOE_SERVE__EMBEDED_N": "5"}, 2,
     "unknown setting STREAM_MOE_SERVE__EMBEDED_N in the environment (did you mean STREAM_MOE_SERVE__EMBEDDED_N?)"),
    ("unknown forecast scenario", ["forecast", "--scenario", "euro28"], {}, 2,
     "argument --scenario: unknown scenario 'euro28': neither built in"),
    ("missing forecast csv", ["forecast", "--csv", "{d}/absent.csv"], {}, 2,
     "argument --csv: no such file: '{d}/absent.csv'"),
    ("header-only forecast csv", ["forecast", "--csv", "{d}/loads.csv", "--season", "24"], {}, 1,
     "{d}/loads.csv: no rows of loads after the header"),
    ("unknown forecaster param", ["forecast", "--model", "persistence", "--param", "lags=3"], {}, 2,
     "argument --param: persistence has no parameter 'lags'; its parameters: none"),
    ("busy metrics port", ["serve", "--http-port", "{busy}"], {"STREAM_MOE_SERVE__EMBEDDED_N": "10"}, 1,
     "cannot serve metrics and health on 127.0.0.1:{busy}: Address already in use"),
    ("unreachable kafka", ["serve"], {"STREAM_MOE_SERVE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:{closed}"}, 1,
     "no Kafka broker reachable at 127.0.0.1:{closed} (127.0.0.1:{closed}: Connection refused)"),
]


def write_inputs(d: pathlib.Path) -> None:
    rng = random.Random(1)
    rows = "a,b,label\n" + "".join(f"{rng.random():.6f},{i % 3},{'xy'[i % 2]}\n" for i in range(4000))
    (d / "rows.csv").write_text(rows)
    (d / "rows.txt").write_text(rows)
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("a,b,label\n")
    (d / "plain.csv.gz").write_text(rows)
    packed = gzip.compress(rows.encode())
    (d / "cut.csv.gz").write_bytes(packed[: len(packed) * 9 // 10])  # cut after the rows the CSV reader sniffs
    (d / "names.arff").write_text("@relation r\n@attribute name string\n@attribute c {a,b}\n@data\nx,a\n")
    (d / "broken.yaml").write_text("loop:\n  batch_size: [\n")
    (d / "list.yaml").write_text("- loop\n")
    (d / "zero_batch.yaml").write_text("loop:\n  batch_size: 0\n")
    (d / "misspelt.yaml").write_text("serve:\n  embeded_stream: sea_g\n")
    (d / "loads.csv").write_text("time,A-B,B-C\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(argv: list[str], env: dict, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_MOE_")}
    environ.update(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "stream_moe.cli", *argv], env=environ, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    write_inputs(d)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    values = {"d": str(d), "busy": str(busy.getsockname()[1]), "closed": str(free_port())}

    def fill(text: str) -> str:
        return text.format(**values)

    with busy, concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run_cli, [fill(a) for a in argv], {k: fill(v) for k, v in env.items()}, d)
            for name, argv, env, _, _ in CASES
        }
        results = {name: future.result() for name, future in futures.items()}
    return results, fill, d


@pytest.mark.parametrize(("name", "argv", "env", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_mistake_gets_one_line_and_its_exit_status(outcomes, name, argv, env, status, message):
    results, fill, _ = outcomes
    result = results[name]
    command = argv[0]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == status, result.stderr
    assert lines[-1].startswith(f"stream-moe {command}: error: {fill(message)}"), lines[-1]
    if command != "serve":  # the service logs as it starts; the other commands say nothing but the error
        assert len(lines) == 1, result.stderr


def test_a_truncated_file_keeps_the_results_up_to_the_cut(outcomes):
    results, _, d = outcomes
    assert f"the results up to then are in {d}/cut/results.json" in results["truncated gzip"].stderr
    report = json.loads((d / "cut" / "results.json").read_text())
    assert report["complete"] is False and report["stopped"].startswith("failed: ")
    assert 0 < report["n"] < 4000


def test_verbose_shows_the_traceback(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    result = run_cli(["replay", "--verbose", "--file", "empty.csv"], {}, tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "stream-moe replay: error: empty.csv: empty file"


def test_ctrl_c_writes_the_partial_results_and_says_so(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_MOE_")}
    environ["PYTHONPATH"] = str(REPO)
    out_dir = tmp_path / "out"
    argv = [sys.executable, "-m", "stream_moe.cli", "replay", "--stream", "sea_a", "--model", "hoeffding-tree",
            "--n", "1000000", "--batch-size", "16", "--no-progress", "--out", str(out_dir)]
    process = subprocess.Popen(argv, env=environ, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out_dir / "dead_letters.jsonl").exists() and time.monotonic() < deadline:  # made as the loop starts
            time.sleep(0.2)
        time.sleep(2.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted after" in out and f"the results so far are in {tmp_path / 'out' / 'results.json'}" in out
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["complete"] is False and report["stopped"] == "interrupted"
    assert 0 < report["records"] < 1_000_000 and report["n"] == report["records"]
