"""End to end in headless Chromium: two annotators at once, a server restart midway, then `score` (Table 5).

The server is the real `wm-hub human-eval serve` in a subprocess; the browsers are Debian's chromium driven by
selenium through Debian's chromedriver (`make test` / `.ci/run` install them when missing). Each annotator picks the
best and worst output by model (the test reads the study key to find where each model is displayed), so the
expected table is known in model space before anything is clicked.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from human_eval_study import SUBSETS, build_args, write_aurora_checkout, write_predictions
from scipy.stats import wilcoxon
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from wm_hub.cli import main
from wm_hub.human_eval.storage import Answer, AnswerStore
from wm_hub.human_eval.study import load_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)
WAIT_S = 30

# the plan, in model space: (best, worst) of each annotator per subset
PLAN = {
    "ann": dict.fromkeys(SUBSETS, ("alpha", "delta")),
    "bob": {subset: ("beta", "delta") if subset in ("magicbrush", "ag") else ("alpha", "gamma") for subset in SUBSETS},
}
# 2 rows x 2 annotators per subset: magicbrush/ag: alpha (1+0)/2, beta (0+1)/2, delta -1; the others: alpha 1,
# gamma and delta -1/2; overall over the 20 answers
EXPECTED = {
    **dict.fromkeys(("magicbrush", "ag"), {"alpha": 0.5, "beta": 0.5, "gamma": 0.0, "delta": -1.0}),
    **dict.fromkeys(("something", "whatsup", "kubric"), {"alpha": 1.0, "beta": 0.0, "gamma": -0.5, "delta": -0.5}),
    "overall": {"alpha": 0.8, "beta": 0.2, "gamma": -0.3, "delta": -0.7},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """`wm-hub human-eval serve STUDY` in a subprocess, started and stopped with timeouts."""

    def __init__(self, study: Path, port: int, log: Path):
        self.study, self.port, self.log = study, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "wm_hub.cli",
            "human-eval",
            "serve",
            str(self.study),
            "--port",
            str(self.port),
        ]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if json.load(response)["status"] == "ok":
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server not ready after 90 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


def _page_replaced(driver: webdriver.Chrome) -> bool:
    """Whether the document marked by :func:`_submit` has been replaced by a fully loaded new one.

    Polling an old element for staleness races with Chromium's navigation: mid-swap, chromedriver answers with a
    generic "Node with given id does not belong to the document" error instead of a stale-element one. A marker on
    ``window`` is gone exactly when a new document has replaced the old one.
    """
    try:
        return driver.execute_script("return document.readyState === 'complete' && !window.wmSubmitted")
    except WebDriverException:  # the page is between documents: ask again on the next poll
        return False


def _submit(driver: webdriver.Chrome, best: int, worst: int) -> None:
    driver.find_element(By.ID, f"best-{best}").click()
    driver.find_element(By.ID, f"worst-{worst}").click()
    driver.execute_script("window.wmSubmitted = true")
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, WAIT_S).until(_page_replaced)


def _annotate(
    driver: webdriver.Chrome, name: str, base: str, key, rows: int, submitted: list[Answer], refuse_first: bool
) -> None:
    """Answer ``rows`` rows as ``name`` by the plan, checking the progress line before each."""
    wait = WebDriverWait(driver, WAIT_S)
    for _ in range(rows):
        done = len([answer for answer in submitted if answer.annotator == name])
        progress = wait.until(expected_conditions.visibility_of_element_located((By.ID, "progress"))).text
        assert progress.startswith(f"Row {done + 1} of 10"), progress
        row = driver.find_element(By.ID, "answer").get_attribute("action").rsplit("/", 1)[1]
        best_model, worst_model = PLAN[name][key.row_subsets[row]]
        best, worst = key.orders[row].index(best_model) + 1, key.orders[row].index(worst_model) + 1
        if refuse_first and done == 0:
            _submit(driver, best, best)
            error = wait.until(expected_conditions.visibility_of_element_located((By.ID, "error")))
            assert "must differ" in error.text and f"Model {best} for both" in error.text
            assert driver.find_element(By.ID, "progress").text.startswith("Row 1 of 10")  # nothing was stored
        _submit(driver, best, worst)
        submitted.append(Answer(name, row, best, worst))


def test_two_annotators_restart_and_score_in_chromium(tmp_path):
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), (
        "Debian's chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver "
        "(make test and .ci/run install them)"
    )
    checkout = write_aurora_checkout(tmp_path / "aurora")
    study = tmp_path / "study"
    assert main(build_args(checkout, write_predictions(checkout, tmp_path), study)) == 0
    key = load_key(study)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _Server(study, port, tmp_path / "server.log")
    halfway = threading.Barrier(3, timeout=120)
    submitted: dict[str, list[Answer]] = {"ann": [], "bob": []}
    errors: list[BaseException] = []
    screenshot = tmp_path / "refused.png"

    def annotator(name: str) -> None:
        driver = None
        try:
            driver = _browser(tmp_path / f"profile-{name}")
            driver.get(f"{base}/")
            driver.find_element(By.ID, "name").send_keys(name)
            driver.find_element(By.ID, "start").click()
            WebDriverWait(driver, WAIT_S).until(expected_conditions.url_to_be(f"{base}/a/{name}"))
            if name == "ann":  # the refusal, on screen: keep a screenshot of it
                row = driver.find_element(By.ID, "answer").get_attribute("action").rsplit("/", 1)[1]
                _submit(driver, 1, 1)
                WebDriverWait(driver, WAIT_S).until(
                    expected_conditions.visibility_of_element_located((By.ID, "error"))
                )
                assert driver.find_element(By.ID, "answer").get_attribute("action").endswith(f"/{row}")
                driver.save_screenshot(str(screenshot))
            _annotate(driver, name, base, key, 5, submitted[name], refuse_first=name == "bob")
            halfway.wait()  # the server restarts now
            halfway.wait()
            driver.get(f"{base}/a/{name}")  # the annotator's link resumes the session
            _annotate(driver, name, base, key, 5, submitted[name], refuse_first=False)
            done = WebDriverWait(driver, WAIT_S).until(
                expected_conditions.visibility_of_element_located((By.ID, "done"))
            )
            assert name in done.text
        except BaseException as error:
            errors.append(error)
            halfway.abort()
        finally:
            if driver is not None:
                driver.quit()

    threads = [threading.Thread(target=annotator, args=(name,), daemon=True) for name in submitted]
    try:
        server.start()
        for thread in threads:
            thread.start()
        try:
            halfway.wait()
            server.stop()
            with pytest.raises(OSError):
                urllib.request.urlopen(f"{base}/health", timeout=2)
            server.start()
            halfway.wait()
        except threading.BrokenBarrierError:
            pass
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "an annotator's browser hung"
    finally:
        halfway.abort()
        server.stop()
    if errors:
        raise errors[0]

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = AnswerStore(study / "answers.sqlite").answers()
    expected = submitted["ann"] + submitted["bob"]
    assert len(stored) == len(expected) == 20 and sorted(stored, key=repr) == sorted(expected, key=repr)

    assert main(["human-eval", "score", str(study)]) == 0
    scores = json.loads((study / "scores.json").read_text())
    assert scores["reference"] == "alpha" and scores["annotators"] == {"ann": 10, "bob": 10}
    for subset in SUBSETS:
        assert scores["subsets"][subset]["n"] == 4
        assert scores["subsets"][subset]["scores"] == pytest.approx(EXPECTED[subset])
    assert scores["overall"]["scores"] == pytest.approx(EXPECTED["overall"])
    points = {model: [] for model in key.models}  # per answer, in model space, straight from the plan
    for name in ("ann", "bob"):
        for subset in SUBSETS:
            for _ in range(2):
                best, worst = PLAN[name][subset]
                for model in key.models:
                    points[model].append(1 if model == best else -1 if model == worst else 0)
    for model in ("beta", "gamma", "delta"):
        assert scores["overall"]["wilcoxon"][model]["p_value"] == pytest.approx(
            float(wilcoxon(points[model], points["alpha"]).pvalue), rel=1e-9
        )
    agreement = scores["agreement"]
    assert agreement["rows"] == 10 and agreement["pairs"] == 10
    assert agreement["best"]["pairwise"] == pytest.approx(0.6) and agreement["worst"]["pairwise"] == pytest.approx(0.4)
