// The drawing page: pointer events on a canvas, the REST API for everything else.
(function () {
  "use strict";

  const API = "/api/v1";
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const widthInput = document.getElementById("width");
  const message = document.getElementById("message");
  const predictButton = document.getElementById("predict");
  let strokes = []; // [{width, points: [[x, y, t], ...]}]
  let current = null;
  let startedAt = null;
  let currentSubmission = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function say(text) { message.textContent = text || ""; }

  // ---- drawing -------------------------------------------------------------

  function point(event) {
    const rect = pad.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * pad.width) / rect.width;
    const y = ((event.clientY - rect.top) * pad.height) / rect.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10, Math.round(performance.now() - startedAt)];
  }

  function drawStroke(stroke) {
    ctx.lineWidth = stroke.width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    const pts = stroke.points;
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0], pts[0][1], stroke.width / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
    ctx.stroke();
  }

  function redraw() {
    // Transparent background: the PNG carries the ink in alpha, as ml.preprocess expects.
    ctx.clearRect(0, 0, pad.width, pad.height);
    strokes.forEach(drawStroke);
  }

  pad.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    if (startedAt === null) startedAt = performance.now();
    current = { width: Number(widthInput.value), points: [point(event)] };
    strokes.push(current);
    redraw();
  });

  pad.addEventListener("pointermove", function (event) {
    if (!current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    (events.length ? events : [event]).forEach(function (e) { current.points.push(point(e)); });
    redraw();
  });

  function endStroke() {
    if (!current) return;
    current = null;
    if (document.getElementById("auto").checked) predict();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  document.getElementById("undo").addEventListener("click", function () { strokes.pop(); redraw(); });
  document.getElementById("clear").addEventListener("click", function () {
    strokes = []; startedAt = null; redraw(); say("");
  });

  // ---- talking to the API --------------------------------------------------

  async function send(formData) {
    predictButton.disabled = true;
    say("");
    try {
      const response = await fetch(API + "/submissions", {
        method: "POST",
        body: formData,
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        say(body.detail || "The server refused the image (" + response.status + ").");
        return;
      }
      let submission = body;
      // 202: the worker has not finished yet; poll the URL it gave us.
      for (let i = 0; submission.status === "pending" && i < 120; i++) {
        await new Promise(function (r) { setTimeout(r, 500); });
        submission = await (await fetch(submission.url, { credentials: "same-origin" })).json();
      }
      show(submission);
      loadRecent();
    } catch (err) {
      say("Network error: " + err);
    } finally {
      predictButton.disabled = false;
    }
  }

  function predict() {
    if (!strokes.length) { say("Draw a character first."); return; }
    pad.toBlob(function (blob) {
      const data = new FormData();
      data.append("image", blob, "drawing.png");
      data.append("strokes", JSON.stringify(strokes.map(function (s) { return s.points; })));
      data.append("source", "canvas");
      send(data);
    }, "image/png");
  }
  predictButton.addEventListener("click", predict);

  document.getElementById("upload").addEventListener("change", function (event) {
    const file = event.target.files[0];
    if (!file) return;
    const data = new FormData();
    data.append("image", file, file.name);
    data.append("source", "upload");
    send(data);
    event.target.value = "";
  });

  // ---- showing results -----------------------------------------------------

  function show(submission) {
    currentSubmission = submission;
    const result = document.getElementById("result");
    result.hidden = false;
    result.dataset.submissionId = submission.id;
    if (submission.status === "failed") {
      say("Prediction failed: " + submission.error);
      return;
    }
    if (submission.status !== "predicted") { say("Still waiting for the worker; try again shortly."); return; }
    const label = submission.predicted_label;
    document.getElementById("prediction").textContent = label;
    document.querySelectorAll(".fonts span").forEach(function (span) { span.textContent = label; });
    document.getElementById("input28").src = submission.input_image;
    const list = document.getElementById("topk");
    list.replaceChildren();
    submission.top_k.forEach(function (p) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = p.label;
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = (p.probability * 100).toFixed(1) + "%";
      bar.appendChild(fill);
      const pct = document.createElement("span");
      pct.textContent = (p.probability * 100).toFixed(1) + "%";
      li.append(name, bar, pct);
      list.appendChild(li);
    });
    document.querySelectorAll("#labels button").forEach(function (b) { b.classList.remove("chosen"); });
    document.getElementById("correction-message").textContent = "";
  }

  document.getElementById("labels").addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-label]");
    if (!button || !currentSubmission) return;
    const response = await fetch(currentSubmission.url + "/correction", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
      body: JSON.stringify({ label: button.dataset.label }),
    });
    const body = await response.json().catch(function () { return {}; });
    const out = document.getElementById("correction-message");
    if (response.ok) {
      document.querySelectorAll("#labels button").forEach(function (b) { b.classList.remove("chosen"); });
      button.classList.add("chosen");
      out.textContent = "Thanks: stored \u201c" + body.label + "\u201d for review.";
      loadRecent();
    } else {
      out.textContent = body.detail || "Could not store the correction.";
    }
  });

  async function loadRecent() {
    const response = await fetch(API + "/submissions?page_size=12", { credentials: "same-origin" });
    if (!response.ok) return;
    const page = await response.json();
    const list = document.getElementById("recent");
    list.replaceChildren();
    page.results.forEach(function (s) {
      const li = document.createElement("li");
      const img = document.createElement("img");
      img.src = s.input_image;
      img.alt = "submission " + s.id;
      const caption = document.createElement("span");
      caption.textContent = s.status === "predicted" ? s.predicted_label + (s.correction ? " \u2192 " + s.correction.label : "") : s.status;
      li.append(img, caption);
      li.addEventListener("click", function () { show(s); });
      list.appendChild(li);
    });
  }

  loadRecent();
})();
