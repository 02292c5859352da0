// Showing answers: the heading, one card per character (what the model saw, its five guesses,
// look-alikes, a correction picker), the fonts, the recent list and the page's messages.
import { $, FetchError, glyph, probability, readJson } from "./common.js";
import { CONFIG, Refused, saveCorrection } from "./api.js";
import { pad } from "./canvas.js";

const LABELS = Array.from(readJson("labels-data"));
const GROUP_OF = {};
readJson("lookalike-data").forEach((group, i) => group.forEach((label) => { GROUP_OF[label] = i; }));
// A phone's layout: one column, the answer below the canvas (app.css's breakpoint).
const NARROW = window.matchMedia("(max-width: 700px)");
const hooks = { corrected: () => {} };

// Called after a correction is stored (the recent list shows it).
export function onCorrected(callback) { hooks.corrected = callback; }

export function say(text, kind) {
  const message = $("message");
  message.textContent = text || "";
  message.dataset.kind = kind || "error";
}
export function announce(text) { $("announce").textContent = text; }
export function working(text) {
  $("working").hidden = !text;
  if (text) $("working-text").textContent = text;
}

// The word API's characters and the submission API use slightly different names; accept both.
export const label = (item) => item.predicted_label || item.label || "";
const image28 = (item) => item.input_image || item.input28 || "";
// Below the configured top probability the page does not pretend to know.
const unsure = (item) => Boolean(item.top_k && item.top_k.length && item.top_k[0].probability < CONFIG.unsureBelow);

// "o, O and 0 look almost the same in handwriting": the top answers that share a look-alike
// group with the first one and that the model gives a real chance. Returns a <p> or null.
function lookalikeNote(item) {
  const top = item.top_k || [];
  if (!top.length || GROUP_OF[top[0].label] === undefined) return null;
  const group = GROUP_OF[top[0].label];
  const close = top.filter((p, i) => GROUP_OF[p.label] === group && (i === 0 || p.probability >= 0.03));
  if (close.length < 2) return null;
  const names = close.map((p) => p.label);
  const sameLetter = names.every((n) => n.toLowerCase() === names[0].toLowerCase() && /[a-z]/i.test(n));
  const note = document.createElement("p");
  note.className = "lookalike";
  names.forEach((n, i) => {
    if (i > 0) note.append(i === names.length - 1 ? " and " : ", ");
    note.appendChild(glyph(n));
  });
  note.append(sameLetter
    ? " are the same letter in lower and upper case and differ mostly in size, which one character on its own does not show; the model is unsure between them ("
    : " look almost the same in handwriting; the model is unsure between them (");
  close.forEach((p, i) => note.append(i ? ", " : "", glyph(p.label), " " + probability(p.probability)));
  note.append(").");
  return note;
}

// Said in words when the top guess is below the threshold, instead of a confident answer.
// The writer's memory of their own corrections changed this answer (issue 19).
function adaptedNote() {
  const note = document.createElement("p");
  note.className = "adapted";
  note.textContent = "Read using your corrections";
  return note;
}

function unsureNote(item, index) {
  const note = document.createElement("p");
  note.className = "unsure";
  note.id = "unsure-" + index;
  const best = item.top_k[0];
  note.append("The model is not sure: its best guess, ", glyph(best.label), ", has only " + probability(best.probability)
    + ". Which of its guesses is right? Choose it below, or any other character, and save.");
  return note;
}

function bars(item) {
  const list = document.createElement("ol");
  list.className = "bars";
  list.setAttribute("aria-label", "Five best guesses");
  (item.top_k || []).forEach((p) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = p.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.style.width = Math.max(0.5, p.probability * 100).toFixed(1) + "%";
    bar.appendChild(fill);
    const value = document.createElement("span");
    value.className = "pct";
    value.textContent = probability(p.probability);
    li.append(name, bar, value);
    list.appendChild(li);
  });
  return list;
}

// Starts on "Choose…" (or on the correction already stored): a pre-selected guess would be
// saved as a label the person never picked.
function correctionPicker(item, index, count, doubtful) {
  const form = document.createElement("form");
  form.className = "fix";
  form.noValidate = true; // the page says what is missing, in its own words
  const id = "fix-" + index;
  const lab = document.createElement("label");
  lab.htmlFor = id;
  lab.textContent = count > 1 ? "Character " + (index + 1) + " was really" : doubtful ? "Which is it? It was really" : "Wrong? It was really";
  const select = document.createElement("select");
  select.id = id;
  select.name = "label";
  select.required = true;
  if (doubtful) select.setAttribute("aria-describedby", "unsure-" + index);
  const choose = new Option("Choose\u2026", "");
  const ranked = (item.top_k || []).map((p) => p.label);
  const best = document.createElement("optgroup");
  best.label = "The model's guesses";
  (item.top_k || []).forEach((p) => best.appendChild(new Option(p.label + "  (" + probability(p.probability) + ")", p.label)));
  const all = document.createElement("optgroup");
  all.label = "Every character";
  LABELS.forEach((l) => { if (ranked.indexOf(l) < 0) all.appendChild(new Option(l, l)); });
  select.append(choose, best, all);
  select.value = item.correction ? item.correction.label : "";
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Save correction";
  button.setAttribute("aria-label", count > 1 ? "Save the correction of character " + (index + 1) : "Save the correction");
  const out = document.createElement("p");
  out.className = "fix-message";
  out.setAttribute("role", "status");
  out.setAttribute("aria-live", "polite");
  if (item.correction) out.textContent = "Stored \u201c" + item.correction.label + "\u201d for review.";
  form.append(lab, select, button, out);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!select.value) {
      out.textContent = "Choose what it really was first.";
      select.focus();
      return;
    }
    correct(item, select.value, button, out, form);
  });
  return form;
}

async function correct(item, value, button, out, form) {
  button.disabled = true;
  out.textContent = "Saving\u2026";
  try {
    const stored = await saveCorrection(item, value);
    form.dataset.saved = stored.label;
    out.textContent = "Thanks: stored \u201c" + stored.label + "\u201d for review; your next drawings are read with it.";
    announce("Correction stored: " + stored.label);
    hooks.corrected();
  } catch (err) {
    if (err instanceof Refused && err.status === 429) {
      out.textContent = "Too many requests: try again in " + (err.retryAfter || 10) + " seconds.";
    } else if (err instanceof Refused || err instanceof FetchError) {
      out.textContent = err instanceof Refused && !err.body.detail ? "Could not store the correction (" + err.status + ")." : err.message;
    } else {
      out.textContent = String(err);
    }
  } finally {
    button.disabled = false;
  }
}

function characterCard(item, index, count) {
  const doubtful = unsure(item);
  const li = document.createElement("li");
  li.className = "char-card";
  li.dataset.submissionId = item.id;
  const head = document.createElement("div");
  head.className = "char-head";
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.className = "input28";
  img.width = count > 1 ? 84 : 140;
  img.height = img.width;
  img.src = image28(item);
  img.alt = "The 28 by 28 image the model saw" + (count > 1 ? " for character " + (index + 1) : "");
  const caption = document.createElement("figcaption");
  caption.textContent = "What the model saw (28\u00d728)";
  figure.append(img, caption);
  const big = document.createElement("span");
  big.className = "char styled-char";
  big.textContent = label(item);
  big.setAttribute("aria-label", (count > 1 ? "Character " + (index + 1) + ": " : "Prediction: ") + label(item));
  head.append(figure, big);
  li.append(head, bars(item));
  if (item.adapted) li.appendChild(adaptedNote());
  if (doubtful) li.appendChild(unsureNote(item, index));
  const note = lookalikeNote(item);
  if (note) li.appendChild(note);
  li.appendChild(correctionPicker(item, index, count, doubtful));
  return li;
}

// On a phone the answer lands below the canvas: bring it into view. On a wider screen (word
// mode is one column there too) scroll no further than keeps the whole canvas on screen.
function bringIntoView(result) {
  const top = result.getBoundingClientRect().top;
  if (top <= window.innerHeight * 0.8) return;
  const behavior = window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth";
  if (NARROW.matches) {
    result.scrollIntoView({ behavior: behavior, block: "start" });
    return;
  }
  const by = Math.min(top - window.innerHeight * 0.6, pad.getBoundingClientRect().top - 8);
  if (by > 0) window.scrollBy({ top: by, behavior: behavior });
}

function listOf(names) {
  return names.length < 2 ? names.join("") : names.slice(0, -1).join(", ") + " or " + names[names.length - 1];
}

// kind: "char" or "word" (a word of one character is still shown as a word).
export function showCharacters(items, text, kind) {
  const result = $("result");
  result.hidden = false;
  $("readings").hidden = true; // a word's readings: words.js shows them again for a word
  result.dataset.kind = items.length > 1 || kind === "word" ? "word" : "char";
  result.dataset.submissionId = items.length === 1 ? items[0].id : "";
  const doubtful = items.map(unsure);
  const unsureCount = doubtful.filter(Boolean).length;
  $("result-lead").textContent = !unsureCount ? "It looks like"
    : items.length === 1 ? "The model is not sure. Perhaps"
    : "The model is not sure of " + (unsureCount === items.length ? "any" : unsureCount) + " of these " + items.length + " characters. Perhaps";
  $("prediction").textContent = text;
  $("styled").textContent = text;
  const list = $("characters");
  list.replaceChildren();
  items.forEach((item, i) => list.appendChild(characterCard(item, i, items.length)));
  applyFont();
  bringIntoView(result);
  const first = items[0];
  if (items.length === 1 && unsureCount) {
    const guesses = first.top_k.slice(0, 3).map((p) => p.label + " (" + probability(p.probability) + ")");
    announce("The model is not sure: perhaps " + listOf(guesses) + ". Which is it? Choose it in the correction picker.");
  } else if (items.length === 1 && first.top_k && first.top_k.length) {
    announce("It looks like " + text + ", " + probability(first.top_k[0].probability) + " sure.");
  } else {
    announce("Recognised " + items.length + " characters: " + text + (unsureCount ? ". The model is not sure of " + unsureCount + " of them." : ""));
  }
  // Ask, rather than tell: the first doubtful character's picker takes the focus (without
  // scrolling: bringIntoView has chosen what is on screen).
  const ask = doubtful.indexOf(true);
  if (ask >= 0) $("fix-" + ask).focus({ preventScroll: true });
}

// ---- fonts -------------------------------------------------------------------

// The chooser's options keep their names (each in its own font); the answer is shown in the
// chosen font beside them.
function applyFont() {
  const chosen = document.querySelector('input[name="font"]:checked').value;
  $("styled").className = "styled " + chosen;
  document.querySelectorAll(".styled-char").forEach((el) => { el.className = "char styled-char " + chosen; });
  try { localStorage.setItem("font", chosen); } catch (e) { /* private mode */ }
}
try {
  const saved = localStorage.getItem("font");
  const radio = saved && document.querySelector('input[name="font"][value="' + saved + '"]');
  if (radio) radio.checked = true;
} catch (e) { /* private mode */ }
document.querySelectorAll('input[name="font"]').forEach((r) => r.addEventListener("change", applyFont));

// ---- recent --------------------------------------------------------------

export function showRecent(submissions) {
  const list = $("recent");
  list.replaceChildren();
  submissions.forEach((s) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const text = s.status === "predicted" ? label(s) + (s.correction ? " \u2192 " + s.correction.label : "") : s.status;
    button.setAttribute("aria-label", "Show drawing read as " + text);
    const img = document.createElement("img");
    img.src = image28(s);
    img.alt = "";
    const caption = document.createElement("span");
    caption.textContent = text;
    button.append(img, caption);
    button.addEventListener("click", () => { if (s.status === "predicted") showCharacters([s], label(s), "char"); });
    li.appendChild(button);
    list.appendChild(li);
  });
}
