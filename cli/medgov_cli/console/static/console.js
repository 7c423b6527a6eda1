// Governance console: fetches /api/* from the console server and renders its panels.
// Korean is the default language; the switch stores the choice in localStorage.
"use strict";

const TEXT = {
  ko: {
    title: "medgov 거버넌스 콘솔",
    subtitle: "대구·대전·광주 의료 데이터 거버넌스",
    switchLabel: "English",
    queue: "심의 대기열",
    queueEmpty: "진행 중인 신청이 없습니다.",
    application: "신청 ID", applicant: "신청 기관", state: "상태", daysUsed: "사용 일수", daysLeft: "남은 일수",
    escalation: "에스컬레이션", escalated: "위원회 상정", none: "-",
    fund: "기금 재원과 지급", pool: "재원", balance: "잔액(원)", disbursed: "지급액(원)",
    byInstitution: "기관별 지급액", institution: "기관", amount: "금액(원)",
    flags: "컴플라이언스 경보", flagsEmpty: "경보가 없습니다.", severity: "심각도", rule: "규칙", dataset: "데이터셋", status: "상태",
    search: "카탈로그 검색", searchPlaceholder: "검색어 (예: CT, 동의, Patient)", searchButton: "검색",
    title_: "제목", region: "지역", legalBasis: "법적 근거", completeness: "완성도",
    loadFailed: "불러오지 못했습니다",
    services: "서비스 상태", service: "서비스", ready: "준비", process: "프로세스", restarts: "재시작 횟수",
    lastExit: "마지막 종료 코드", yes: "예", no: "아니요",
    pools: { cataloging: "데이터 목록화 지원", anonymization_tools: "가명·익명처리 도구 지원", milestones: "성과 기반 지원" },
    codes: {
      awaiting_revision: "보완 요청", under_review: "심의 중", approved: "승인", rejected: "반려",
      high: "높음", medium: "중간", low: "낮음", open: "미해결", cleared: "해소",
      direct_identifier_in_pseudonymized_dataset: "가명 데이터셋에 직접 식별자",
      direct_identifier_in_consent_dataset: "동의 기반 데이터셋에 직접 식별자",
      direct_identifier_in_anonymous_dataset: "익명 데이터셋에 직접 식별자",
      quasi_identifier_in_anonymous_dataset: "익명 데이터셋에 준식별자",
      reidentification_link_in_anonymous_dataset: "익명 데이터셋에 재식별 연결 정보",
      starting: "시작 중", running: "실행 중", restarting: "재시작 중", failed: "실패", stopped: "중지됨",
      consent: "동의", pseudonymized_research: "가명정보 연구", anonymous: "익명정보",
      daegu: "대구", daejeon: "대전", gwangju: "광주",
    },
  },
  en: {
    title: "medgov governance console",
    subtitle: "Medical data governance for Daegu, Daejeon and Gwangju",
    switchLabel: "한국어",
    queue: "Review queue",
    queueEmpty: "No open applications.",
    application: "Application", applicant: "Applicant", state: "State", daysUsed: "Days used", daysLeft: "Days left",
    escalation: "Escalation", escalated: "Escalated to council", none: "-",
    fund: "Fund pools and disbursements", pool: "Pool", balance: "Balance (KRW)", disbursed: "Disbursed (KRW)",
    byInstitution: "Disbursed by institution", institution: "Institution", amount: "Amount (KRW)",
    flags: "Compliance flags", flagsEmpty: "No flags.", severity: "Severity", rule: "Rule", dataset: "Dataset", status: "Status",
    search: "Catalog search", searchPlaceholder: "Search text (e.g. CT, consent, Patient)", searchButton: "Search",
    title_: "Title", region: "Region", legalBasis: "Legal basis", completeness: "Completeness",
    loadFailed: "Could not load",
    services: "Service status", service: "Service", ready: "Ready", process: "Process", restarts: "Restarts",
    lastExit: "Last exit code", yes: "yes", no: "no",
    pools: { cataloging: "Cataloging subsidies", anonymization_tools: "Anonymization tools", milestones: "Milestone grants" },
    codes: {
      awaiting_revision: "Awaiting revision", under_review: "Under review", approved: "Approved", rejected: "Rejected",
      high: "High", medium: "Medium", low: "Low", open: "Open", cleared: "Cleared",
      direct_identifier_in_pseudonymized_dataset: "Direct identifier in a pseudonymized dataset",
      direct_identifier_in_consent_dataset: "Direct identifier in a consent-based dataset",
      direct_identifier_in_anonymous_dataset: "Direct identifier in an anonymous dataset",
      quasi_identifier_in_anonymous_dataset: "Quasi-identifier in an anonymous dataset",
      reidentification_link_in_anonymous_dataset: "Re-identification link in an anonymous dataset",
      starting: "Starting", running: "Running", restarting: "Restarting", failed: "Failed", stopped: "Stopped",
      consent: "Consent", pseudonymized_research: "Pseudonymized research", anonymous: "Anonymous",
      daegu: "Daegu", daejeon: "Daejeon", gwangju: "Gwangju",
    },
  },
};

let lang = localStorage.getItem("medgov-lang") || "ko";

function t(key) { return TEXT[lang][key] ?? key; }

function won(value) { return new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US").format(value); }

function days(value) {
  return new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(value);
}

// A code the services report, shown in words with the code itself as its tooltip. An unknown code is shown as it is.
function code(value) {
  const label = TEXT[lang].codes[value];
  return label ? el("span", { title: value }, label) : (value ?? "");
}

// Institution names by id, from /api/institutions. An id is shown as it is until they load, or when it is unknown.
let institutionNames = {};

function institutionName(id) {
  const names = institutionNames[id];
  if (!names) return id ?? "";
  return lang === "ko" ? names.name_ko : names.name_en;
}

function institution(id) { return el("span", { title: id ?? "" }, institutionName(id)); }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function table(headers, rows) {
  const head = el("tr", {}, ...headers.map((h) => el("th", {}, h)));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

async function load(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${response.status}: ${describeError(await response.text())}`);
  return response.json();
}

// The message of an error body, without the input it may echo: FastAPI's list gives each problem's msg.
function describeError(body) {
  try {
    const detail = JSON.parse(body).detail;
    if (Array.isArray(detail)) return detail.map((item) => item.msg).join("; ");
    if (detail && typeof detail === "object") return detail.message ?? JSON.stringify(detail);
    return String(detail ?? body);
  } catch {
    return body.slice(0, 200);
  }
}

function failure(panel, error) {
  panel.replaceChildren(el("p", { class: "error" }, `${t("loadFailed")}: ${error.message}`));
}

function barChart(items) {
  // Inline SVG so the page needs no chart library from a CDN.
  const width = 540, barHeight = 22, gap = 8, labelWidth = 230;
  const max = Math.max(1, ...items.map((item) => item.value));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", items.length * (barHeight + gap) + gap);
  svg.setAttribute("role", "img");
  items.forEach((item, index) => {
    const y = gap + index * (barHeight + gap);
    const length = Math.round(((width - labelWidth - 110) * item.value) / max);
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", 0); label.setAttribute("y", y + 16);
    // English names run long: a cut one ends in an ellipsis and shows in full as a tooltip.
    label.textContent = item.label.length > 34 ? `${item.label.slice(0, 33)}…` : item.label;
    const tooltip = document.createElementNS(svg.namespaceURI, "title");
    tooltip.textContent = item.label;
    label.append(tooltip);
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    bar.setAttribute("x", labelWidth); bar.setAttribute("y", y); bar.setAttribute("width", Math.max(length, 1));
    bar.setAttribute("height", barHeight); bar.setAttribute("class", "bar");
    const amount = document.createElementNS(svg.namespaceURI, "text");
    amount.setAttribute("x", labelWidth + length + 6); amount.setAttribute("y", y + 16); amount.textContent = won(item.value);
    svg.append(label, bar, amount);
  });
  return svg;
}

async function renderQueue() {
  const panel = document.getElementById("queue-body");
  try {
    const data = await load("/api/queue");
    if (!data.items.length) { panel.replaceChildren(el("p", {}, t("queueEmpty"))); return; }
    panel.replaceChildren(table(
      [t("application"), t("applicant"), t("state"), t("daysUsed"), t("daysLeft"), t("escalation")],
      data.items.map((item) => [item.application_id, institution(item.applicant_institution), code(item.state),
        days(item.days_used), days(item.days_left), item.escalated ? t("escalated") : t("none")]),
    ));
  } catch (error) { failure(panel, error); }
}

async function renderFund() {
  const panel = document.getElementById("fund-body");
  try {
    const data = await load("/api/fund");
    const pools = data.pools.map((pool) => [TEXT[lang].pools[pool.pool] ?? pool.pool, won(pool.available_krw), won(pool.disbursed_krw)]);
    panel.replaceChildren(
      table([t("pool"), t("balance"), t("disbursed")], pools),
      el("h3", {}, t("byInstitution")),
      barChart(data.institutions.map((item) => ({ label: institutionName(item.institution_id), value: item.disbursed_krw }))),
    );
  } catch (error) { failure(panel, error); }
}

async function renderFlags() {
  const panel = document.getElementById("flags-body");
  try {
    const data = await load("/api/flags");
    if (!data.items.length) { panel.replaceChildren(el("p", {}, t("flagsEmpty"))); return; }
    panel.replaceChildren(table(
      [t("institution"), t("severity"), t("rule"), t("dataset"), t("status")],
      data.items.map((item) => [institution(item.institution_id), code(item.severity), code(item.rule), item.dataset_id ?? "",
        code(item.status)]),
    ));
  } catch (error) { failure(panel, error); }
}

async function renderServices() {
  const panel = document.getElementById("services-body");
  try {
    const data = await load("/api/services");
    panel.replaceChildren(table(
      [t("service"), t("ready"), t("process"), t("restarts"), t("lastExit")],
      Object.entries(data.services).map(([name, item]) => [name, item.ready ? t("yes") : t("no"),
        item.status ? code(item.status) : t("none"), item.restarts ?? t("none"), item.last_exit_code ?? t("none")]),
    ));
  } catch (error) { failure(panel, error); }
}

async function renderSearch(query = "") {
  const panel = document.getElementById("search-results");
  try {
    const data = await load(`/api/search?q=${encodeURIComponent(query)}`);
    panel.replaceChildren(table(
      [t("dataset"), t("title_"), t("institution"), t("region"), t("legalBasis"), t("completeness")],
      data.items.map((item) => [item.dataset_id, item.title, institution(item.institution_id), code(item.region),
        code(item.legal_basis), item.completeness_score]),
    ));
  } catch (error) { failure(panel, error); }
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
  document.getElementById("search-input").placeholder = t("searchPlaceholder");
  document.getElementById("lang-switch").textContent = t("switchLabel");
}

function renderAll() {
  applyLanguage();
  renderQueue(); renderFund(); renderFlags(); renderServices(); renderSearch(document.getElementById("search-input").value);
}

async function loadInstitutions() {
  try {
    institutionNames = (await load("/api/institutions")).institutions;
  } catch (error) {
    console.warn("institution names not loaded; the page shows ids", error);
  }
}

document.getElementById("lang-switch").addEventListener("click", () => {
  lang = lang === "ko" ? "en" : "ko";
  localStorage.setItem("medgov-lang", lang);
  renderAll();
});
document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  renderSearch(document.getElementById("search-input").value);
});
loadInstitutions().then(renderAll);
setInterval(() => { renderQueue(); renderFund(); renderFlags(); renderServices(); }, 5000);
