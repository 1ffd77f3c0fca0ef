// The demo page's script: it draws, posts the pad's PNG, and shows the numbers the server
// sends back. None of the model's math is here: every number comes from /api/predict,
// /api/templates or /api/test/{i}, computed by scratchlr itself.
"use strict";

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const statusLine = document.getElementById("status");
let palette = null;        // the maps' colours, blue (-) to red (+), from /api/templates
let testImages = 0;        // how many test images /api/test/{i} has
let drawing = null;        // the pointer drawing now, and where it was
let sent = 0;              // requests sent (and clears); only the latest one's answer is shown
let inked = false;         // whether the pad has a stroke on it
let ready = false;         // whether the templates (and the palette) have come

function clearPad() {
  pen.fillStyle = "#000";  // a light digit on black, as MNIST's
  pen.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function where(event) {
  const box = pad.getBoundingClientRect();
  const x = (event.clientX - box.left) * pad.width / box.width;
  const y = (event.clientY - box.top) * pad.height / box.height;
  return [x, y];
}

const WIDTH = 18;  // the pen's width, in pad pixels

function stroke(from, to) {
  pen.strokeStyle = "#fff";
  pen.lineWidth = WIDTH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from[0], from[1]);
  pen.lineTo(to[0], to[1]);
  pen.stroke();
  inked = true;
}

function dot(at) {  // a tap: a line of no length draws nothing, so a disc
  pen.fillStyle = "#fff";
  pen.beginPath();
  pen.arc(at[0], at[1], WIDTH / 2, 0, 2 * Math.PI);
  pen.fill();
  inked = true;
}

pad.addEventListener("pointerdown", (event) => {
  if (!ready || event.button !== 0) return;  // the primary button, pen tip or finger only
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = { id: event.pointerId, at: where(event) };
  dot(drawing.at);
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing || event.pointerId !== drawing.id) return;
  const at = where(event);
  stroke(drawing.at, at);
  drawing.at = at;
});

function strokeEnds(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  drawing = null;
  const number = ++sent;  // this drawing's request; a Clear or a newer stroke supersedes it
  if (inked) pad.toBlob((png) => { if (number === sent) predict(png, number); }, "image/png");
}
pad.addEventListener("pointerup", strokeEnds);
pad.addEventListener("pointercancel", strokeEnds);

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

// The JSON answer; an Error with the server's message if it refused.
async function ask(url, options) {
  const response = await fetch(url, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

async function predict(png, number) {
  say("Thinking\u2026");
  try {
    const request = { method: "POST", headers: { "Content-Type": "image/png" }, body: png };
    const answer = await ask("/api/predict", request);
    if (number === sent) { show(answer); say("Draw again, or clear the pad."); }
  } catch (error) {
    if (number === sent) say(error.message, true);  // an old request's failure is not news
  }
}

async function testImage() {
  clearPad();
  const number = ++sent;
  const i = Math.floor(Math.random() * testImages);
  try {
    const answer = await ask("/api/test/" + i);
    if (number === sent) {
      show(answer);
      const verdict = answer.label === answer.prediction ? " (right)." : " (wrong).";
      say("Test image " + answer.index + ": a " + answer.label + "; the model says " +
          answer.prediction + verdict);
    }
  } catch (error) {
    if (number === sent) say(error.message, true);
  }
}

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  sent++;  // an answer on its way is no longer wanted
  say("Draw a digit.");
});
document.getElementById("test").addEventListener("click", testImage);

// t in [0, 1] -> the palette's colour there, interpolated linearly between its stops.
function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (palette.length - 1);
  const k = Math.min(Math.floor(x), palette.length - 2);
  const f = x - k;
  return palette[k].map((a, j) => Math.round(a + f * (palette[k + 1][j] - a)));
}

function hex(text) {
  return [1, 3, 5].map((i) => parseInt(text.slice(i, i + 2), 16));
}

function paint(canvas, grid, scale) {  // a 28x28 grid: grey in [0, 1], or a map in [-scale, scale]
  const image = canvas.getContext("2d").createImageData(28, 28);
  grid.flat().forEach((v, i) => {
    const rgb = scale ? colour((v / scale + 1) / 2) : [0, 1, 2].map(() => Math.round(255 * v));
    image.data.set([...rgb, 255], 4 * i);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function signed(v) {
  return (v < 0 ? "\u2212 " : "+ ") + Math.abs(v).toFixed(2);
}

function show(answer) {
  paint(document.getElementById("input"), answer.input);
  document.getElementById("prediction").textContent = String(answer.prediction);
  const rows = answer.probabilities.map((p, c) => {
    const row = document.createElement("tr");
    if (c === answer.prediction) row.className = "winner";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (100 * p).toFixed(1) + "%";
    const cells = [String(c), bar, p.toFixed(4), answer.logits[c].toFixed(3)];
    cells.forEach((content, j) => {
      const cell = document.createElement("td");
      if (j === 1) {
        cell.className = "bar-cell";
        cell.append(content);
      } else {
        cell.textContent = content;
      }
      if (j >= 2) cell.classList.add("num");
      row.append(cell);
    });
    return row;
  });
  document.querySelector("#scores tbody").replaceChildren(...rows);
  answer.contributions.forEach((part, k) => {
    paint(document.getElementById("why" + k), part.map, answer.scale);
    document.getElementById("why" + k + "-text").textContent = "class " + part.class + ": pixels " +
      part.pixels.toFixed(2) + " " + signed(part.bias) + " (b) = logit " + part.logit.toFixed(2);
  });
  document.querySelectorAll(".template").forEach((box, c) => {
    box.classList.toggle("winner", c === answer.prediction);
  });
}

async function start() {
  clearPad();
  try {
    const response = await fetch("/api/templates");
    const answer = await response.json();
    palette = answer.palette.map(hex);
    testImages = answer.test_images;
    const boxes = answer.templates.map((grid, c) => {
      const box = document.createElement("div");
      box.className = "template";
      const canvas = document.createElement("canvas");
      canvas.className = "pixels";
      canvas.width = canvas.height = 28;
      paint(canvas, grid, answer.scale);
      box.append(canvas, document.createElement("br"), "class " + c);
      return box;
    });
    document.getElementById("template-grid").replaceChildren(...boxes);
    document.getElementById("test").disabled = testImages === 0;
    ready = true;
    say("Draw a digit.");
  } catch (error) {
    say("Cannot reach the server: " + error.message, true);
  }
}

start();
