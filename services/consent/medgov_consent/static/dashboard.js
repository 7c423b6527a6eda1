// The patient dashboard: signs in with a bearer token and shows only what GET /v1/me returns for it.
// Every value from the server is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "medgov.consent.token";
let records = null;

function storedToken() {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

function takeTokenFromFragment() {
  // A hospital portal may link here with #token=...; the fragment never reaches a server or a log.
  const match = window.location.hash.match(/^#token=([^&]+)/);
  if (match) {
    window.sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    window.history.replaceState(null, "", window.location.pathname);
  }
}

async function callApi(method, path, body) {
  const headers = { Authorization: "Bearer " + storedToken() };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const payload = await response.json().catch(() => ({}));
  return { status: response.status, payload };
}

function errorMessage(result) {
  if (result.status === 401) {
    return t("error.unauthorized");
  }
  const detail = result.payload.detail;
  if (detail && detail.code === "unknown_subject") {
    return t("error.unknown_subject");
  }
  const message = detail && detail.message ? detail.message : JSON.stringify(detail ?? result.status);
  return t("error.generic", { message });
}

function showSignIn(message) {
  document.getElementById("records").hidden = true;
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-error").textContent = message || "";
}

async function loadRecords() {
  const result = await callApi("GET", "/v1/me");
  if (result.status === 401 || result.status === 403) {
    window.sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(errorMessage(result));
    return;
  }
  document.getElementById("signin").hidden = true;
  document.getElementById("records").hidden = false;
  if (result.status !== 200) {
    records = null;
    document.getElementById("records-error").textContent = errorMessage(result);
    return;
  }
  document.getElementById("records-error").textContent = "";
  records = result.payload;
  render();
}

function render() {
  if (!records) {
    return;
  }
  document.getElementById("subject").textContent = records.subject;
  renderDatasets(records.datasets);
  renderProjects(records.projects);
  renderConsents(records.consents);
}

function fillTable(id, items, addRow) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement("tr");
    addRow(row, item);
    body.appendChild(row);
  }
  document.getElementById(id).hidden = items.length === 0;
  document.getElementById(`${id}-empty`).hidden = items.length > 0;
}

function renderDatasets(datasets) {
  fillTable("datasets", datasets, (row, dataset) => {
    row.dataset.datasetId = dataset.dataset_id;
    const title = dataset.title || dataset.dataset_id;
    cell(row, dataset.withdrawn ? `${title} (${t("datasets.withdrawn")})` : title);
    cell(row, institutionName(dataset.holder));
    cell(row, String(dataset.version));
  });
}

function projectStatus(project) {
  // The server decides the state with its own clock, so the browser's clock does not matter.
  if (project.exclusion) {
    return t("exclusion." + project.exclusion.state);
  }
  return t("status." + project.state);
}

function shortId(id) {
  // A board decision id may end in a UUID ("dec-" and 36 characters). Its first eight hex digits
  // tell decisions apart, and the full id stays in the cell's tooltip.
  const match = /^(.*-)([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.exec(id);
  return match ? `${match[1]}${match[2]}…` : id;
}

function renderProjects(projects) {
  fillTable("projects", projects, (row, project) => {
    row.dataset.grantId = project.grant_id;
    cell(row, project.title);
    const purposes = project.purposes.map(purposeLabel).join(", ");
    cell(row, project.purpose_text ? `${project.purpose_text} — ${purposes}` : purposes);
    cell(row, institutionName(project.applicant));
    cell(row, project.decision_ids.map(shortId).join(", ")).title = project.decision_ids.join(", ");
    cell(row, `${formatDate(project.starts_at)} ~ ${formatDate(project.expires_at)}`);
    cell(row, t("env." + project.data_environment));
    cell(row, projectStatus(project)).className = "status";
  });
}

function scopeText(scope) {
  if (!scope) {
    return "—";
  }
  const parts = [];
  if (scope.purpose_codes.length) {
    parts.push(scope.purpose_codes.map(purposeLabel).join(", "));
  }
  if (scope.dataset_ids.length) {
    parts.push(scope.dataset_ids.join(", "));
  }
  if (scope.institution_ids.length) {
    parts.push(scope.institution_ids.join(", "));
  }
  return parts.length ? parts.join(" · ") : t("scope.all");
}

function renderConsents(consents) {
  fillTable("consents", consents, (row, consent) => {
    cell(row, consent.consent_id);
    cell(row, institutionName(consent.institution));
    cell(row, t("channel." + consent.channel));
    cell(row, scopeText(consent.scope));
    cell(row, formatDate(consent.granted_at));
    cell(row, t("status." + consent.status));
  });
}

function actingInstitution() {
  // A dashboard consent or opt-out is recorded through a hospital; the first one holding the patient's data.
  return records && records.datasets.length ? records.datasets[0].holder.id : undefined;
}

async function revokeAll() {
  document.getElementById("revoke-confirm").hidden = true;
  const result = await callApi("POST", "/v1/me/revocations", { institution_id: actingInstitution() });
  const output = document.getElementById("action-result");
  if (result.status !== 200) {
    output.textContent = errorMessage(result);
    return;
  }
  const count = result.payload.revocations.reduce((sum, item) => sum + item.exclusions_requested, 0);
  output.textContent = t("revoke.done", { count });
  await loadRecords();
}

async function giveConsent() {
  const result = await callApi("POST", "/v1/me/consents", {
    scope: { kind: "all_research" },
    institution_id: actingInstitution(),
  });
  const output = document.getElementById("action-result");
  output.textContent = result.status === 201 ? t("give.done") : errorMessage(result);
  await loadRecords();
}

function start() {
  applyTexts();
  takeTokenFromFragment();

  document.getElementById("language").addEventListener("click", () => {
    setLanguage(currentLanguage() === "ko" ? "en" : "ko");
    applyTexts();
    render();
  });
  document.getElementById("signin-button").addEventListener("click", () => {
    const token = document.getElementById("token").value.trim();
    if (!token) {
      showSignIn(t("signin.missing"));
      return;
    }
    window.sessionStorage.setItem(TOKEN_KEY, token);
    document.getElementById("token").value = "";
    loadRecords();
  });
  document.getElementById("signout").addEventListener("click", () => {
    window.sessionStorage.removeItem(TOKEN_KEY);
    records = null;
    showSignIn("");
  });
  document.getElementById("revoke-button").addEventListener("click", () => {
    document.getElementById("revoke-confirm").hidden = false;
  });
  document.getElementById("revoke-confirm").addEventListener("click", revokeAll);
  document.getElementById("give-button").addEventListener("click", giveConsent);

  if (storedToken()) {
    loadRecords();
  } else {
    showSignIn("");
  }
}

start();
