// The page's shell and its drawing view. The shell shows one of two views, Train (train.js
// builds it) and Draw, as /api/settings says. The drawing view draws, posts the pad's PNG (or
// a chosen picture), and shows the numbers the server sends back. None of the model's math is
// here: every number comes from /api/predict, /api/templates or /api/test/{i}, computed by
// scratchlr itself, with the weights of the run train.js names in document.body.dataset.run
// (its weights as they are now), or else of the served model.
"use strict";

{  // a block: nothing of the page's is global (train.js runs in the same global scope)
  const pad = document.getElementById("pad");
  const pen = pad.getContext("2d");
  const statusLine = document.getElementById("status");
  const MAX_SIDE = 560;      // a chosen picture's longest side, after scaling down
  const MAX_BYTES = 1 << 20; // the server refuses bodies over 1 MiB
  const WAIT_MS = 15000;     // a request that takes longer than this is given up
  const REPAINT_MS = 250;    // templates are repainted from frames at most this often
  const NOT_ANSWERING = "the server is not answering: is scratchlr serve still running?";
  const NO_MODEL = "no model yet: train one, or serve a model file";
  let palette = null;        // the maps' colours, blue (-) to red (+), from /api/templates
  let testImages = 0;        // how many test images /api/test/{i} has
  let drawing = null;        // the pointer drawing now, and where it was
  let sent = 0;              // requests sent (and clears); only the latest one's answer is shown
  let inked = false;         // whether the pad has a stroke on it
  let ready = false;         // whether the templates (and the palette) have come
  let settings = null;       // /api/settings, or null before it comes (or on a server without it)
  let frame = null;          // the latest scratchlr:frame not yet painted
  let repaint = null;        // the timer that paints it
  let painted = 0;           // frames painted: a templates answer asked for before one is older

  // ---- the shell: which view shows ----

  function showView(name) {
    document.getElementById("train-view").hidden = name !== "train";
    document.getElementById("draw-view").hidden = name !== "draw";
    document.getElementById("show-train").setAttribute("aria-pressed", String(name === "train"));
    document.getElementById("show-draw").setAttribute("aria-pressed", String(name === "draw"));
  }

  document.getElementById("show-train").addEventListener("click", () => showView("train"));
  document.getElementById("show-draw").addEventListener("click", () => showView("draw"));

  async function openView() {
    try {
      settings = await ask("/api/settings");
    } catch (error) {
      return;  // a server without training: the drawing view alone, as the page opened
    }
    document.getElementById("show-train").hidden = !settings.training;
    document.getElementById("views").hidden = !settings.training;  // one view: nothing to choose
    showView(settings.model === null && settings.training ? "train" : "draw");
    if (ready && noModel()) say(NO_MODEL);
  }

  // Whether answers come from zero weights: serve has no model file and no run is chosen.
  function noModel() {
    return settings !== null && settings.model === null && !document.body.dataset.run;
  }

  // url with ?run= when train.js has chosen a run, so the server answers with its weights now.
  function withRun(url) {
    const run = document.body.dataset.run;
    return run ? url + "?run=" + encodeURIComponent(run) : url;
  }

  // ---- the pad ----

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

  // A canvas's PNG as a Blob, now. canvas.toBlob would be the natural call, but Chromium
  // encodes it in an idle period and waits up to 1 s for one: the request left 1005 ms after
  // the stroke. toDataURL encodes at once (a few ms for the pad).
  function png(canvas) {
    const url = canvas.toDataURL("image/png");
    const text = atob(url.slice(url.indexOf(",") + 1));
    const bytes = Uint8Array.from(text, (ch) => ch.charCodeAt(0));
    return new Blob([bytes], { type: "image/png" });
  }

  function strokeEnds(event) {
    if (!drawing || event.pointerId !== drawing.id) return;
    drawing = null;
    if (!inked) return;
    const number = ++sent;  // this drawing's request; a Clear or a newer stroke supersedes it
    predict(png(pad), number, () => "Draw again, or clear the pad.");
  }
  pad.addEventListener("pointerup", strokeEnds);
  pad.addEventListener("pointercancel", strokeEnds);

  // ---- asking the server ----

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  // The JSON answer; an Error with a plain message if the server refused, sent something that
  // is not an answer, or did not answer at all.
  async function ask(url, options) {
    let response;
    try {
      response = await fetch(url, { ...options, signal: AbortSignal.timeout(WAIT_MS) });
    } catch (error) {
      if (error.name === "TimeoutError") {
        throw new Error("the server did not answer in " + WAIT_MS / 1000 + " s");
      }
      throw new Error(NOT_ANSWERING);  // fetch says only "Failed to fetch"
    }
    let answer;
    try {
      answer = await response.json();
    } catch (error) {
      throw new Error("the server's answer was not JSON (HTTP " + response.status + ")");
    }
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  }

  // The answer on screen no longer answers what is on the pad: dimmed until the next one comes.
  function stale(isStale) {
    document.getElementById("draw-view").classList.toggle("stale", isStale);
  }

  // A request is on its way: the old answer is stale and a sign of work shows.
  function asking() {
    stale(true);
    say("Asking the model\u2026");
    statusLine.classList.add("working");
  }

  function failed(error) {
    statusLine.classList.remove("working");
    say(error.message, true);
    // The answer shown is not this drawing's, and none is coming: no digit beside the pad.
    if (error.message === NOT_ANSWERING) {
      document.getElementById("prediction").textContent = "?";
      document.getElementById("answer-text").textContent = "no answer";
    }
  }

  // Post an image (the pad's PNG or a chosen picture); show the answer if it is still wanted,
  // with the status line done() gives.
  async function predict(image, number, done) {
    asking();
    try {
      const request = { method: "POST", headers: { "Content-Type": image.type }, body: image };
      const answer = await ask(withRun("/api/predict"), request);
      if (number === sent) show(answer, done(answer));
    } catch (error) {
      if (number === sent) failed(error);  // an old request's failure is not news
    }
  }

  async function testImage() {
    clearPad();
    const number = ++sent;
    const i = Math.floor(Math.random() * testImages);
    asking();
    try {
      const answer = await ask(withRun("/api/test/" + i));
      if (number === sent) {
        const verdict = answer.label === answer.prediction ? " (right)." : " (wrong).";
        show(answer, "Test image " + answer.index + ": a " + answer.label + "; the model says " +
             answer.prediction + verdict);
      }
    } catch (error) {
      if (number === sent) failed(error);
    }
  }

  document.getElementById("clear").addEventListener("click", () => {
    clearPad();
    sent++;  // an answer on its way is no longer wanted
    statusLine.classList.remove("working");
    say("Draw a digit.");
  });
  document.getElementById("test").addEventListener("click", testImage);

  // ---- a chosen picture: the keyboard's way in ----

  // The picture to post: the file itself when the server takes it as it is (so the answer is
  // scratchlr predict's on that file), else drawn scaled down to MAX_SIDE and sent as a PNG.
  async function fitted(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (error) {
      return file;  // this browser cannot read it: the server says why in its own words
    }
    const side = Math.max(bitmap.width, bitmap.height);
    const known = file.type === "image/png" || file.type === "image/jpeg";
    if (side <= MAX_SIDE && file.size <= MAX_BYTES && known) return file;
    const f = Math.min(1, MAX_SIDE / side);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * f));
    canvas.height = Math.max(1, Math.round(bitmap.height * f));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return png(canvas);
  }

  document.getElementById("upload").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    event.target.value = "";  // the same file chosen again is a new request
    clearPad();
    const number = ++sent;
    asking();
    let image;
    try {
      image = await fitted(file);
    } catch (error) {  // too large for this browser to redraw, say
      if (number === sent) failed(new Error(file.name + ": " + error.message));
      return;
    }
    if (number === sent) {
      predict(image, number, (answer) => "Your picture " + file.name + ": the model says " +
              answer.prediction + ". Draw, or choose another.");
    }
  });

  // ---- painting the numbers ----

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

  // 784 values onto a 28x28 canvas: greys in [0, 1] when scale is undefined, else a map in
  // [-scale, scale] (all white at scale 0: zero weights).
  function paint(canvas, values, scale) {
    const image = canvas.getContext("2d").createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = values[i];
      const rgb = scale === undefined ? [0, 1, 2].map(() => Math.round(255 * v))
        : colour(scale > 0 ? (v / scale + 1) / 2 : 0.5);
      image.data.set([...rgb, 255], 4 * i);
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
  }

  function short(v) {
    return v === 0 ? "0" : v < 0.01 ? v.toExponential(1) : v.toPrecision(2);
  }

  // A colour key: the palette from -scale through 0 to +scale.
  function key(box, scale) {
    if (!box.firstChild) {
      const ramp = document.createElement("canvas");
      ramp.className = "ramp";
      ramp.width = 256;
      ramp.height = 1;
      const image = ramp.getContext("2d").createImageData(256, 1);
      for (let i = 0; i < 256; i++) image.data.set([...colour(i / 255), 255], 4 * i);
      ramp.getContext("2d").putImageData(image, 0, 0);
      const ticks = document.createElement("div");
      ticks.className = "ticks";
      ticks.append(...["", "0", ""].map((text) => {
        const tick = document.createElement("span");
        tick.textContent = text;
        return tick;
      }));
      box.append(ramp, ticks);
    }
    // At zero weights the scale is 0: the middle "0" alone, not "\u22120 0 +0".
    const ends = box.querySelectorAll(".ticks span");
    ends[0].textContent = scale > 0 ? "\u2212" + short(scale) : "";
    ends[2].textContent = scale > 0 ? "+" + short(scale) : "";
    box.hidden = false;
  }

  function signed(v) {
    return (v < 0 ? "\u2212 " : "+ ") + Math.abs(v).toFixed(2);
  }

  // Whose answer this is: a run's weights at its step, or the served model.
  function whose(answer) {
    return answer.step === undefined || answer.step === null ? "the served model"
      : "the model at step " + answer.step;
  }

  function show(answer, text) {
    statusLine.classList.remove("working");
    stale(false);
    paint(document.getElementById("input"), answer.input.flat());
    const zero = noModel();
    // No winner to mark where there is no model, or where every class is as likely (zero
    // weights): the argmax's class 0 would be a tie's first, not an answer.
    const odds = answer.probabilities;
    const tie = Math.max(...odds) - Math.min(...odds) < 1e-9;
    const c = zero || tie ? -1 : answer.prediction;
    document.getElementById("prediction").textContent = c < 0 ? "?" : String(c);
    // With no model the status line says so; the answer line beside "?" stays empty, so
    // that it is said once.
    document.getElementById("answer-text").textContent = zero ? ""
      : "p = " + odds[answer.prediction].toFixed(2) + ", " + whose(answer);
    say(zero ? NO_MODEL : text);
    const rows = odds.map((p, k) => {
      const row = document.createElement("tr");
      if (k === c) row.className = "winner";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (100 * p).toFixed(1) + "%";
      const cells = [String(k), bar, p.toFixed(4), answer.logits[k].toFixed(3)];
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
      paint(document.getElementById("why" + k), part.map.flat(), answer.scale);
      const name = document.createElement("strong");
      name.textContent = (c < 0 ? "" : k === 0 ? "winner: " : "runner-up: ") + "class " +
        part.class;
      const caption = document.getElementById("why" + k + "-text");
      const sum = "pixels " + part.pixels.toFixed(2) + " " + signed(part.bias) + " (b) = logit " +
        part.logit.toFixed(2);
      caption.replaceChildren(name, document.createElement("br"), sum);
    });
    key(document.getElementById("why-key"), answer.scale);
    document.querySelectorAll(".template").forEach((box, k) => {
      box.classList.toggle("winner", k === c);
    });
    // On a phone the answer can sit below the screen's edge: bring it in, not further.
    const line = document.getElementById("answer").getBoundingClientRect();
    if (line.bottom > window.innerHeight || line.top < 0) {
      document.getElementById("answer").scrollIntoView({ block: "nearest" });
    }
  }

  // The ten templates, class k's 784 values from values(k), on one colour scale.
  function showTemplates(classes, values, scale) {
    const grid = document.getElementById("template-grid");
    if (grid.children.length !== classes) {
      const boxes = Array.from({ length: classes }, (_, k) => {
        const box = document.createElement("div");
        box.className = "template";
        const canvas = document.createElement("canvas");
        canvas.className = "pixels map";
        canvas.width = canvas.height = 28;
        box.append(canvas, document.createElement("br"), "class " + k);
        return box;
      });
      grid.replaceChildren(...boxes);
    }
    grid.querySelectorAll("canvas").forEach((canvas, k) => paint(canvas, values(k), scale));
    key(document.getElementById("template-key"), scale);
  }

  // The templates of the served model, or of the run chosen now.
  async function loadTemplates() {
    const asked = painted;
    const answer = await ask(withRun("/api/templates"));
    if (painted !== asked) return;  // a frame came meanwhile: its weights are newer
    palette = answer.palette.map(hex);
    testImages = answer.test_images;
    showTemplates(answer.templates.length, (k) => answer.templates[k].flat(), answer.scale);
  }

  // A run's frame (train.js): its templates, W[:, k] of a (D, C) C-order Float32Array, repainted
  // at most every REPAINT_MS, whatever the frame rate.
  function paintFrame() {
    repaint = null;
    if (!frame || !palette || frame.run !== document.body.dataset.run) return;
    const { W, b, scale } = frame;
    const C = b.length;
    frame = null;
    painted++;
    showTemplates(C, (k) => {
      const column = new Float32Array(784);
      for (let i = 0; i < 784; i++) column[i] = W[i * C + k];
      return column;
    }, scale);
  }

  document.addEventListener("scratchlr:frame", (event) => {
    frame = event.detail;
    if (repaint === null) repaint = setTimeout(paintFrame, REPAINT_MS);
  });

  // Another run, or none (train.js reset it): its templates, or the served model's, until
  // frames come.
  new MutationObserver(() => {
    if (ready) loadTemplates().catch((error) => failed(error));
  }).observe(document.body, { attributes: true, attributeFilter: ["data-run"] });

  async function start() {
    clearPad();
    const views = openView();
    try {
      await loadTemplates();
      document.getElementById("test").disabled = testImages === 0;
      ready = true;
      say("Draw a digit.");
    } catch (error) {
      say(error.message, true);
    }
    await views;
    if (ready && noModel()) say(NO_MODEL);
  }

  start();
}
