// The training view: the learner's settings, a run of the engine's own training loop in the
// server, and what it streams back as it learns. None of the model's math is here: the
// settings' names, ranges and checks come from /api/settings and /api/check (the command
// line's), and every number shown comes from the run's frames (/api/runs/{id}/events).
// Everything is built here, inside #train-view, with DOM calls: the page's CSP allows no
// inline script or style.
"use strict";

// One function's scope: page.js shares the page's global names, so none is made here.
(function trainingView() {
  const trainView = document.getElementById("train-view");
  const CHECK_DELAY_MS = 250;  // settle the typing before asking /api/check
  const LOG_LINES = 400;       // the log lines kept; the <pre> scrolls to the newest
  const DEFAULT_SPEED = 30;    // steps/s: the recipe's 300 steps last 10 s, watchable
  const CHART_POINTS = 1000;   // the most points a chart's line is drawn through

  const train = {
    settings: null,   // /api/settings: fields, presets, speeds, classes
    palette: null,    // the maps' colours, blue (-) to red (+), as [r, g, b]
    inputs: {},       // field name -> {field, box, read(), write(text), controls}
    refused: "",      // the server's one-line error for the settings now, "" if accepted
    checking: 0,      // /api/check requests sent; only the latest one's answer counts
    checkTimer: 0,
    total: 0,         // the steps the settings now make (/api/check): the charts' span before
                      // a run, so that they do not change scale at Start
    run: null,        // the run now, {id, command, total, state, source}; null before Start
                      // and after Reset
    frame: null,      // its latest frame
    lines: [],        // its newest log lines (at most LOG_LINES)
    lineCount: 0,     // its log lines so far, the ones dropped from `lines` too
    records: [],      // its history records so far
    lost: false,      // whether the stream has failed since its last frame
    W: null,          // its weights (Float32Array, D*C, C-order), the latest frame's
    busy: false,      // a request that changes the run is on its way
    drawn: false,     // whether the view shows what the state holds (else a redraw is due)
    el: {},           // the elements that change, by name
  };

  // Small DOM helpers: an element with a class, attributes and children.
  function make(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "class") element.className = value;
      else if (name === "text") element.textContent = value;
      else element.setAttribute(name, value);
    }
    element.append(...children);
    return element;
  }

  function button(text, attributes) {
    return make("button", { type: "button", ...attributes }, text);
  }

  // The JSON answer; an Error with the server's one-line message if it refused.
  async function askJSON(url, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(url, options);
    let answer = {};
    try { answer = await response.json(); } catch (error) { /* a body that is not JSON */ }
    if (!response.ok) throw new Error(answer.error || response.status + " " + response.statusText);
    return answer;
  }

  // ---- The settings: one control per offered field, built from its description ----

  // A field's control: its input(s), how to read its text and write one, as the flag takes it.
  function control(field) {
    const id = "train-" + field.name.replace(/_/g, "-");
    const label = make("label", { for: id }, make("code", { text: field.flag }));
    const help = make("span", { class: "train-help", id: id + "-help", text: field.help });
    const described = { "aria-describedby": id + "-help", title: field.help };
    let read, write, controls;
    if (field.kind === "bool") {
      const box = make("input", { type: "checkbox", id, ...described });
      read = () => (box.checked ? "true" : "false");
      write = (text) => { box.checked = text === "true"; };
      controls = [box];
      label.prepend(box);  // the box before its flag, as checkboxes read
    } else if (field.kind === "choice") {
      const select = make("select", { id, ...described });
      if (field.optional) select.append(make("option", { value: "", text: "(unset)" }));
      for (const choice of field.choices) {
        select.append(make("option", { value: choice, text: choice }));
      }
      read = () => select.value;
      write = (text) => { select.value = unset(text) ? "" : text; };
      controls = [select];
    } else if (field.kind === "pair") {
      const first = make("input", { type: "text", inputmode: "decimal", id, ...described });
      const second = make("input", { type: "text", inputmode: "decimal", id: id + "-2",
                                     "aria-label": field.flag + " (second)", ...described });
      read = () => (first.value.trim() + " " + second.value.trim()).trim();
      write = (text) => {
        [first.value, second.value] = (text || "").split(/\s+/).concat(["", ""]);
      };
      controls = [first, second];
    } else {  // float or int: a text box, so that the server, not the browser, judges the value
      const kind = field.kind === "int" ? "numeric" : "decimal";
      const input = make("input", { type: "text", inputmode: kind, id, ...described });
      if (field.optional) input.placeholder = "unset";
      read = () => input.value.trim();
      write = (text) => { input.value = unset(text) ? "" : text; };
      controls = [input];
    }
    const row = field.kind === "bool" ? make("div", { class: "train-check" }, label)
      : make("div", { class: "train-value" }, label, ...controls);
    const box = make("div", { class: "train-field" }, row, help);
    box.dataset.field = field.name;
    for (const input of controls) {
      input.addEventListener("input", settingsChanged);
      input.addEventListener("change", settingsChanged);
    }
    return { field, box, read, write, controls };
  }

  function unset(text) {
    return text === null || text === undefined || text === "" ||
      String(text).toLowerCase() === "none";
  }

  // The settings as texts, as the flags take them: the fields the chosen optimiser uses, each
  // that is set and differs from its default (the command line shows only those too).
  function chosen() {
    const optimizer = train.inputs.optimizer ? train.inputs.optimizer.read() : null;
    const settings = {};
    for (const { field, read } of Object.values(train.inputs)) {
      if (!uses(field, optimizer)) continue;
      const text = read();
      if (field.optional && text === "") continue;
      if (text !== field.default) settings[field.name] = text;
    }
    return settings;
  }

  function uses(field, optimizer) {
    return !field.optimizers || !optimizer || field.optimizers.includes(optimizer);
  }

  // A field is shown only for the optimisers that use it.
  function showUsed() {
    const optimizer = train.inputs.optimizer ? train.inputs.optimizer.read() : null;
    for (const { field, box } of Object.values(train.inputs)) box.hidden = !uses(field, optimizer);
  }

  // Every control back to its default, then the preset's settings.
  function fill(settings) {
    for (const { field, write } of Object.values(train.inputs)) {
      write(field.name in settings ? settings[field.name] : field.default);
    }
    settingsChanged();
  }

  function settingsChanged() {
    showUsed();
    clearTimeout(train.checkTimer);
    train.checkTimer = setTimeout(check, CHECK_DELAY_MS);
  }

  // The server's word on the settings: the equivalent command line, or why they are refused.
  async function check() {
    const number = ++train.checking;
    try {
      const answer = await askJSON("/api/check", { settings: chosen() });
      if (number !== train.checking) return;
      train.refused = "";
      showCommand(answer.command);
      train.el.total.textContent = answer.total + " steps";
      train.total = answer.total;
      if (!train.run) redraw();
    } catch (error) {
      if (number !== train.checking) return;
      train.refused = error.message;
    }
    train.el.refusal.textContent = train.refused;
    train.el.settings.classList.toggle("refused", Boolean(train.refused));
    buttons();
  }

  // The command line, a span a word, so that a line breaks between words and not at the
  // hyphens of a flag; its text is the command's, exactly.
  function showCommand(command) {
    const words = command.split(" ").map((word) => make("span", { text: word }));
    train.el.command.replaceChildren(...words.flatMap((span, k) => (k ? [" ", span] : [span])));
  }

  async function copyCommand() {
    const text = train.el.command.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {  // no clipboard API: select the text, so that the keyboard can copy it
      const range = document.createRange();
      range.selectNodeContents(train.el.command);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    train.el.copy.textContent = "Copied";
    setTimeout(() => { train.el.copy.textContent = "Copy"; }, 1500);
  }

  // ---- The run: start, pause and resume, one step, reset, speed ----

  function state() {
    return train.frame ? train.frame.state : train.run ? train.run.state : null;
  }

  function live() {  // a run that can still take steps
    return train.run !== null && (state() === "running" || state() === "paused");
  }

  function speed() {
    return Number(train.el.speed.value);
  }

  // Each button enabled only where its action makes sense now.
  function buttons() {
    const running = live();
    const paused = running && state() === "paused";
    const canStart = !running && !train.refused && !train.busy;
    train.el.start.disabled = !canStart;
    train.el.pause.disabled = !running || train.busy;
    train.el.pause.textContent = paused ? "Resume" : "Pause";
    train.el.step.disabled = train.busy || (running ? !paused : !canStart);
    train.el.reset.disabled = train.run === null || train.busy;
    // The model file of the weights now: there is none before step 1 (zero weights).
    train.el.download.hidden = train.run === null || !train.frame || train.frame.step === 0;
    if (train.run) train.el.download.href = "/api/runs/" + train.run.id + "/model";
    train.el.fields.disabled = running;  // a run keeps the settings it started with
    train.el.presets.disabled = running;
  }

  function say(text) {
    train.el.error.textContent = text;
  }

  // Run fn with the buttons held, showing its failure (a refusal, a lost server) in one line.
  async function act(fn) {
    train.busy = true;
    buttons();
    say("");
    try {
      await fn();
    } catch (error) {
      say(error.message);
    } finally {
      train.busy = false;
      buttons();
    }
  }

  async function start(paused) {
    const answer = await askJSON("/api/runs", { settings: chosen(), speed: speed(), paused });
    forget();  // only now: a refused start ("busy") leaves the last run on screen
    train.run = { id: answer.run, command: answer.command, total: answer.total,
                  state: paused ? "paused" : "running", source: null };
    document.body.dataset.run = answer.run;  // the drawing view asks this run's weights
    showCommand(answer.command);
    listen();
    redraw();
  }

  async function tell(action) {
    const answer = await askJSON("/api/runs/" + train.run.id, { action, speed: speed() });
    train.run.state = answer.state;
    if (train.frame && answer.state) train.frame.state = answer.state;  // until the next frame
    redraw();
  }

  async function oneStep() {
    if (!live()) await start(true);  // a fresh run, created paused at step 0: step 1 is next
    await tell("step");
  }

  // Back to no run: the server stops it, and the view shows zero weights, as every run starts.
  async function reset() {
    const run = live() ? train.run : null;
    forget();
    redraw();
    if (!run) return;
    try {
      await askJSON("/api/runs/" + run.id, { action: "stop" });
    } catch (error) {  // it ended on its own meanwhile; without a stream, the server forgets it
    }
  }

  function forget() {
    if (train.run && train.run.source) train.run.source.close();
    train.run = null;
    train.frame = null;
    train.lines = [];
    train.lineCount = 0;
    train.records = [];
    train.W = null;
    train.lost = false;
    delete document.body.dataset.run;
  }

  // A new speed applies to the run as it is, paused or running (a request with no action).
  async function speedChanged() {
    if (!live()) return;
    await askJSON("/api/runs/" + train.run.id, { speed: speed() });
  }

  // ---- The stream: frames in, state merged, one redraw per animation frame ----

  function listen() {
    const run = train.run;
    const source = new EventSource("/api/runs/" + run.id + "/events");
    run.source = source;
    source.onmessage = (event) => {
      if (train.run !== run) return;  // a frame of a run reset since
      if (train.lost) say("");  // back (an action's refusal stays until the next action)
      train.lost = false;
      take(JSON.parse(event.data));
    };
    source.onerror = () => {
      if (train.run !== run) return;
      train.lost = true;
      if (source.readyState === EventSource.CLOSED) {
        say("The run's stream is gone: the server ended or forgot this run. Reset, then Start.");
      } else if (live()) {
        say("Lost the server; trying again\u2026");
      }
    };
  }

  function take(frame) {
    // A stream sends the lines and records it has not sent yet; a new stream (after a
    // reconnect) sends them all again, from 0.
    if (frame.lines_from < train.lineCount) [train.lines, train.lineCount] = [[], 0];
    train.lines = train.lines.concat(frame.lines || []);
    train.lineCount += (frame.lines || []).length;
    if (train.lines.length > LOG_LINES) train.lines = train.lines.slice(-LOG_LINES);
    train.records = train.records.slice(0, frame.records_from).concat(frame.records || []);
    if (frame.W) train.W = weights(frame.W);
    train.frame = frame;
    train.run.state = frame.state;
    document.dispatchEvent(new CustomEvent("scratchlr:frame", { detail: {
      run: train.run.id, step: frame.step, state: frame.state, W: train.W, b: frame.b,
      scale: frame.scale } }));
    redraw();
  }

  // base64 of float32 (D, C), C-order -> Float32Array; W[i, c] is at i * C + c.
  function weights(text) {
    const bytes = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  function redraw() {
    if (!train.drawn) return;  // one is due already
    train.drawn = false;
    requestAnimationFrame(draw);
  }

  function draw() {
    train.drawn = true;
    buttons();
    numbers();
    drawTemplates();
    drawCharts();
    showLog();
  }

  // ---- What the learner watches ----

  function fmt(value, digits) {
    return value === null || value === undefined ? "\u2013" : Number(value).toFixed(digits);
  }

  function short(value) {  // a learning rate: four significant digits, no trailing zeros
    return value === null || value === undefined ? "\u2013" : String(Number(value.toPrecision(4)));
  }

  function latest(key) {  // the newest record's value of key, where one has it
    for (let k = train.records.length - 1; k >= 0; k--) {
      const value = train.records[k][key];
      if (value !== null && value !== undefined) return value;
    }
    return null;
  }

  function numbers() {
    const frame = train.frame;
    const total = frame ? frame.total : train.run ? train.run.total : train.total;
    const el = train.el;
    el.stepNow.textContent = (frame ? frame.step : 0) + (total ? " / " + total : "");
    el.epoch.textContent = frame ? fmt(frame.epoch, 2) : "0.00";
    el.lr.textContent = frame ? short(frame.lr) : "\u2013";
    el.loss.textContent = fmt(latest("loss"), 4);
    el.accuracy.textContent = fmt(latest("accuracy"), 4);
    el.valLoss.textContent = fmt(latest("val_loss"), 4);
    el.valAccuracy.textContent = fmt(latest("val_accuracy"), 4);
    el.state.textContent = state() || "no run";
    el.state.dataset.state = state() || "none";
    el.message.textContent = frame && frame.message ? frame.message : "";
    el.message.classList.toggle("diverged", state() === "diverged");
    const tested = frame && frame.test_accuracy !== null && frame.test_accuracy !== undefined;
    el.test.textContent = tested ? "Testset Accuracy: " + frame.test_accuracy.toFixed(4) : "";
    el.test.hidden = !tested;
  }

  function showLog() {
    const pre = train.el.log;
    const text = train.lines.join("\n");
    if (pre.textContent === text) return;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = text;
    if (atEnd) pre.scrollTop = pre.scrollHeight;  // follow the newest, unless scrolled back
  }

  // t in [0, 1] -> the palette's colour there, interpolated linearly between its stops (as
  // page.js colours the drawing view's maps).
  function colour(t) {
    const palette = train.palette;
    const x = Math.min(Math.max(t, 0), 1) * (palette.length - 1);
    const k = Math.min(Math.floor(x), palette.length - 2);
    const f = x - k;
    return palette[k].map((a, j) => Math.round(a + f * (palette[k + 1][j] - a)));
  }

  // The ten templates W[:, c] on one colour scale, +-max|W| (all white at zero weights).
  function drawTemplates() {
    if (!train.palette) return;
    const canvases = train.el.templates;
    const C = canvases.length;
    const W = train.W;
    const scale = train.frame && W ? train.frame.scale : 0;
    const D = W ? W.length / C : 784;
    for (let c = 0; c < C; c++) {
      const pen = canvases[c].getContext("2d");
      const image = pen.createImageData(28, 28);
      for (let i = 0; i < D; i++) {
        const v = W && scale > 0 ? W[i * C + c] / scale : 0;
        image.data.set(colour((v + 1) / 2), 4 * i);
        image.data[4 * i + 3] = 255;
      }
      pen.putImageData(image, 0, 0);
    }
    // At zero weights the scale is 0: the key's middle "0" alone, not "\u22120 0 +0".
    const s = scale > 0 ? scale.toPrecision(3) : "";
    train.el.keyLow.textContent = s && "\u2212" + s;
    train.el.keyHigh.textContent = s && "+" + s;
  }

  function drawKey() {
    const canvas = train.el.key;
    const pen = canvas.getContext("2d");
    const image = pen.createImageData(canvas.width, 1);
    for (let x = 0; x < canvas.width; x++) {
      image.data.set([...colour(x / (canvas.width - 1)), 255], 4 * x);
    }
    pen.putImageData(image, 0, 0);
  }

  // ---- The charts: loss and accuracy by step, training (running means) and validation ----

  const TRAIN_COLOUR = "#2166ac";
  const VALIDATION_COLOUR = "#d6604d";

  function drawCharts() {
    const total = train.frame ? train.frame.total : train.run ? train.run.total : train.total;
    const series = (key) => thin(train.records
      .filter((r) => r[key] !== null && r[key] !== undefined && Number.isFinite(r[key]))
      .map((r) => [r.step, r[key]]));
    chart(train.el.lossChart, "loss", total, [
      { points: series("loss"), colour: TRAIN_COLOUR },
      { points: series("val_loss"), colour: VALIDATION_COLOUR, dash: [5, 3] },
    ]);
    chart(train.el.accuracyChart, "accuracy", total, [
      { points: series("accuracy"), colour: TRAIN_COLOUR },
      { points: series("val_accuracy"), colour: VALIDATION_COLOUR, dash: [5, 3] },
    ]);
  }

  // At most about CHART_POINTS of the points, evenly, the newest kept: a long run at
  // --display-step 1 has more records than a chart has pixels.
  function thin(points) {
    const every = Math.ceil(points.length / CHART_POINTS);
    if (every <= 1) return points;
    return points.filter((_, k) => k % every === 0 || k === points.length - 1);
  }

  // Round ticks that enclose [low, high]: about `count` steps of 1, 2, 2.5 or 5 times a
  // power of ten.
  function ticks(low, high, count) {
    const raw = (high - low) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const first = Math.floor(low / step + 1e-9);
    const last = Math.ceil(high / step - 1e-9);
    const list = [];
    for (let k = first; k <= last; k++) list.push(Number((k * step).toPrecision(12)));
    return list;
  }

  function chart(canvas, name, total, lines) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;  // hidden: drawn when the view shows (the ResizeObserver)
    const w = Math.round(width * ratio);
    const h = Math.round(height * ratio);
    if (canvas.width !== w || canvas.height !== h) [canvas.width, canvas.height] = [w, h];
    const pen = canvas.getContext("2d");
    pen.setTransform(ratio, 0, 0, ratio, 0, 0);
    pen.clearRect(0, 0, width, height);
    const values = lines.flatMap((line) => line.points.map((p) => p[1]));
    let low = values.length ? Math.min(...values) : 0;
    let high = values.length ? Math.max(...values) : 1;
    if (name === "loss") low = Math.min(low, 0);  // a loss falls towards 0: show how far it is
    if (high - low < 1e-6) { low -= 0.5; high += 0.5; }
    const yTicks = ticks(low, high, 4);
    low = yTicks[0];
    high = yTicks[yTicks.length - 1];
    const xMax = Math.max(total || 1, 1);
    const box = { left: 46, right: width - 10, top: 8, bottom: height - 34 };
    const x = (step) => box.left + (box.right - box.left) * step / xMax;
    const y = (v) => box.bottom - (box.bottom - box.top) * (v - low) / (high - low);
    pen.font = "11px system-ui, sans-serif";
    pen.fillStyle = "#5b6475";
    pen.strokeStyle = "#e3e6eb";
    pen.lineWidth = 1;
    pen.textAlign = "right";
    pen.textBaseline = "middle";
    for (const v of yTicks) {  // the grid, with the values on the left
      pen.beginPath();
      pen.moveTo(box.left, Math.round(y(v)) + 0.5);
      pen.lineTo(box.right, Math.round(y(v)) + 0.5);
      pen.stroke();
      pen.fillText(String(v), box.left - 5, y(v));
    }
    pen.textAlign = "center";
    pen.textBaseline = "top";
    const xTicks = ticks(0, xMax, Math.max(2, Math.floor((box.right - box.left) / 70)))
      .filter((step) => step <= xMax);
    canvas.dataset.steps = xTicks.join(" ");  // the x axis's labels, for a test to read
    for (const step of xTicks) {
      const half = pen.measureText(String(step)).width / 2;  // kept inside the canvas
      pen.fillText(String(step), Math.min(x(step), width - half - 1), box.bottom + 4);
    }
    pen.fillText("step", (box.left + box.right) / 2, box.bottom + 18);
    pen.save();  // the y axis's name, upright along it
    pen.translate(10, (box.top + box.bottom) / 2);
    pen.rotate(-Math.PI / 2);
    pen.textBaseline = "middle";
    pen.fillText(name, 0, 0);
    pen.restore();
    pen.strokeStyle = "#8a93a3";
    pen.beginPath();
    pen.moveTo(box.left + 0.5, box.top);
    pen.lineTo(box.left + 0.5, box.bottom + 0.5);
    pen.lineTo(box.right, box.bottom + 0.5);
    pen.stroke();
    for (const line of lines) {
      if (!line.points.length) continue;
      pen.strokeStyle = pen.fillStyle = line.colour;
      pen.lineWidth = 2;
      pen.setLineDash(line.dash || []);
      pen.beginPath();
      line.points.forEach(([step, v], k) => {
        if (k === 0) pen.moveTo(x(step), y(v));
        else pen.lineTo(x(step), y(v));
      });
      pen.stroke();
      pen.setLineDash([]);
      const [step, v] = line.points[line.points.length - 1];  // a dot on the newest point
      pen.beginPath();
      pen.arc(x(step), y(v), 2.5, 0, 2 * Math.PI);
      pen.fill();
    }
  }

  // ---- The view, built once /api/settings says what it may offer ----

  // A card of the view: a <section> named by its heading.
  function card(name, heading, ...children) {
    const title = make("h2", { id: "train-" + name + "-title" });
    title.append(...[].concat(heading));
    return make("section", { class: "train-" + name, "aria-labelledby": title.id },
                title, ...children);
  }

  function stat(name, label) {
    const value = make("dd", { id: "train-" + name, text: "\u2013" });
    train.el[name.replace(/-(.)/g, (_, ch) => ch.toUpperCase())] = value;
    return make("div", { class: "train-stat" }, make("dt", { text: label }), value);
  }

  function speedText(s) {
    return s === 0 ? "as fast as it goes" : s + (s === 1 ? " step/s" : " steps/s");
  }

  function buildRun() {
    const el = train.el;
    el.start = button("Start", { id: "train-start", class: "primary" });
    el.pause = button("Pause", { id: "train-pause" });
    el.step = button("One step", { id: "train-step" });
    el.reset = button("Reset", { id: "train-reset",
                                 title: "stop the run and go back to zero weights" });
    el.download = make("a", {
      id: "train-download", class: "button", download: "",
      title: "the model as it is now: a file that scratchlr evaluate reads",
    }, "Download model");
    el.speed = make("select", { id: "train-speed" });
    for (const s of train.settings.speeds) {
      el.speed.append(make("option", { value: String(s), text: speedText(s) }));
    }
    const speeds = train.settings.speeds;
    el.speed.value = String(speeds.includes(DEFAULT_SPEED) ? DEFAULT_SPEED : speeds[0]);
    el.start.addEventListener("click", () => act(() => start(false)));
    el.pause.addEventListener("click", () => act(() => tell(state() === "paused" ? "resume"
                                                                                  : "pause")));
    el.step.addEventListener("click", () => act(oneStep));
    el.reset.addEventListener("click", () => act(reset));
    el.speed.addEventListener("change", () => act(speedChanged));
    const speedBox = make("span", { class: "train-speed" },
                          make("label", { for: "train-speed", text: "Speed" }), el.speed);
    el.error = make("p", { id: "train-error", class: "train-error", role: "alert" });
    el.message = make("p", { id: "train-message", class: "train-message", role: "status" });
    el.test = make("p", { id: "train-test", class: "train-test", role: "status" });
    const stats = make("dl", { class: "train-stats" },
                       stat("step-now", "step"), stat("epoch", "epoch"),
                       stat("lr", "learning rate"), stat("loss", "training loss"),
                       stat("accuracy", "training accuracy"), stat("val-loss", "validation loss"),
                       stat("val-accuracy", "validation accuracy"), stat("state", "state"));
    return card("run", "Train it, and watch it learn",
                make("div", { class: "buttons train-buttons" },
                     el.start, el.pause, el.step, el.reset, speedBox, el.download),
                el.error, stats, el.message, el.test);
  }

  function buildSettings() {
    const el = train.el;
    el.presets = make("fieldset", { class: "train-presets" }, make("legend", { text: "Presets" }));
    for (const preset of train.settings.presets) {
      const b = button(preset.label, { "data-preset": preset.name, title: preset.command });
      b.addEventListener("click", () => fill(preset.settings));
      el.presets.append(b);
    }
    el.fields = make("fieldset", { class: "train-fields" },
                     make("legend", { class: "train-hidden-legend", text: "Settings" }));
    const groups = new Map();  // the fields by their --help group, in the flags' order
    for (const field of train.settings.fields) {
      const input = control(field);
      train.inputs[field.name] = input;
      const group = field.group || "training";
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(input.box);
    }
    for (const [group, boxes] of groups) {
      const grid = make("div", { class: "train-grid" }, ...boxes);
      el.fields.append(make("div", { class: "train-group" }, make("h3", { text: group }), grid));
    }
    el.command = make("code", { id: "train-command" });
    el.copy = button("Copy", { id: "train-copy", "aria-label": "copy the command line" });
    el.copy.addEventListener("click", copyCommand);
    el.total = make("span", { class: "train-total" });
    el.refusal = make("p", { id: "train-refusal", class: "train-refusal", role: "alert" });
    el.settings = card("settings", "Settings", el.presets,
                       make("p", { class: "note" }, "The command line that trains the same run (",
                            el.total, "):"),
                       make("div", { class: "train-command" }, el.command, el.copy),
                       el.refusal, el.fields);
    return el.settings;
  }

  function buildCharts() {
    const el = train.el;
    const legend = make("p", { class: "train-legend" },
                        make("span", { class: "train-swatch train-line" }),
                        "training (running mean)",
                        make("span", { class: "train-swatch validation-line" }), "validation");
    el.lossChart = make("canvas", { class: "train-chart", id: "train-loss-chart", role: "img",
                                    "aria-label": "loss by step: training and validation" });
    el.accuracyChart = make("canvas", {
      class: "train-chart", id: "train-accuracy-chart", role: "img",
      "aria-label": "accuracy by step: training and validation",
    });
    const pair = make("div", { class: "train-chart-pair" },
                      make("figure", {}, el.lossChart), make("figure", {}, el.accuracyChart));
    const section = card("charts", "Loss and accuracy", legend, pair);
    new ResizeObserver(() => drawCharts()).observe(section);  // drawn to the canvases' own size
    return section;
  }

  function buildTemplates() {
    const el = train.el;
    const classes = train.settings.classes;
    el.templates = classes.map((name) => make("canvas", {
      class: "pixels", width: "28", height: "28", "aria-label": "the template of class " + name,
    }));
    const boxes = el.templates.map((canvas, c) => make("figure", { class: "train-template" },
                                                       canvas,
                                                       make("figcaption", { text: classes[c] })));
    el.key = make("canvas", { class: "train-key", width: "256", height: "1",
                              "aria-hidden": "true" });
    el.keyLow = make("span");
    el.keyHigh = make("span");
    const labels = make("div", { class: "train-key-labels" },
                        el.keyLow, make("span", { text: "0" }), el.keyHigh);
    const caption = "Template c is column c of W, on one colour scale for all ten " +
      "(\u00b1max|W|): red raises the class's logit where the image has ink, blue lowers it. " +
      "Every run starts from zero weights: all white.";
    return card("templates", ["The ten templates ", make("var", { text: "W" }), "[:,\u00a0",
                              make("var", { text: "c" }), "]"],
                make("div", { class: "train-template-grid" }, ...boxes),
                make("div", { class: "train-key-box" }, el.key, labels),
                make("p", { class: "note", text: caption }));
  }

  function buildLog() {
    train.el.log = make("pre", { id: "train-log", tabindex: "0",
                                 "aria-label": "the run's log lines" });
    return card("log", "The command line's lines", train.el.log);
  }

  async function boot() {
    let about;
    try {
      const answers = await Promise.all([askJSON("/api/settings"), askJSON("/api/templates")]);
      about = answers[0];
      train.palette = answers[1].palette.map((text) =>
        [1, 3, 5].map((i) => parseInt(text.slice(i, i + 2), 16)));
    } catch (error) {
      const why = "Cannot reach the server: " + error.message;
      trainView.replaceChildren(make("p", { class: "train-error", role: "alert", text: why }));
      return;
    }
    if (!about.training) return;  // page.js hides the Train button: nothing to build
    train.settings = about;
    // In the order a phone shows them, one column: the run's buttons and numbers, then what
    // they change (charts, templates), so that the learner watches the curves while pressing
    // Pause; the long settings after. train.css places them in two columns on a wide screen.
    const layout = make("div", { class: "train-layout" },
                        buildRun(), buildCharts(), buildTemplates(), buildSettings(), buildLog());
    trainView.replaceChildren(layout);
    drawKey();
    fill({});  // the seed's settings: every default
    train.drawn = true;
    draw();
  }

  if (trainView) boot();
})();
