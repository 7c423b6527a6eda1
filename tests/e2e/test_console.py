"""The governance console in headless Chromium, against the scenario left running by the demo fixture."""

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def page(summary):
    if not CHROMIUM.exists():
        pytest.fail("headless tests need Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(summary["urls"]["console"])
        yield page
        browser.close()


def _save(page, name: str, tmp_path: Path) -> None:
    target = SCREENSHOTS if os.environ.get("MEDGOV_UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_console_korean_first(page, tmp_path):
    page.wait_for_selector("#queue-body table")
    # The review clock escalates the breach application shortly after the scenario ends.
    # The page redraws the queue every 5 s, so a loaded machine may need several redraws.
    page.wait_for_function("document.querySelector('#queue-body').innerText.includes('위원회 상정')", timeout=60_000)

    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("#queue h2").inner_text() == "심의 대기열"
    queue = page.locator("#queue-body").inner_text()
    assert "app-demo-breach" in queue
    # States and institutions show in words, not as the codes and ids the services report.
    assert "심의 중" in queue
    assert "under_review" not in queue
    assert "vendor-medvision" not in queue
    assert page.title() == "medgov 거버넌스 콘솔"
    _save(page, "console-ko.png", tmp_path)


def test_console_fund_and_flags(page):
    page.wait_for_selector("#fund-body table")
    page.wait_for_selector("#flags-body table")

    fund = page.locator("#fund-body").inner_text()
    flags = page.locator("#flags-body").inner_text()
    assert "데이터 목록화 지원" in fund
    assert "성과 기반 지원" in fund
    assert page.locator("#fund-body svg rect").count() >= 1
    assert "ds-dsmc-dicom-fileset" in flags
    assert "높음" in flags
    assert "계명대학교 동산병원" in flags
    assert "가명 데이터셋에 직접 식별자" in flags


def test_console_service_status(page):
    page.wait_for_selector("#services-body table")

    status = page.locator("#services-body").inner_text()
    assert page.locator("#services h2").inner_text() == "서비스 상태"
    for service in ("review", "catalog", "consent", "grants"):
        assert service in status
    assert "실행 중" in status
    assert "재시작 횟수" in status


def test_console_search(page):
    page.fill("#search-input", "Immunization")
    page.click("#search-form button")
    page.wait_for_function("document.querySelector('#search-results').innerText.includes('ds-knuh-immunization')")

    results = page.locator("#search-results").inner_text()
    assert "ds-knuh-immunization" in results
    assert "경북대학교병원" in results
    assert "대구" in results
    assert "ds-dsmc-dicom-fileset" not in results


def test_console_english_switch(page, tmp_path):
    page.click("#lang-switch")
    page.wait_for_function("document.querySelector('#queue h2').innerText === 'Review queue'")
    page.wait_for_function("document.querySelector('#fund-body').innerText.includes('Cataloging subsidies')")

    assert page.locator("html").get_attribute("lang") == "en"
    assert "Cataloging subsidies" in page.locator("#fund-body").inner_text()
    assert "Under review" in page.locator("#queue-body").inner_text()
    assert page.title() == "medgov governance console"
    _save(page, "console-en.png", tmp_path)
    page.click("#lang-switch")
