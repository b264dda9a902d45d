"""The score, the trends and the one-page report: tested on real result files, on planted
effects of known size and on none, and the page in a real browser (headless chromium)."""

import copy
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_models.reporting.history import steps
from mnist_models.reporting.results import load_results
from mnist_models.reporting.schema import upgrade
from mnist_models.reporting.score import reference_path, scores

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _rewrite(doc: dict, label: str, factor: float = 1.0, commit: str | None = None, rng=None) -> dict:
    """A copy of a real result file under another label, every round time x factor (or resampled)."""
    doc = copy.deepcopy(doc)
    doc["machine_info"]["mnist_bench"]["label"] = label
    if commit:
        doc["commit_info"] = {**doc.get("commit_info", {}), "id": commit}
    for b in doc["benchmarks"]:
        data = b["stats"]["data"]
        data = [rng.choice(data) for _ in data] if rng is not None else data
        data = [x * factor for x in data]
        q1, median, q3 = np.percentile(data, [25, 50, 75])
        b["stats"].update(data=data, median=float(median), q1=float(q1), q3=float(q3), min=min(data), max=max(data))
    return doc


@pytest.fixture(scope="module")
def reference_doc() -> dict:
    return json.loads(reference_path(1).read_text())


def test_the_reference_scores_1000_and_its_twice_as_fast_twin_2000(tmp_path, reference_doc):
    (tmp_path / "ref.json").write_text(json.dumps(_rewrite(reference_doc, "same")))
    (tmp_path / "fast.json").write_text(json.dumps(_rewrite(reference_doc, "twice", 0.5)))
    table = scores(load_results(sorted(tmp_path.glob("*.json"))).frame).set_index("machine")
    assert table.loc["same", "score"] == pytest.approx(1000) and table.loc["twice", "score"] == pytest.approx(2000)
    assert table.loc["same", "low"] < 1000 < table.loc["same", "high"]
    assert table.loc["twice", "low"] > table.loc["same", "high"]  # apart: distinguishable
    assert (table["cases"] == 18).all() and not table["partial"].any()


def test_a_machine_as_fast_as_another_is_not_called_faster(tmp_path, reference_doc, cli, capsys):
    rng = np.random.default_rng(1)
    for label in ("a", "b"):  # the same machine twice, rounds resampled: A/A
        (tmp_path / f"{label}.json").write_text(json.dumps(_rewrite(reference_doc, label, rng=rng)))
    assert cli("score", *map(str, sorted(tmp_path.glob("*.json")))) == 0
    out = capsys.readouterr().out
    assert "not distinguishable from" in out and "faster than" not in out


def test_a_partial_machine_is_not_ranked_and_a_bf16_case_off_in_accuracy_is_left_out(tmp_path, reference_doc):
    doc = _rewrite(reference_doc, "partial")
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["extra_info"]["operation"] != "infer"]
    for b in doc["benchmarks"]:
        if b["param"] == "train-cnn-cpu-bs256-bf16":
            b["extra_info"]["test_accuracy"] -= 0.01  # a point lower than fp32's: bf16 lost accuracy
    (tmp_path / "partial.json").write_text(json.dumps(doc))
    row = scores(load_results([tmp_path / "partial.json"]).frame).iloc[0]
    assert row["partial"] and row["of"] == 18 and row["cases"] == 18 - 12 - 1
    assert any("train cnn bs256 bf16" in why and "accuracy" in why for why in row["left_out"])


def test_scores_of_the_record(record, another_machine):
    table = scores(load_results([*record, another_machine]).frame).set_index("machine")
    assert table.loc["epyc-zen5-2core", "score"] == pytest.approx(1000)  # the reference itself
    assert table.loc["epyc-avx2-2core", "partial"]  # no native bf16 there: a score over what it has
    assert (table["low"] < table["score"]).all() and (table["score"] < table["high"]).all()


def _history(
    tmp_path,
    reference_doc,
    step: float | None,
    commits: int = 8,
    at: int = 5,
    sentinel: float | None = None,
    moved: float = 0.0,
    nodes: tuple[str, ...] = (),
) -> list[Path]:
    """A machine label's files over `commits` commits, `step` slower from commit `at` on; with
    `sentinel`, each run's sentinel at that speed, `moved` slower from commit `at` on (the
    machine slowed, not the code); `nodes`: the VMs the runs take in turn."""
    rng = np.random.default_rng(2)
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(commits):
        factor = 1 + step if step is not None and i >= at else 1.0
        doc = _rewrite(reference_doc, "lab", factor, commit=f"c{i:06d}" + "0" * 33, rng=rng)
        doc["datetime"] = f"2026-12-01T00:{i:02d}:00"
        if sentinel is not None:
            speed = sentinel / (1 + moved if i >= at else 1.0)
            doc.setdefault("mnist_bench", {})["trajectory"] = {"points": [[t, speed] for t in range(0, 300, 30)]}
        if nodes:
            doc["machine_info"]["node"] = nodes[i % len(nodes)]
        (tmp_path / f"run{i}.json").write_text(json.dumps(doc))
    return sorted(tmp_path.glob("*.json"))


def test_a_step_the_sentinel_saw_too_is_the_machines_drift_not_the_codes(tmp_path, reference_doc, cli, capsys):
    """The same 10% step, once with the sentinel steady (the code slowed) and once with the
    sentinel 12% slower from that commit on (the machine slowed, and the cases with it)."""
    code = load_results(_history(tmp_path / "code", reference_doc, 0.10, sentinel=100.0)).frame
    assert [s for s in steps(code) if not s.within] and not [s for s in steps(code) if s.within]
    machine = _history(tmp_path / "machine", reference_doc, 0.10, sentinel=100.0, moved=0.12)
    found = steps(load_results(machine).frame)
    within = [s for s in found if s.within]
    # the cases move as the sentinel did; only the noisiest, whose resampled rounds read a step
    # larger than 12%, are beyond it
    assert len(found) >= 20 and len(within) >= 0.9 * len(found)
    assert cli("history", str(tmp_path / "machine")) == 0
    assert "within the machine's drift: lab " in capsys.readouterr().out


def test_files_from_several_vms_are_said_and_their_spread_must_be_exceeded(tmp_path, reference_doc, cli, capsys):
    """CI's artifacts come from a different runner each time: two VMs whose sentinels read 20%
    apart; a 10% step is within that spread, and the history says so."""
    paths = _history(tmp_path, reference_doc, 0.10, sentinel=100.0, nodes=("runner-a", "runner-b"))
    for path in paths:  # runner-b's sentinel reads 20% slower
        doc = json.loads(path.read_text())
        if doc["machine_info"]["node"] == "runner-b":
            points = doc["mnist_bench"]["trajectory"]["points"]
            doc["mnist_bench"]["trajectory"]["points"] = [[t, v / 1.2] for t, v in points]
        path.write_text(json.dumps(doc))
    found = steps(load_results(paths).frame)
    assert found and len([s for s in found if s.within]) >= 0.9 * len(found)
    assert cli("history", str(tmp_path)) == 0
    assert "lab's files come from 2 machines (pytest-benchmark's node); their sentinels are 20% apart" in (
        capsys.readouterr().out
    )


def test_a_planted_step_is_found_at_its_commit(tmp_path, reference_doc):
    frame = load_results(_history(tmp_path, reference_doc, 0.10)).frame
    found = steps(frame)
    quiet = {
        b["param"]
        for b in upgrade(copy.deepcopy(reference_doc))["benchmarks"]  # rounds steadier than the step: it must be seen
        if b["stats"]["iqr"] / b["stats"]["median"] < 0.05
    }
    assert len(quiet) >= 20 and {s.case for s in found if s.commit.startswith("c000005")} >= quiet
    assert all(0.07 < s.change < 0.13 for s in found if s.case in quiet)
    assert len(found) >= 0.8 * frame["case"].nunique()  # and most of the noisier ones,
    assert {s.commit[:7] for s in found} <= {"c000004", "c000005", "c000006"}  # within a commit of it


def test_a_flat_history_of_real_noise_raises_nothing(tmp_path, reference_doc, cli, capsys):
    paths = _history(tmp_path, reference_doc, None)
    assert steps(load_results(paths).frame) == []
    assert cli("history", str(tmp_path)) == 0
    assert capsys.readouterr().out.startswith("no step change in ")


def test_history_over_no_usable_file_is_a_usage_error(tmp_path, cli, capsys):
    (tmp_path / "broken.json").write_text("{}")
    assert cli("history", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "no usable result file among its 1 JSON files" in err and err.count("error:") == 1


class _Catcher:
    """A proxy that takes every connection the browser tries and records it."""

    def __init__(self):
        self.seen: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.seen.append(conn.recv(200))
                except OSError:
                    self.seen.append(b"?")

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def _hosts(seen: list[bytes]) -> set[str]:
    """The hosts of the requests a proxy saw: GET http://HOST/..., CONNECT HOST:443."""
    out = set()
    for line in seen:
        words = line.split(b" ")
        if len(words) > 1:
            out.add(words[1].decode(errors="replace").removeprefix("http://").split("/")[0].split(":")[0])
    return out


def _requests(url: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Chromium's DOM of `url`, and the hosts it asked for that it also asks for on no page at all
    taken away (the browser's own update and time checks)."""
    control, run = _Catcher(), _Catcher()
    try:
        _chromium("--dump-dom", "about:blank", proxy=control.port)
        done = _chromium("--dump-dom", url, proxy=run.port)
    finally:
        control.close()
        run.close()
    return done, _hosts(run.seen) - _hosts(control.seen)


def _chromium(*args: str, proxy: int) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--hide-scrollbars",
        f"--proxy-server=http://127.0.0.1:{proxy}",
        "--proxy-bypass-list=<-loopback>",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory, record, another_machine):
    out = tmp_path_factory.mktemp("page")
    doc = json.loads(another_machine.read_text())
    doc["machine_info"]["mnist_bench"]["label"] = "<script>alert(1)</script>&xeon"  # hostile, escaped
    (out / "hostile.json").write_text(json.dumps(doc))
    from mnist_models.cli import main

    assert main(["report", *map(str, record), str(out / "hostile.json"), "--out", str(out / "report")]) == 0
    return out / "report" / "index.html"


def test_the_page_holds_every_machine_and_asks_nothing_of_the_network(page):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed here (apt-get install chromium)")
    planted = page.with_name("planted.html")  # the check's own control: a page that does ask the network
    planted.write_text('<html><body><img src="http://planted.example/x.png"></body></html>')
    assert _requests(planted.as_uri())[1] == {"planted.example"}
    done, asked = _requests(page.as_uri())
    shot = page.with_name("index.png")
    catcher = _Catcher()
    try:
        _chromium("--window-size=1280,1400", f"--screenshot={shot}", page.as_uri(), proxy=catcher.port)
    finally:
        catcher.close()
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    board = dom[dom.index('id="leaderboard"') :]
    board = board[: board.index("</table>")]
    for label in ("epyc-zen5-2core", "epyc-2core", "epyc-avx2-2core", "&lt;script&gt;alert(1)&lt;/script&gt;&amp;xeon"):
        assert label in board, label
    assert "partial, 8 of 18 cases" in board and "<script>" not in dom
    assert asked == set()  # not one request left the file
    assert shot.stat().st_size > 50_000  # a screenshot with the leaderboard drawn


def test_the_page_is_self_contained(page):
    text = page.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    import re

    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(r.startswith(("#", "data:")) for r in refs), [r for r in refs if not r.startswith(("#", "data:"))]
    assert len(text.encode()) < 3 * 2**20


def test_the_page_draws_the_trends_and_their_steps(tmp_path, reference_doc, cli):
    paths = _history(tmp_path / "runs", reference_doc, 0.10) if (tmp_path / "runs").mkdir() is None else []
    assert cli("report", *map(str, paths), "--out", str(tmp_path / "report")) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    trends = page[page.index("<h2>Trends across commits</h2>") :]
    assert "<svg" in trends and "c000005" in trends and "+10" in trends
