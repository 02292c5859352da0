// The drawing page: pointer events on a canvas, the REST API for everything else.
// ES modules served by the site as they are: no build step, no CDN. This one wires them
// together: predicting (on demand or when the pen rests), the keyboard, uploads, the recent list.
import { $, FetchError } from "./common.js";
import { CONFIG, Refused, forgetHandwriting, recentSubmissions, submitDrawing } from "./api.js";
import { clearDrawing, drawingBlob, on, pad, strokeCount, strokePoints, undoStroke } from "./canvas.js";
import { label, onCorrected, say, showCharacters, showRecent, working } from "./render.js";
import { currentMode, setMode, showWord } from "./words.js";

const predictButton = $("predict");
let busy = false;
let coolDownUntil = 0;

// ---- "Predict when the pen lifts" ----------------------------------------------
// It waits until the pen has rested for a moment after the last stroke: predicting after
// every stroke sent (and stored) each partial drawing, four for an E. The revision counts the
// drawing's changes, so a stroke lifted while a request is in flight is read once it is done.

let autoTimer = null;
let revision = 0; // bumped by every change to the drawing
let sentRevision = -1; // the revision the last prediction read
let readAgain = false; // the pen rested (or Enter was pressed) while a request was in flight

function cancelAuto() {
  clearTimeout(autoTimer);
  autoTimer = null;
  readAgain = false;
}

function autoPredict() {
  autoTimer = null;
  if (!strokeCount() || revision === sentRevision) return;
  if (busy) { readAgain = true; return; }
  predict();
}

on("strokeStart", cancelAuto); // the drawing is not finished yet
on("strokeEnd", () => {
  revision++;
  if ($("auto").checked) autoTimer = setTimeout(autoPredict, currentMode() === "word" ? CONFIG.wordPauseMs : CONFIG.autoPauseMs);
});

function undo() { cancelAuto(); undoStroke(); revision++; }
function clearPad() { cancelAuto(); clearDrawing(); revision++; say(""); }
$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearPad);
document.querySelectorAll('input[name="mode"]').forEach((radio) => radio.addEventListener("change", () => { cancelAuto(); revision++; }));

// ---- keyboard --------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const tag = event.target.tagName;
  const inField = tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA";
  const onControl = inField || tag === "BUTTON" || tag === "A" || tag === "SUMMARY";
  if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z" && !inField) {
    event.preventDefault();
    undo();
  } else if ((event.key === "Escape" || event.key === "Delete") && !inField) {
    event.preventDefault();
    clearPad();
  } else if (event.key === "Enter" && !onControl && !event.repeat) {
    event.preventDefault();
    predict();
  }
});

// ---- sending -----------------------------------------------------------------

function coolDown(seconds) {
  coolDownUntil = Date.now() + seconds * 1000;
  predictButton.disabled = true;
  const tick = () => {
    const left = Math.ceil((coolDownUntil - Date.now()) / 1000);
    if (left <= 0) {
      predictButton.disabled = busy;
      if ($("message").dataset.kind === "throttled") say("You can try again now.", "info");
      return;
    }
    say("Too many requests: please wait " + left + " second" + (left === 1 ? "" : "s") + " before trying again.", "throttled");
    setTimeout(tick, 1000);
  };
  tick();
}

// What to say when the server refused; null when the cool-down already says it.
function refusal(err) {
  if (err.status === 429) {
    coolDown(err.retryAfter || 10);
    return null;
  }
  if (err.body.code === "blank_image") return "The server found no ink in that image: " + err.body.detail;
  if (err.status >= 500) return "The server had a problem (" + err.status + "). Please try again in a moment.";
  return err.body.detail || "The server refused the image (" + err.status + ").";
}

// The recent list is a convenience: when it cannot be loaded, the page goes on without it (the
// main message already says what failed), and no error escapes as an unhandled rejection.
async function refreshRecent() {
  try {
    showRecent(await recentSubmissions());
  } catch (err) {
    console.warn("The recent drawings could not be loaded:", err.message);
  }
}
onCorrected(refreshRecent);

// "Forget my handwriting": the writer's memory of their corrections goes; the corrections stay.
$("forget-memory").addEventListener("click", async () => {
  const button = $("forget-memory");
  const status = $("memory-status");
  button.disabled = true;
  try {
    const deleted = await forgetHandwriting();
    status.textContent = deleted ? "Forgotten: " + deleted + " corrected drawing" + (deleted === 1 ? "" : "s") + "." : "There was nothing to forget.";
  } catch (err) {
    status.textContent = err instanceof Refused && err.status === 429
      ? "Too many requests: try again in " + (err.retryAfter || 10) + " seconds."
      : "Could not forget: " + err.message;
  } finally {
    button.disabled = false;
  }
});

// makeForm: a function resolving to the FormData, called once the request is really going out.
async function send(kind, makeForm) {
  if (busy || Date.now() < coolDownUntil) return;
  busy = true;
  predictButton.disabled = true;
  say("");
  working("Reading your handwriting\u2026");
  try {
    const item = await submitDrawing(kind, await makeForm(), (i, tries) => working("Still working on it\u2026 (check " + i + " of " + tries + ")"));
    if (item.status === "pending") {
      say("The server is still working on it. It will appear under \u201cYour recent drawings\u201d when it is done.", "info");
      setTimeout(refreshRecent, 5000);
      return;
    }
    if (item.status === "failed") {
      say("The prediction failed: " + (item.error || "the server gave no reason") + ". Please try again.");
      return;
    }
    if (kind === "word") showWord(item); else showCharacters([item], label(item), "char");
    await refreshRecent();
  } catch (err) {
    if (err instanceof Refused) {
      const text = refusal(err);
      if (text) say(text);
    } else {
      say(err instanceof FetchError ? err.message : "Something went wrong: " + err);
    }
  } finally {
    busy = false;
    working("");
    predictButton.disabled = Date.now() < coolDownUntil;
    // The drawing was finished again while this request was out: read it as it is now.
    if (readAgain) {
      readAgain = false;
      if (strokeCount() && revision !== sentRevision) predict();
    }
  }
}

function predict() {
  cancelAuto();
  if (!strokeCount()) {
    say(currentMode() === "word" ? "The canvas is empty: write a word first." : "The canvas is empty: draw a character first.");
    pad.focus();
    return;
  }
  if (Date.now() < coolDownUntil) return;
  // Asked again while a request is out: read the drawing as it is once that one is answered.
  if (busy) { readAgain = true; return; }
  sentRevision = revision;
  // Both taken now, together: toBlob copies the bitmap at once, so a stroke begun while the
  // PNG is encoded is in neither.
  const strokes = JSON.stringify(strokePoints());
  const blob = drawingBlob();
  send(currentMode(), async () => {
    const data = new FormData();
    data.append("image", await blob, "drawing.png");
    data.append("strokes", strokes);
    data.append("source", "canvas");
    return data;
  });
}
predictButton.addEventListener("click", predict);

$("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  cancelAuto();
  const data = new FormData();
  data.append("image", file, file.name);
  data.append("source", "upload");
  send(currentMode(), async () => data);
  event.target.value = "";
});

setMode("char");
refreshRecent();
