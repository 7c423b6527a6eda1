// Texts of the transparency pages, Korean first; the language choice is kept in localStorage.
"use strict";

const MESSAGES = {
  ko: {
    "dashboard.title": "내 의료데이터 이용 현황",
    "public.title": "병원별 연구 이용 거부(옵트아웃) 비율",
    "lang.switch": "English",
    "signin.intro": "병원에서 받은 인증 토큰으로 로그인하면 본인의 데이터가 어디에 쓰였는지 볼 수 있습니다.",
    "signin.label": "인증 토큰",
    "signin.button": "로그인",
    "signin.missing": "인증 토큰을 입력하세요.",
    "signout": "로그아웃",
    "subject": "가명 식별자",
    "datasets.title": "내 기록이 포함된 데이터셋",
    "datasets.empty": "내 기록이 포함된 데이터셋이 없습니다.",
    "datasets.name": "데이터셋",
    "datasets.holder": "보유 기관",
    "datasets.version": "버전",
    "datasets.withdrawn": "철회됨",
    "projects.title": "내 데이터를 이용한 승인 과제",
    "projects.empty": "내 데이터를 이용한 승인 과제가 없습니다.",
    "projects.name": "과제",
    "projects.purpose": "목적",
    "projects.applicant": "신청 기관",
    "projects.decisions": "심의 결정 번호",
    "projects.period": "이용 기간",
    "projects.environment": "데이터 이용 환경",
    "projects.status": "상태",
    "consents.title": "내 동의 기록",
    "consents.empty": "기록된 동의가 없습니다.",
    "consents.id": "동의 번호",
    "consents.institution": "기관",
    "consents.channel": "경로",
    "consents.scope": "범위",
    "consents.granted": "동의 일시",
    "consents.status": "상태",
    "revoke.title": "동의 철회",
    "revoke.explain": "철회하면 즉시 효력이 생기며, 내 데이터를 이용 중인 모든 승인 과제에서 내 기록을 제외하도록 요청합니다. 다시 동의하면 이후 승인되는 과제에만 적용됩니다.",
    "revoke.button": "모든 연구 이용 동의 철회",
    "revoke.confirm": "철회를 확정합니다",
    "revoke.done": "철회되었습니다. 제외 요청 {count}건이 발송되었습니다.",
    "give.button": "모든 연구 이용에 다시 동의",
    "give.done": "동의가 기록되었습니다.",
    "error.generic": "요청을 처리하지 못했습니다: {message}",
    "error.unauthorized": "인증 토큰이 유효하지 않거나 만료되었습니다. 다시 로그인하세요.",
    "error.unknown_subject": "플랫폼에 등록된 기록이나 동의가 없습니다.",
    "status.active": "이용 중",
    "status.ended": "종료",
    "status.in_force": "유효",
    "status.withdrawn": "철회됨",
    "status.not_started": "시작 전",
    "status.expired": "기간 만료",
    "exclusion.requested": "제외 요청됨",
    "exclusion.partly_acknowledged": "일부 기관 확인",
    "exclusion.completed": "제외 완료",
    "exclusion.overdue": "확인 기한 초과",
    "channel.fhir": "병원",
    "channel.dashboard": "대시보드",
    "scope.all": "모든 연구",
    "env.federated_learning": "연합학습",
    "env.secure_enclave": "보안 분석 환경",
    "env.pseudonymized_extract": "가명처리 추출본",
    "purpose.GRU": "일반 연구",
    "purpose.HMB": "보건의료 연구",
    "purpose.POA": "인구 기원·혈통 연구",
    "purpose.DS": "특정 질환 연구",
    "purpose.NRES": "제한 없음",
    "public.explain": "각 병원에서 동의를 기록한 사람 중 연구 이용을 철회(옵트아웃)한 사람의 비율입니다. 월말 기준이며, 인원이 {minimum}명 미만인 칸은 개인 식별을 막기 위해 표시하지 않습니다.",
    "public.hospital": "병원",
    "public.suppressed": "비공개",
    "public.empty": "표시할 자료가 없습니다."
  },
  en: {
    "dashboard.title": "Where my health data was used",
    "public.title": "Research opt-out rates by hospital",
    "lang.switch": "한국어",
    "signin.intro": "Sign in with the token your hospital gave you to see where your data was used.",
    "signin.label": "Sign-in token",
    "signin.button": "Sign in",
    "signin.missing": "Enter your sign-in token.",
    "signout": "Sign out",
    "subject": "Pseudonym",
    "datasets.title": "Datasets that contain my records",
    "datasets.empty": "No dataset contains your records.",
    "datasets.name": "Dataset",
    "datasets.holder": "Held by",
    "datasets.version": "Version",
    "datasets.withdrawn": "withdrawn",
    "projects.title": "Approved projects that used my data",
    "projects.empty": "No approved project used your data.",
    "projects.name": "Project",
    "projects.purpose": "Purpose",
    "projects.applicant": "Applicant",
    "projects.decisions": "Board decision ids",
    "projects.period": "Period",
    "projects.environment": "Data environment",
    "projects.status": "Status",
    "consents.title": "My consents",
    "consents.empty": "No consent is recorded.",
    "consents.id": "Consent id",
    "consents.institution": "Institution",
    "consents.channel": "Channel",
    "consents.scope": "Scope",
    "consents.granted": "Given",
    "consents.status": "Status",
    "revoke.title": "Revoke consent",
    "revoke.explain": "A revocation takes effect at once and asks every approved project that uses your data to exclude your records. Consent given again applies to projects approved afterwards only.",
    "revoke.button": "Revoke consent to all research use",
    "revoke.confirm": "Confirm the revocation",
    "revoke.done": "Revoked. {count} exclusion requests were sent.",
    "give.button": "Consent to all research use again",
    "give.done": "Your consent was recorded.",
    "error.generic": "The request failed: {message}",
    "error.unauthorized": "The sign-in token is invalid or expired. Please sign in again.",
    "error.unknown_subject": "The platform has no records or consents of yours.",
    "status.active": "in use",
    "status.ended": "ended",
    "status.in_force": "in force",
    "status.withdrawn": "withdrawn",
    "status.not_started": "not started",
    "status.expired": "period ended",
    "exclusion.requested": "exclusion requested",
    "exclusion.partly_acknowledged": "partly acknowledged",
    "exclusion.completed": "excluded",
    "exclusion.overdue": "acknowledgement overdue",
    "channel.fhir": "hospital",
    "channel.dashboard": "dashboard",
    "scope.all": "all research",
    "env.federated_learning": "federated learning",
    "env.secure_enclave": "secure enclave",
    "env.pseudonymized_extract": "pseudonymized extract",
    "purpose.GRU": "general research",
    "purpose.HMB": "health, medical or biomedical research",
    "purpose.POA": "population origins or ancestry research",
    "purpose.DS": "disease-specific research",
    "purpose.NRES": "no restriction",
    "public.explain": "Share of the people with a consent recorded at each hospital who opted out of research use, at the end of each month. Cells with fewer than {minimum} people are not shown, so that no one can be identified.",
    "public.hospital": "Hospital",
    "public.suppressed": "not shown",
    "public.empty": "No figures to show."
  }
};

const LANGUAGE_KEY = "medgov.consent.language";

function currentLanguage() {
  const stored = window.localStorage.getItem(LANGUAGE_KEY);
  return stored === "en" ? "en" : "ko";
}

function setLanguage(language) {
  window.localStorage.setItem(LANGUAGE_KEY, language);
  document.documentElement.lang = language;
}

function t(key, values) {
  const text = MESSAGES[currentLanguage()][key] ?? MESSAGES.ko[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? String(values[name]) : ""));
}

function applyTexts() {
  document.documentElement.lang = currentLanguage();
  // The page names its title's message key on <html data-title>.
  const titleKey = document.documentElement.dataset.title;
  if (titleKey) document.title = `${t(titleKey)} · medgov`;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
}

function purposeLabel(code) {
  const base = code.split(":")[0];
  const label = MESSAGES[currentLanguage()]["purpose." + base];
  return label ? `${label} (${code})` : code;
}

function institutionName(card) {
  return currentLanguage() === "en" ? card.name_en : card.name_ko;
}

function formatDate(value) {
  if (!value) {
    return "";
  }
  const locale = currentLanguage() === "en" ? "en-GB" : "ko-KR";
  return new Intl.DateTimeFormat(locale, { timeZone: "Asia/Seoul", dateStyle: "medium" }).format(new Date(value));
}

function cell(row, text) {
  const element = document.createElement("td");
  element.textContent = text;
  row.appendChild(element);
  return element;
}
