// Helpers both pages use: one home each, imported where needed.

export const API = "/api/v1";

export const $ = (id) => document.getElementById(id);

// JSON the template rendered with json_script (labels, look-alike groups, the page's settings).
export function readJson(id) {
  return JSON.parse($(id).textContent);
}

// A share as a percentage; "–" for a figure that does not exist.
export function pct(value, digits = 1) {
  return value === null || value === undefined ? "\u2013" : (value * 100).toFixed(digits) + "%";
}

// A probability: whole percent at the ends ("100%", "0%"), one decimal between.
export function probability(p) {
  return pct(p, p >= 0.995 || p < 0.001 ? 0 : 1);
}

// A character in a font where l, I and 1 differ, or the sentence around it would be ambiguous.
export function glyph(text) {
  const b = document.createElement("b");
  b.className = "glyph";
  b.textContent = text;
  return b;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class FetchError extends Error {}

// Every request has a deadline: a page never waits for ever on a silent server.
// Resolves to {response, body}; body is {} when the answer is not JSON.
export async function request(url, options, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { credentials: "same-origin", signal: controller.signal, ...options });
    const body = await response.json().catch(() => ({}));
    return { response, body };
  } catch (err) {
    if (err.name === "AbortError") {
      throw new FetchError("The server did not answer within " + Math.round(timeoutMs / 1000) + " seconds. Please try again.");
    }
    throw new FetchError("Could not reach the server: check your connection and try again.");
  } finally {
    clearTimeout(timer);
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// Retry-After in seconds, from either of its two forms (seconds or an HTTP date); null if absent.
export function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value);
  return isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
