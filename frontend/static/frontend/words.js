// One character or a word: the canvas's size and hint, and a word's answer (its best readings
// in context, one card per character, with the boxes where the server split the drawing).
import { $, FetchError, probability } from "./common.js";
import { Refused, saveCorrection } from "./api.js";
import { drawBoxes, resize, strokeCount } from "./canvas.js";
import { announce, label, say, showCharacters } from "./render.js";

const SIZES = { char: [280, 280], word: [840, 280], wordNarrow: [560, 280] };
const HINTS = {
  char: "Write one character, large, in the middle of the square.",
  word: "Write a short word from left to right, with a little space between the characters.",
};
let mode = "char";

export const currentMode = () => mode;

export function setMode(next) {
  mode = next;
  resize(next === "char" ? SIZES.char : window.innerWidth < 600 ? SIZES.wordNarrow : SIZES.word);
  document.body.dataset.mode = next;
  $("pad-hint").textContent = HINTS[next];
  say("");
  $("result").hidden = true;
  $("readings").hidden = true;
}

// What a character reads as now: its stored correction, else the model's answer.
const current = (item) => (item.correction ? item.correction.label : label(item));

// Picking a reading corrects, one by one through the per-character path, the characters
// where it differs from what they read as now; the cards' pickers show what was stored.
async function pick(reading, items, button) {
  const message = $("reading-message");
  const differing = items.map((item, i) => [item, i]).filter(([item, i]) => current(item) !== reading.text[i]);
  document.querySelectorAll("#reading-list button").forEach((b) => { b.disabled = true; });
  message.textContent = differing.length ? "Saving\u2026" : "";
  try {
    for (const [item, i] of differing) {
      item.correction = await saveCorrection(item, reading.text[i]);
      const form = document.querySelectorAll(".char-card .fix")[i];
      if (form) {
        form.dataset.saved = item.correction.label;
        form.querySelector("select").value = item.correction.label;
        form.querySelector(".fix-message").textContent = "Stored \u201c" + item.correction.label + "\u201d for review.";
      }
    }
    document.querySelectorAll("#reading-list button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    $("prediction").textContent = reading.text;
    $("styled").textContent = reading.text;
    message.textContent = differing.length
      ? "Thanks: \u201c" + reading.text + "\u201d stored, " + differing.length + (differing.length === 1 ? " character" : " characters") + " corrected for review."
      : "\u201c" + reading.text + "\u201d is what the characters already read as.";
    announce(message.textContent);
  } catch (err) {
    message.textContent = err instanceof Refused && err.status === 429 ? "Too many requests: try again in " + (err.retryAfter || 10) + " seconds."
      : err instanceof Refused || err instanceof FetchError ? (err.message || "Could not store the correction.") : String(err);
  } finally {
    document.querySelectorAll("#reading-list button").forEach((b) => { b.disabled = false; });
  }
}

function showReadings(readings, items) {
  const box = $("readings");
  const list = $("reading-list");
  list.replaceChildren();
  $("reading-message").textContent = "";
  const usable = readings.filter((r) => r.text.length === items.length);
  box.hidden = !usable.length;
  usable.forEach((reading, i) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reading";
    button.dataset.text = reading.text;
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-label", "Pick the reading " + reading.text.split("").join(" ") + " (" + probability(reading.score) + ")" + (i ? "" : ", the best"));
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = probability(reading.score);
    button.append(reading.text, share);
    button.addEventListener("click", () => pick(reading, items, button));
    li.appendChild(button);
    list.appendChild(li);
  });
}

export function showWord(word) {
  const items = word.characters || [];
  if (!items.length) { say("No characters were found in that drawing. Write a little larger, with space between the characters."); return; }
  $("result").dataset.wordId = word.id;
  const readings = word.readings || [];
  // The best reading in context heads the answer; each card keeps its own character's guesses.
  const best = readings.length && readings[0].text.length === items.length ? readings[0].text : word.text || items.map(label).join("");
  showCharacters(items, best, "word");
  showReadings(readings, items);
  // Only over a drawing: an upload's boxes are in the photo's pixels, not the canvas's.
  if (word.source === "canvas" && strokeCount()) drawBoxes(word.boxes || [], word.width || $("overlay").width, word.height || $("overlay").height);
}

document.querySelectorAll('input[name="mode"]').forEach((radio) => {
  radio.addEventListener("change", () => { if (radio.checked) setMode(radio.value); });
});
