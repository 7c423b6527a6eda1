"""The transparency dashboard in headless Chromium against the running service."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from medgov_shared.service import Service
from medgov_shared.testing.services import free_port, http_client, wait_until

from .conftest import Publisher, Scenario, Topics, bearer, new_subject, wait_for_grant

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def base_url(service: Service) -> AsyncIterator[str]:
    """Serve the already started service over a real socket; the app's lifespan must not start it again."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service.app(), host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout_s=10, message="dashboard server started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def open_dashboard(browser: Browser, base_url: str, token: str, outside: list[str]) -> Page:
    context = await browser.new_context(locale="ko-KR")
    page = await context.new_page()
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base_url) else None)
    await page.goto(f"{base_url}/dashboard#token={token}")
    await page.wait_for_selector("#records:not([hidden])")
    return page


async def test_patient_dashboard(
    service: Service, publisher: Publisher, topics: Topics, browser: Browser, base_url: str, jwt_secret: str
) -> None:
    mine = Scenario(publisher, topics)
    theirs = Scenario(publisher, topics, holder="cnuh", grantee="vendor-lunapath")
    for scenario in (mine, theirs):
        await scenario.publish_dataset()
        await scenario.publish_grant()
    await wait_for_grant(service, mine.grant_id)
    await wait_for_grant(service, theirs.grant_id)
    patient = bearer(jwt_secret, roles=["patient"], subject=mine.subjects[0])
    async with http_client(service) as client:
        await client.post("/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "knuh"}, headers=patient)
    outside: list[str] = []

    page = await open_dashboard(browser, base_url, token_of(patient), outside)
    korean_title = await page.text_content("h1")
    korean_page_title = await page.title()
    holder = await page.text_content("#datasets tbody tr td:nth-child(2)")
    status_before = await page.text_content("#projects tbody tr td.status")
    content = await page.content()
    await page.click("#language")
    english_title = await page.text_content("h1")
    english_page_title = await page.title()
    status_in_english = await page.text_content("#projects tbody tr td.status")
    await page.click("#revoke-button")
    await page.click("#revoke-confirm")
    # The page's CSP forbids eval, so waits use locators rather than wait_for_function.
    await expect(page.locator("#projects tbody tr td.status")).to_have_text("exclusion requested")
    result = await page.text_content("#action-result")
    url_after_signin = page.url

    assert korean_title == "내 의료데이터 이용 현황"
    assert korean_page_title == "내 의료데이터 이용 현황 · medgov"
    assert holder == "경북대학교병원"
    assert status_before == "이용 중"
    assert f'data-dataset-id="{mine.dataset_id}"' in content
    assert f'data-grant-id="{mine.grant_id}"' in content
    assert theirs.dataset_id not in content
    assert theirs.grant_id not in content
    assert mine.subjects[1] not in content
    assert english_title == "Where my health data was used"
    assert english_page_title == "Where my health data was used · medgov"
    assert status_in_english == "in use"
    assert result == "Revoked. 1 exclusion requests were sent."
    assert "token=" not in url_after_signin
    assert outside == []


async def test_other_patient_sees_only_theirs(
    service: Service, publisher: Publisher, topics: Topics, browser: Browser, base_url: str, jwt_secret: str
) -> None:
    mine = Scenario(publisher, topics)
    theirs = Scenario(publisher, topics, holder="cnuh", grantee="vendor-lunapath")
    for scenario in (mine, theirs):
        await scenario.publish_dataset()
        await scenario.publish_grant()
    await wait_for_grant(service, mine.grant_id)
    await wait_for_grant(service, theirs.grant_id)
    outside: list[str] = []

    page = await open_dashboard(browser, base_url, token_of(bearer(jwt_secret, roles=["patient"], subject=theirs.subjects[0])), outside)
    content = await page.content()
    applicant = await page.text_content("#projects tbody tr td:nth-child(3)")

    assert f'data-dataset-id="{theirs.dataset_id}"' in content
    assert mine.dataset_id not in content
    assert mine.grant_id not in content
    assert mine.subjects[0] not in content
    assert applicant == "루나패스"
    assert outside == []


async def test_signin_rejects_bad_token(browser: Browser, base_url: str) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base_url}/dashboard")

    await page.click("#signin-button")
    missing = await page.text_content("#signin-error")
    await page.fill("#token", "not-a-token")
    await page.click("#signin-button")
    await expect(page.locator("#signin-error")).to_contain_text("유효하지")
    records_hidden = await page.is_hidden("#records")

    assert missing == "인증 토큰을 입력하세요."
    assert records_hidden is True


async def test_public_page_suppresses_small_cells(service: Service, browser: Browser, base_url: str, jwt_secret: str) -> None:
    async with http_client(service) as client:
        for _ in range(2):
            await client.post(
                "/v1/me/consents",
                json={"scope": {"kind": "all_research"}, "institution_id": "yumc"},
                headers=bearer(jwt_secret, roles=["patient"], subject=new_subject()),
            )
    context = await browser.new_context()
    page = await context.new_page()
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    await page.goto(f"{base_url}/transparency")
    await page.wait_for_selector("#rates tbody tr")
    icon = await page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then(answer => answer.status)")

    hospital = await page.text_content("#rates tbody tr td:first-child")
    latest = await page.text_content("#rates tbody tr td:last-child")
    explain = await page.text_content("#explain")

    assert failed == []
    assert icon == 200
    assert hospital == "영남대학교병원"
    assert latest == "비공개"
    assert explain is not None
    assert "5명 미만" in explain
