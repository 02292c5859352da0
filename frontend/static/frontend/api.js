// Talking to the REST API: sending a drawing and waiting for its answer, corrections, the
// recent list. No DOM here: the caller says what to show.
import { API, FetchError, csrfToken, readJson, request, retryAfterSeconds, sleep } from "./common.js";

// The page's settings, rendered by the template from Django settings (frontend/views.py).
export const CONFIG = readJson("page-config");

// The server said no: its status, its JSON body and, for a 429, how long to wait.
export class Refused extends Error {
  constructor(response, body) {
    super((body && body.detail) || "The server refused the request (" + response.status + ").");
    this.status = response.status;
    this.body = body || {};
    this.retryAfter = retryAfterSeconds(response);
  }
}

const get = (url) => request(url, { headers: { Accept: "application/json" } }, CONFIG.timeoutMs);

// 202: the worker has not finished yet. Poll the Location it gave, a bounded number of times;
// onPoll(i, tries) is told each check. Returns the last answer, which may still be pending.
async function poll(url, item, onPoll) {
  let delay = CONFIG.pollDelayMs;
  for (let i = 1; i <= CONFIG.pollTries; i++) {
    onPoll(i, CONFIG.pollTries);
    await sleep(delay);
    delay = Math.min(delay * 1.5, CONFIG.pollMaxDelayMs);
    const got = await get(url);
    if (got.response.status === 429) { await sleep((retryAfterSeconds(got.response) || 2) * 1000); continue; }
    if (!got.response.ok) throw new Refused(got.response, got.body);
    item = got.body;
    if (item.status !== "pending") return item;
  }
  return item;
}

// POST a drawing or an upload (FormData) to /submissions or /words and wait for its answer:
// the submission or word as the API gives it, or a Refused / FetchError.
export async function submitDrawing(kind, formData, onPoll) {
  const endpoint = kind === "word" ? API + "/words" : API + "/submissions";
  const got = await request(endpoint, {
    method: "POST",
    body: formData,
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  }, CONFIG.timeoutMs);
  if (!got.response.ok) throw new Refused(got.response, got.body);
  const item = got.body;
  if (item.status !== "pending") return item;
  return poll(got.response.headers.get("Location") || item.url, item, onPoll);
}

// Store what a character really was; resolves to the stored correction.
export async function saveCorrection(item, label) {
  const url = item.url || API + "/submissions/" + item.id;
  const got = await request(url + "/correction", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify({ label: label }),
  }, CONFIG.timeoutMs);
  if (!got.response.ok) throw new Refused(got.response, got.body);
  return got.body;
}

// This visitor's latest submissions, newest first.
export async function recentSubmissions() {
  const got = await get(API + "/submissions?page_size=12");
  if (!got.response.ok) throw new Refused(got.response, got.body);
  if (!Array.isArray(got.body.results)) throw new FetchError("The list of recent drawings was not the API's answer.");
  return got.body.results;
}

// Forget everything this writer's corrections taught their own memory; resolves to how many
// drawings were forgotten.
export async function forgetHandwriting() {
  const got = await request(API + "/writer-memory", {
    method: "DELETE",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  }, CONFIG.timeoutMs);
  if (!got.response.ok) throw new Refused(got.response, got.body);
  return got.body.deleted;
}
