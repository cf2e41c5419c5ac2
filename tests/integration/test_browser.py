"""A person in a browser: log in to a real local Airflow, trigger the training DAG through its Params form.

Headless Debian Chromium driven by Selenium's client through Debian's chromedriver (no browser download). The
Airflow is `airflow standalone` as `make up` starts it (tooling.stack), in its own home and on a free port. The DAG
stays paused (the form's "unpause on trigger" is unticked), so the run is created with its conf and stays queued:
the test is about the form, not about training. The screenshot is kept under build/browser/.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import urllib.request

import pytest

from jobs.settings import REPO_ROOT
from tooling import stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = REPO_ROOT / "build" / "browser"
REASON = "browser test: retrain after the schema fix"

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("MLP_REQUIRE_BROWSER") == "1":
        raise RuntimeError("MLP_REQUIRE_BROWSER=1 but Debian's chromium and chromium-driver are not installed")
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def airflow(module_settings):
    """Airflow standalone (api-server, scheduler, dag-processor, triggerer) on loopback; stopped afterwards."""
    home = module_settings.home
    settings = dataclasses.replace(module_settings, airflow_home=home / "airflow")  # not the session's Airflow
    ports = stack.Ports(airflow=_free_port(), mlflow=_free_port(), reports=_free_port())
    try:
        stack.up(settings, ports, only=("airflow",), timeout=420)
        password = stack.airflow_password(settings)
        assert password, "the simple auth manager generated no admin password"
        api = stack.AirflowApi.local(settings, ports)
        api.wait_for_dag("training", timeout=240)
        yield api
    finally:
        stack.down(settings)
        log = home / "logs" / "airflow.log"
        if log.exists():
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, SHOTS / "airflow.log")


@pytest.fixture()
def browser():
    """Headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(20)
    try:
        yield driver
    finally:
        driver.quit()


def _click(wait, locator: tuple[str, str]) -> None:
    """Click once the element is there and clickable; the React UI re-renders, so find it afresh on each try."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    def attempt(driver) -> bool:
        try:
            driver.find_element(*locator).click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    wait.until(attempt)


def test_log_in_trigger_training_with_a_reason_and_see_the_run(airflow, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    api = airflow
    base, password = api.base, api.password
    wait = WebDriverWait(browser, 60)
    browser.get(base)
    assert "/auth/login" in browser.current_url, "an anonymous visitor is sent to the login page"
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)

    browser.get(f"{base}/dags/training")
    _click(wait, (By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))
    unpause = (By.CSS_SELECTOR, "[role=dialog] input[type=checkbox]")
    if browser.find_element(*unpause).is_selected():  # keep the DAG paused: the run gets its conf and stays queued
        browser.execute_script("arguments[0].click();", browser.find_element(*unpause))
    wait.until(lambda d: not d.find_element(*unpause).is_selected())
    reason = browser.find_element(By.ID, "element_reason")
    browser.execute_script("arguments[0].scrollIntoView();", reason)
    reason.send_keys(REASON)
    _click(wait, (By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]"))
    wait.until(lambda d: "/dags/training/runs/" in d.current_url)
    run_id = browser.current_url.rsplit("/runs/", 1)[1]

    # The run page shows the run; its Details tab shows the conf the form sent.
    _click(wait, (By.XPATH, "(//a|//button)[normalize-space()='Details']"))
    wait.until(lambda d: REASON in d.find_element(By.TAG_NAME, "body").text)
    shown = browser.find_elements(By.XPATH, f"//*[contains(text(), '{REASON}')]")
    if shown:  # the run's conf, scrolled into the screenshot
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", shown[-1])
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "training-triggered-with-reason.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    runs = {r["dag_run_id"]: r for r in api.get("/api/v2/dags/training/dagRuns")["dag_runs"]}
    assert urllib.request.unquote(run_id) in runs
    run = runs[urllib.request.unquote(run_id)]
    assert run["conf"]["reason"] == REASON, "the non-default Param value reached the run's conf"
    assert run["conf"]["family"] == "all" and run["run_type"] == "manual"
    assert run["state"] == "queued", "the DAG stayed paused, so nothing trained"
    assert api.get("/api/v2/pools/gpu")["slots"] == 1, "make up creates the pool the train task runs in"
