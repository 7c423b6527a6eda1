// The public page: opt-out rates per hospital and month from GET /v1/public/opt-out-rates.
"use strict";

let figures = null;

function header(row, text) {
  const element = document.createElement("th");
  element.textContent = text;
  row.appendChild(element);
}

function rateCell(row, item) {
  const element = cell(row, "");
  if (!item || item.suppressed) {
    element.textContent = t("public.suppressed");
    element.className = "suppressed";
    return;
  }
  const percent = (item.rate * 100).toFixed(1);
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = `${Math.min(item.rate * 100, 100)}%`;
  const label = document.createElement("span");
  label.textContent = `${percent}% (${item.opted_out}/${item.subjects})`;
  element.append(bar, label);
}

function render() {
  if (!figures) {
    return;
  }
  document.getElementById("explain").textContent = t("public.explain", { minimum: figures.minimum_cell });
  const headRow = document.querySelector("#rates thead tr");
  headRow.replaceChildren();
  header(headRow, t("public.hospital"));
  for (const month of figures.months) {
    header(headRow, month);
  }

  const byHospital = new Map();
  for (const item of figures.cells) {
    if (!byHospital.has(item.institution.id)) {
      byHospital.set(item.institution.id, { card: item.institution, months: new Map() });
    }
    byHospital.get(item.institution.id).months.set(item.month, item);
  }
  const body = document.querySelector("#rates tbody");
  body.replaceChildren();
  for (const hospital of byHospital.values()) {
    const row = document.createElement("tr");
    row.dataset.institutionId = hospital.card.id;
    cell(row, institutionName(hospital.card));
    for (const month of figures.months) {
      rateCell(row, hospital.months.get(month));
    }
    body.appendChild(row);
  }
  document.getElementById("rates").hidden = byHospital.size === 0;
  document.getElementById("rates-empty").hidden = byHospital.size > 0;
}

async function start() {
  applyTexts();
  document.getElementById("language").addEventListener("click", () => {
    setLanguage(currentLanguage() === "ko" ? "en" : "ko");
    applyTexts();
    render();
  });
  const response = await fetch("/v1/public/opt-out-rates?months=12");
  if (!response.ok) {
    document.getElementById("error").textContent = t("error.generic", { message: String(response.status) });
    return;
  }
  figures = await response.json();
  render();
}

start();
