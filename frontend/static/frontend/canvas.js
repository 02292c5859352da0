// The drawing: pointer events on the canvas, the strokes they make, and the boxes drawn over it
// where the server split a word.
import { $ } from "./common.js";

export const pad = $("pad");
const overlay = $("overlay");
const ctx = pad.getContext("2d");
const widthInput = $("width");

let strokes = []; // [{width, pen, points: [[x, y, t], ...], pressures: [...]}]
let current = null;
let startedAt = null;
let box = null; // the content box of the stroke being drawn, in client pixels
const listeners = { strokeStart: [], strokeEnd: [] };

export function on(name, callback) { listeners[name].push(callback); }
const emit = (name) => listeners[name].forEach((callback) => callback());

export const strokeCount = () => strokes.length;
// What the API stores: the points of each stroke, [x, y, ms since the first stroke].
export const strokePoints = () => strokes.map((s) => s.points);

// The canvas's pixels span its content box: measured from the border box (getBoundingClientRect),
// a 2 px border put the ink up to 2 px off near the edges.
function contentBox() {
  const rect = pad.getBoundingClientRect();
  const style = getComputedStyle(pad);
  const left = parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft);
  const top = parseFloat(style.borderTopWidth) + parseFloat(style.paddingTop);
  const right = parseFloat(style.borderRightWidth) + parseFloat(style.paddingRight);
  const bottom = parseFloat(style.borderBottomWidth) + parseFloat(style.paddingBottom);
  return { x: rect.left + left, y: rect.top + top, width: rect.width - left - right, height: rect.height - top - bottom };
}

function point(event) {
  const x = ((event.clientX - box.x) * pad.width) / box.width;
  const y = ((event.clientY - box.y) * pad.height) / box.height;
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

export function clearBoxes() { overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height); }

// Where the server split the word: numbered boxes over the drawing.
export function drawBoxes(boxes, width, height) {
  const o = overlay.getContext("2d");
  o.clearRect(0, 0, overlay.width, overlay.height);
  o.lineWidth = 2;
  o.font = "bold 16px system-ui, sans-serif";
  const sx = overlay.width / width, sy = overlay.height / height;
  boxes.map((b) => [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]).forEach((b, i) => {
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

export function undoStroke() { strokes.pop(); redraw(); clearBoxes(); }
export function clearDrawing() { strokes = []; startedAt = null; redraw(); clearBoxes(); }

export function resize([width, height]) {
  [pad, overlay].forEach((c) => { c.width = width; c.height = height; });
  clearDrawing();
}

export const drawingBlob = () => new Promise((resolve) => pad.toBlob(resolve, "image/png"));

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== undefined && event.button > 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  pad.focus({ preventScroll: true });
  if (startedAt === null) startedAt = performance.now();
  box = contentBox();
  clearBoxes();
  current = { width: Number(widthInput.value), pen: event.pointerType === "pen", points: [point(event)], pressures: [event.pressure] };
  strokes.push(current);
  redraw();
  emit("strokeStart");
});

pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  (events.length ? events : [event]).forEach((e) => {
    current.points.push(point(e));
    current.pressures.push(e.pressure);
  });
  redraw();
});

function endStroke() {
  if (!current) return;
  current = null;
  emit("strokeEnd");
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
// Belt and braces for old mobile browsers without touch-action support.
pad.addEventListener("touchmove", (event) => event.preventDefault(), { passive: false });
