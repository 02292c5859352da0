// The drawing page: pointer events on a canvas, the REST API for everything else.
// Plain JS served by the site: no build step, no CDN.
(function () {
  "use strict";

  const API = "/api/v1";
  // Tests may shorten these with window.HANDWRITING_CONFIG (set before this script runs).
  // The first prediction in a fresh process loads TensorFlow and the model: tens of seconds
  // on a busy 2-core machine, hence the generous request deadline.
  const CONFIG = Object.assign(
    { timeoutMs: 45000, pollTries: 20, pollDelayMs: 500, pollMaxDelayMs: 3000, wordPauseMs: 1500 },
    window.HANDWRITING_CONFIG || {}
  );
  const LABELS = Array.from(JSON.parse(document.getElementById("labels-data").textContent));
  const GROUPS = JSON.parse(document.getElementById("lookalike-data").textContent);
  const GROUP_OF = {};
  GROUPS.forEach(function (group, i) { group.forEach(function (label) { GROUP_OF[label] = i; }); });
  const SIZES = { char: [280, 280], word: [840, 280], wordNarrow: [560, 280] };

  const $ = function (id) { return document.getElementById(id); };
  const pad = $("pad");
  const overlay = $("overlay");
  const ctx = pad.getContext("2d");
  const widthInput = $("width");
  const predictButton = $("predict");
  let mode = "char";
  let strokes = []; // [{width, pen, points: [[x, y, t], ...], pressures: [...]}]
  let current = null;
  let startedAt = null;
  let busy = false;
  let coolDownUntil = 0;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function say(text, kind) {
    const message = $("message");
    message.textContent = text || "";
    message.dataset.kind = kind || "error";
  }
  function announce(text) { $("announce").textContent = text; }
  function pct(p) { return (p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%"; }

  // ---- drawing -------------------------------------------------------------

  function point(event) {
    const rect = pad.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * pad.width) / rect.width;
    const y = ((event.clientY - rect.top) * pad.height) / rect.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10, Math.round(performance.now() - startedAt)];
  }

  // A pen's pressure varies the width (0.5 is what a mouse or finger reports).
  function widthAt(stroke, i) {
    if (!stroke.pen) return stroke.width;
    const p = stroke.pressures[i] || 0.5;
    return Math.max(2, stroke.width * (0.4 + 1.2 * p));
  }

  function drawStroke(stroke) {
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    const pts = stroke.points;
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0], pts[0][1], widthAt(stroke, 0) / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    if (!stroke.pen) {
      ctx.lineWidth = stroke.width;
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
      ctx.stroke();
      return;
    }
    for (let i = 1; i < pts.length; i++) {
      ctx.lineWidth = (widthAt(stroke, i - 1) + widthAt(stroke, i)) / 2;
      ctx.beginPath();
      ctx.moveTo(pts[i - 1][0], pts[i - 1][1]);
      ctx.lineTo(pts[i][0], pts[i][1]);
      ctx.stroke();
    }
  }

  function redraw() {
    // Transparent background: the PNG carries the ink in alpha, as ml.preprocess expects.
    ctx.clearRect(0, 0, pad.width, pad.height);
    strokes.forEach(drawStroke);
    pad.dataset.strokes = String(strokes.length);
  }

  function clearBoxes() { overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height); }

  pad.addEventListener("pointerdown", function (event) {
    if (event.button !== undefined && event.button > 0) return;
    event.preventDefault();
    clearTimeout(autoTimer);
    pad.setPointerCapture(event.pointerId);
    pad.focus({ preventScroll: true });
    if (startedAt === null) startedAt = performance.now();
    clearBoxes();
    current = { width: Number(widthInput.value), pen: event.pointerType === "pen", points: [point(event)], pressures: [event.pressure] };
    strokes.push(current);
    redraw();
  });

  pad.addEventListener("pointermove", function (event) {
    if (!current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (events.length ? events : [event]).forEach(function (e) {
      current.points.push(point(e));
      current.pressures.push(e.pressure);
    });
    redraw();
  });

  // "Predict when the pen lifts": at once for one character; for a word, once the pen has
  // rested for a moment, or it would predict after the first letter.
  let autoTimer = null;
  function endStroke() {
    if (!current) return;
    current = null;
    if (!$("auto").checked) return;
    if (mode === "char") predict();
    else autoTimer = setTimeout(predict, CONFIG.wordPauseMs);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  // Belt and braces for old mobile browsers without touch-action support.
  pad.addEventListener("touchmove", function (event) { event.preventDefault(); }, { passive: false });

  function undo() { strokes.pop(); redraw(); clearBoxes(); }
  function clearPad() { strokes = []; startedAt = null; redraw(); clearBoxes(); say(""); }
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clearPad);

  function setMode(next) {
    mode = next;
    const size = next === "char" ? SIZES.char : window.innerWidth < 600 ? SIZES.wordNarrow : SIZES.word;
    [pad, overlay].forEach(function (c) { c.width = size[0]; c.height = size[1]; });
    document.body.dataset.mode = next;
    $("pad-hint").textContent = next === "char"
      ? "Write one character, large, in the middle of the square."
      : "Write a short word from left to right, with a little space between the characters.";
    clearPad();
    $("result").hidden = true;
  }
  document.querySelectorAll('input[name="mode"]').forEach(function (radio) {
    radio.addEventListener("change", function () { if (radio.checked) setMode(radio.value); });
  });

  // ---- keyboard --------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
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

  // ---- talking to the API --------------------------------------------------

  class FetchError extends Error {}

  // Every request has a deadline: the page never waits for ever on a silent server.
  async function request(url, options) {
    const controller = new AbortController();
    const timer = setTimeout(function () { controller.abort(); }, CONFIG.timeoutMs);
    try {
      const response = await fetch(url, Object.assign({ credentials: "same-origin", signal: controller.signal }, options || {}));
      const body = await response.json().catch(function () { return {}; });
      return { response: response, body: body };
    } catch (err) {
      if (err.name === "AbortError") {
        throw new FetchError("The server did not answer within " + Math.round(CONFIG.timeoutMs / 1000) + " seconds. Please try again.");
      }
      throw new FetchError("Could not reach the server: check your connection and try again.");
    } finally {
      clearTimeout(timer);
    }
  }

  function retryAfterSeconds(response) {
    const value = response.headers.get("Retry-After");
    if (!value) return null;
    if (/^\d+$/.test(value.trim())) return Number(value);
    const date = Date.parse(value);
    return isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }

  function coolDown(seconds) {
    coolDownUntil = Date.now() + seconds * 1000;
    predictButton.disabled = true;
    const tick = function () {
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

  function refusal(response, body) {
    if (response.status === 429) {
      coolDown(retryAfterSeconds(response) || 10);
      return null;
    }
    if (body && body.code === "blank_image") return "The server found no ink in that image: " + body.detail;
    if (response.status >= 500) return "The server had a problem (" + response.status + "). Please try again in a moment.";
    return (body && body.detail) || "The server refused the image (" + response.status + ").";
  }

  function working(text) {
    const box = $("working");
    box.hidden = !text;
    if (text) $("working-text").textContent = text;
  }

  const sleep = function (ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); };

  // 202: the worker has not finished yet. Poll the Location it gave, a bounded number of times.
  async function poll(url, item) {
    let delay = CONFIG.pollDelayMs;
    for (let i = 1; i <= CONFIG.pollTries; i++) {
      working("Still working on it\u2026 (check " + i + " of " + CONFIG.pollTries + ")");
      await sleep(delay);
      delay = Math.min(delay * 1.5, CONFIG.pollMaxDelayMs);
      const got = await request(url, { headers: { Accept: "application/json" } });
      if (got.response.status === 429) { await sleep((retryAfterSeconds(got.response) || 2) * 1000); continue; }
      if (!got.response.ok) throw new FetchError(refusal(got.response, got.body) || "Could not fetch the result.");
      item = got.body;
      if (item.status !== "pending") return item;
    }
    return item;
  }

  async function send(formData) {
    if (busy) return;
    if (Date.now() < coolDownUntil) return;
    const endpoint = mode === "word" ? API + "/words" : API + "/submissions";
    busy = true;
    predictButton.disabled = true;
    say("");
    working("Reading your handwriting\u2026");
    try {
      const got = await request(endpoint, {
        method: "POST",
        body: formData,
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      });
      if (!got.response.ok) {
        const text = refusal(got.response, got.body);
        if (text) say(text);
        return;
      }
      let item = got.body;
      if (item.status === "pending") {
        item = await poll(got.response.headers.get("Location") || item.url, item);
      }
      if (item.status === "pending") {
        say("The server is still working on it. It will appear under \u201cYour recent drawings\u201d when it is done.", "info");
        setTimeout(loadRecent, 5000);
        return;
      }
      if (item.status === "failed") {
        say("The prediction failed: " + (item.error || "the server gave no reason") + ". Please try again.");
        return;
      }
      if (mode === "word") showWord(item); else showCharacters([item], label(item));
      loadRecent();
    } catch (err) {
      say(err instanceof FetchError ? err.message : "Something went wrong: " + err);
    } finally {
      busy = false;
      working("");
      predictButton.disabled = Date.now() < coolDownUntil;
    }
  }

  function predict() {
    if (!strokes.length) {
      say(mode === "word" ? "The canvas is empty: write a word first." : "The canvas is empty: draw a character first.");
      pad.focus();
      return;
    }
    pad.toBlob(function (blob) {
      const data = new FormData();
      data.append("image", blob, "drawing.png");
      data.append("strokes", JSON.stringify(strokes.map(function (s) { return s.points; })));
      data.append("source", "canvas");
      send(data);
    }, "image/png");
  }
  predictButton.addEventListener("click", predict);

  $("upload").addEventListener("change", function (event) {
    const file = event.target.files[0];
    if (!file) return;
    const data = new FormData();
    data.append("image", file, file.name);
    data.append("source", "upload");
    send(data);
    event.target.value = "";
  });

  // ---- showing results -----------------------------------------------------

  // The word API's characters and the submission API use slightly different names; accept both.
  function label(item) { return item.predicted_label || item.label || ""; }
  function image28(item) { return item.input_image || item.input28 || ""; }

  // "o, O and 0 look almost the same in handwriting": the top answers that share a look-alike
  // group with the first one and that the model gives a real chance. Returns a <p> or null.
  function lookalikeNote(item) {
    const top = item.top_k || [];
    if (!top.length || GROUP_OF[top[0].label] === undefined) return null;
    const group = GROUP_OF[top[0].label];
    const close = top.filter(function (p, i) { return GROUP_OF[p.label] === group && (i === 0 || p.probability >= 0.03); });
    if (close.length < 2) return null;
    const names = close.map(function (p) { return p.label; });
    const sameLetter = names.every(function (n) { return n.toLowerCase() === names[0].toLowerCase() && /[a-z]/i.test(n); });
    const note = document.createElement("p");
    note.className = "lookalike";
    // Each character in a font where l, I and 1 differ, or the note itself would be ambiguous.
    names.forEach(function (n, i) {
      if (i > 0) note.append(i === names.length - 1 ? " and " : ", ");
      const glyph = document.createElement("b");
      glyph.className = "glyph";
      glyph.textContent = n;
      note.appendChild(glyph);
    });
    note.append(sameLetter
      ? " are the same letter in lower and upper case and differ mostly in size, which one character on its own does not show; the model is unsure between them ("
      : " look almost the same in handwriting; the model is unsure between them (");
    close.forEach(function (p, i) {
      const glyph = document.createElement("b");
      glyph.className = "glyph";
      glyph.textContent = p.label;
      note.append(i ? ", " : "", glyph, " " + pct(p.probability));
    });
    note.append(").");
    return note;
  }

  function bars(item) {
    const list = document.createElement("ol");
    list.className = "bars";
    list.setAttribute("aria-label", "Five best guesses");
    (item.top_k || []).forEach(function (p) {
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
      value.textContent = pct(p.probability);
      li.append(name, bar, value);
      list.appendChild(li);
    });
    return list;
  }

  function correctionPicker(item, index, count) {
    const form = document.createElement("form");
    form.className = "fix";
    const id = "fix-" + index;
    const lab = document.createElement("label");
    lab.htmlFor = id;
    lab.textContent = count > 1 ? "Character " + (index + 1) + " was really" : "Wrong? It was really";
    const select = document.createElement("select");
    select.id = id;
    select.name = "label";
    const ranked = (item.top_k || []).map(function (p) { return p.label; });
    const best = document.createElement("optgroup");
    best.label = "The model's guesses";
    ranked.forEach(function (l) {
      const o = new Option(l + "  (" + pct(item.top_k[ranked.indexOf(l)].probability) + ")", l);
      best.appendChild(o);
    });
    const all = document.createElement("optgroup");
    all.label = "Every character";
    LABELS.forEach(function (l) { if (ranked.indexOf(l) < 0) all.appendChild(new Option(l, l)); });
    select.append(best, all);
    const current = item.correction ? item.correction.label : ranked[1] || ranked[0];
    if (current) select.value = current;
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Save correction";
    button.setAttribute("aria-label", (count > 1 ? "Save the correction of character " + (index + 1) : "Save the correction"));
    const out = document.createElement("p");
    out.className = "fix-message";
    out.setAttribute("role", "status");
    out.setAttribute("aria-live", "polite");
    if (item.correction) out.textContent = "Stored \u201c" + item.correction.label + "\u201d for review.";
    form.append(lab, select, button, out);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      correct(item, select.value, button, out, form);
    });
    return form;
  }

  async function correct(item, value, button, out, form) {
    button.disabled = true;
    out.textContent = "Saving\u2026";
    try {
      const url = item.url || API + "/submissions/" + item.id;
      const got = await request(url + "/correction", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
        body: JSON.stringify({ label: value }),
      });
      if (got.response.ok) {
        form.dataset.saved = got.body.label;
        out.textContent = "Thanks: stored \u201c" + got.body.label + "\u201d for review.";
        announce("Correction stored: " + got.body.label);
        loadRecent();
      } else if (got.response.status === 429) {
        out.textContent = "Too many requests: try again in " + (retryAfterSeconds(got.response) || 10) + " seconds.";
      } else {
        out.textContent = got.body.detail || "Could not store the correction (" + got.response.status + ").";
      }
    } catch (err) {
      out.textContent = err instanceof FetchError ? err.message : String(err);
    } finally {
      button.disabled = false;
    }
  }

  function characterCard(item, index, count) {
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
    const note = lookalikeNote(item);
    if (note) li.appendChild(note);
    li.appendChild(correctionPicker(item, index, count));
    return li;
  }

  function showCharacters(items, text) {
    const result = $("result");
    result.hidden = false;
    result.dataset.kind = items.length > 1 || mode === "word" ? "word" : "char";
    result.dataset.submissionId = items.length === 1 ? items[0].id : "";
    $("prediction").textContent = text;
    $("styled").textContent = text;
    document.querySelectorAll("#styles .sample").forEach(function (s) { s.textContent = text || s.textContent; });
    const list = $("characters");
    list.replaceChildren();
    items.forEach(function (item, i) { list.appendChild(characterCard(item, i, items.length)); });
    applyFont();
    // On a phone the answer lands below the canvas: bring it into view (focus stays put).
    if (result.getBoundingClientRect().top > window.innerHeight * 0.8) {
      result.scrollIntoView({ behavior: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth", block: "start" });
    }
    const first = items[0];
    announce(items.length === 1 && first.top_k && first.top_k.length
      ? "It looks like " + text + ", " + pct(first.top_k[0].probability) + " sure."
      : "Recognised " + items.length + " characters: " + text);
  }

  function showWord(word) {
    const items = word.characters || [];
    if (!items.length) { say("No characters were found in that drawing. Write a little larger, with space between the characters."); return; }
    $("result").dataset.wordId = word.id;
    showCharacters(items, word.text || items.map(label).join(""));
    // Only over a drawing: an upload's boxes are in the photo's pixels, not the canvas's.
    if (word.source === "canvas" && strokes.length) drawBoxes(word.boxes || [], word.width || overlay.width, word.height || overlay.height);
  }

  // Where the server split the word: numbered boxes over the drawing.
  function drawBoxes(boxes, width, height) {
    const o = overlay.getContext("2d");
    o.clearRect(0, 0, overlay.width, overlay.height);
    o.lineWidth = 2;
    o.font = "bold 16px system-ui, sans-serif";
    const sx = overlay.width / width, sy = overlay.height / height;
    boxes.map(function (b) { return [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]; }).forEach(function (b, i) {
      o.strokeStyle = "rgba(11, 87, 208, 0.85)";
      o.setLineDash([6, 4]);
      o.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
      o.setLineDash([]);
      o.fillStyle = "#0b57d0";
      o.fillRect(b[0], Math.max(0, b[1] - 20), 20, 20);
      o.fillStyle = "#fff";
      o.fillText(String(i + 1), b[0] + 5, Math.max(15, b[1] - 5));
    });
  }

  // ---- fonts -------------------------------------------------------------------

  function applyFont() {
    const chosen = document.querySelector('input[name="font"]:checked').value;
    const styled = $("styled");
    styled.className = "styled " + chosen;
    document.querySelectorAll(".styled-char").forEach(function (el) { el.className = "char styled-char " + chosen; });
    try { localStorage.setItem("font", chosen); } catch (e) { /* private mode */ }
  }
  try {
    const saved = localStorage.getItem("font");
    const radio = saved && document.querySelector('input[name="font"][value="' + saved + '"]');
    if (radio) radio.checked = true;
  } catch (e) { /* private mode */ }
  document.querySelectorAll('input[name="font"]').forEach(function (r) { r.addEventListener("change", applyFont); });

  // ---- recent --------------------------------------------------------------

  async function loadRecent() {
    let got;
    try {
      got = await request(API + "/submissions?page_size=12", { headers: { Accept: "application/json" } });
    } catch (err) {
      return; // the list is a convenience; the main message already says what failed
    }
    if (!got.response.ok) return;
    const list = $("recent");
    list.replaceChildren();
    got.body.results.forEach(function (s) {
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
      button.addEventListener("click", function () { if (s.status === "predicted") showCharacters([s], label(s)); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  setMode("char");
  loadRecent();
})();
