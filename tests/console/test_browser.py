"""The web console in a real browser: Debian's headless chromium, driven by Selenium.

One walk through as a new user would take it, against a real ``aimass serve`` app
(uvicorn in a thread, one job thread): sign in with the admin key, upload a dataset,
train a model and watch its job finish live, move an alias (confirming the dialog),
predict with explanation highlighting, verify the audit log, sign out. Then a key
with only ``predict`` sees no training form, a page without a session goes to
sign-in, and a form posted without its CSRF token is refused.

``scripts/install-chromium`` installs chromium and chromedriver (``make test`` runs
it); without them these tests skip with that reason. With
``CONSOLE_SCREENSHOTS=DIR`` the walk saves a screenshot of each main page in
DIR (``scripts/console-screenshots`` refreshes the ones in the docs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import live_server, sentiment_rows, write_jsonl

pytestmark = pytest.mark.subprocess  # starts a browser and its driver

WAIT = 120  # seconds: a tiny training on a busy two-core machine


def _driver(profile: Path):
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("chromium or chromedriver is missing; run scripts/install-chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a download
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_bert_dir) -> Iterator[tuple[str, str, Path]]:
    """``(url, admin key, dataset file)``: a live server on a home with a tiny base."""
    root = tmp_path_factory.mktemp("console")
    home = root / "home"
    ws = Workspace(Settings(home=home, device="cpu"))
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    ws.close()
    data = write_jsonl(root / "reviews.jsonl", sentiment_rows(200))
    for url, key, _app in live_server(home, job_workers=1, serve_runners=0):
        yield url, key, data


@pytest.fixture
def browser(tmp_path):
    driver = _driver(tmp_path / "profile")
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds=WAIT):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Live pages reload themselves (a finished job's page does): an element read in the
    # middle of a reload is stale or not there yet; the condition is simply asked again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, ignored_exceptions=ignored).until(condition)


def _shot(driver, name):
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"console-{name}.png"))


def _sign_in(driver, url, key):
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console/p/default")
    assert "/console/sign-in" in driver.current_url
    driver.find_element(By.NAME, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # Signed in once the project page shows the sign-out form (the sign-in page's own
    # URL, ``...?next=/console/p/default``, ends the same way, so the URL alone is no sign).
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "form.signout"))
    assert driver.current_url.endswith("/console/p/default"), driver.current_url


def test_a_new_user_walks_the_console_from_sign_in_to_sign_out(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, key, data = site
    _sign_in(browser, url, key)
    _shot(browser, "project")

    # Upload a dataset: the page reads the file, shows progress, then opens the dataset.
    browser.get(f"{url}/console/p/default/upload")
    assert browser.find_elements(By.NAME, "file"), browser.page_source[:2000]
    browser.find_element(By.NAME, "file").send_keys(str(data))
    browser.find_element(By.NAME, "name").send_keys("reviews")
    browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    _wait(browser, lambda d: "/datasets/reviews" in d.current_url)
    assert "200 rows" in browser.page_source and "Labels" in browser.page_source
    _shot(browser, "dataset")

    # Train, and watch the job finish on its page (server-sent events, then a reload).
    browser.get(f"{url}/console/p/default/train")
    Select(browser.find_element(By.NAME, "base")).select_by_value("tiny")
    browser.find_element(By.NAME, "model").send_keys("browser")
    browser.find_element(By.NAME, "epochs").send_keys("3")
    browser.find_element(By.NAME, "lr").send_keys("0.001")
    browser.find_element(By.NAME, "batch_size").send_keys("16")
    Select(browser.find_element(By.NAME, "mode")).select_by_value("finetune")
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    _wait(browser, lambda d: "/jobs/" in d.current_url)
    _wait(browser, lambda d: d.find_element(By.ID, "job-status").text == "succeeded")
    assert browser.find_element(By.CSS_SELECTOR, "#job-curve svg polyline")
    _shot(browser, "job")

    # Move an alias: the page asks first; the browser's dialog is accepted.
    browser.get(f"{url}/console/p/default/models/browser")
    alias = browser.find_element(By.NAME, "alias")
    alias.clear()
    alias.send_keys("production")
    browser.find_element(By.CSS_SELECTOR, "form[data-confirm] button[type=submit]").click()
    _wait(browser, lambda d: d.switch_to.alert).accept()
    _wait(
        browser,
        lambda d: (
            "protected" in d.find_element(By.CSS_SELECTOR, "tbody").get_attribute("innerHTML")
        ),
    )
    _shot(browser, "model")

    # Predict with explanations: words are highlighted by their weight.
    browser.get(f"{url}/console/p/default/playground")
    Select(browser.find_element(By.NAME, "model")).select_by_value("browser@production")
    browser.find_element(By.NAME, "texts").send_keys("good great film\nbad awful movie")
    Select(browser.find_element(By.NAME, "explain")).select_by_value("occlusion")
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    highlighted = _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "td.explained span[class]")
    )
    assert any(span.get_attribute("class")[:3] in ("pos", "neg") for span in highlighted)
    _shot(browser, "playground")

    # The audit log verifies from the page.
    browser.get(f"{url}/console/audit")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/audit/verify'] button").click()
    _wait(browser, lambda d: "The chain holds" in d.page_source)
    _shot(browser, "audit")

    # Sign out: the session ends, and a page asks for sign-in again.
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    _wait(browser, lambda d: "/console/sign-in" in d.current_url)
    browser.get(f"{url}/console/p/default/models/browser")
    assert "/console/sign-in" in browser.current_url


def test_a_predict_key_sees_no_training_and_a_form_without_csrf_is_refused(site, browser):
    import httpx
    from selenium.webdriver.common.by import By

    url, admin, _ = site
    made = httpx.post(
        f"{url}/v1/projects/default/keys",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "viewer", "scopes": ["read", "predict"]},
    )
    assert made.status_code == 201, made.text
    _sign_in(browser, url, made.json()["key"])
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert not any(link.endswith("/train") for link in links)
    browser.get(f"{url}/console/p/default/train")
    assert "PERMISSION_DENIED" in browser.page_source

    # A form whose CSRF token was removed (what a cross-site form would send) is refused.
    browser.get(f"{url}/console/p/default/playground")
    browser.execute_script("document.querySelector('form.stack input[name=csrf]').remove()")
    browser.find_element(By.NAME, "texts").send_keys("good film")
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    _wait(browser, lambda d: "CSRF" in d.page_source)
    assert "PERMISSION_DENIED" in browser.page_source
