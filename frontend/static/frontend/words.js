// One character or a word: the canvas's size and hint, and a word's answer (one card per
// character, with the boxes where the server split the drawing).
import { $ } from "./common.js";
import { drawBoxes, resize, strokeCount } from "./canvas.js";
import { label, say, showCharacters } from "./render.js";

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
}

export function showWord(word) {
  const items = word.characters || [];
  if (!items.length) { say("No characters were found in that drawing. Write a little larger, with space between the characters."); return; }
  $("result").dataset.wordId = word.id;
  showCharacters(items, word.text || items.map(label).join(""), "word");
  // Only over a drawing: an upload's boxes are in the photo's pixels, not the canvas's.
  if (word.source === "canvas" && strokeCount()) drawBoxes(word.boxes || [], word.width || $("overlay").width, word.height || $("overlay").height);
}

document.querySelectorAll('input[name="mode"]').forEach((radio) => {
  radio.addEventListener("change", () => { if (radio.checked) setMode(radio.value); });
});
