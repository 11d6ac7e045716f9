// The canvas page: draw with any pointer, send the drawing over the websocket when a
// stroke ends, show the pushed prediction. Falls back to the HTTP API while offline.
// Pushes are at-most-once: after a reconnect the page asks for every drawing it still awaits.
//
// Two modes, switched on the page and remembered in localStorage: one digit (a square pad), or a
// number (a wide pad; the answer is the number, each digit's confidence, and its box over the ink).
//
// A drawing is sent as its pen strokes (vectors, a fraction of a PNG's size, and the order and
// timing of the strokes are kept). To send a PNG of the canvas instead, as before, open the page
// with ?send=image or put data-send="image" on the <canvas>.
"use strict";

const SEND_DELAY_MS = 150; // a pause this long after a stroke means "read it now"
const STROKE_SHARE = 0.06; // stroke width as a share of the canvas, like MNIST's pen
const HISTORY_SIZE = 12;
const MODE_KEY = "digits.mode"; // localStorage: the mode last chosen
const SVG_NS = "http://www.w3.org/2000/svg";
const WORDS = {
  digit: {
    hint: "Draw one digit, 0 to 9. It is read when you lift the pen.",
    pad: "Draw one digit here with a mouse, finger or pen",
    what: "a digit",
  },
  number: {
    hint: "Write a number: its digits side by side, left to right. It is read when you lift the pen.",
    pad: "Write a number here, its digits left to right, with a mouse, finger or pen",
    what: "a number",
  },
};
const POLL_EVERY_MS = 1500; // the HTTP fallback's polling of a drawing still queued ...
const POLL_TRIES = 20; // ... for at most this many tries (30 s) after the request's own 10 s wait
const READING_AFTER_MS = 400; // an answer later than this (most take a few ms): say it is being read ...
const BUSY_AFTER_MS = 15000; // ... and later than this, that the server is busy (it still comes)
const MIN_STEP_PX = 1; // a point nearer the last one kept (CSS pixels) adds nothing: a 1000 Hz mouse hit the cap
const REFUSED_RETRY_MS = 10000; // a socket refused as one too many (1013) tries again this much later
// The page's own words for what a person can meet; the API's messages are written for programs.
const TOO_LONG = "That drawing is too long to read: clear the pad and draw it again."; // past the stroke limits
const UNREACHABLE = "Could not reach the server; draw again when it is back.";
const WAIT_REASONS = {
  rate_limited: "Too many drawings from here just now",
  byte_budget: "Too many drawings from here this hour",
};
// The history picture's alt text for a drawing refused or never sent, by error code.
const NOT_READ = {
  rate_limited: "drawing refused: too many drawings",
  byte_budget: "drawing refused: too many drawings",
  overloaded: "drawing refused: the server was busy",
  unavailable: "drawing refused: the server was busy",
  invalid_strokes: "drawing refused: too long to read",
  unreachable: "drawing not sent: no connection",
};

const pad = document.getElementById("pad");
const SEND_IMAGE = pad.dataset.send === "image" || new URLSearchParams(location.search).get("send") === "image";
const ctx = pad.getContext("2d");
const connection = document.getElementById("connection");
const result = document.getElementById("result");
const digitOut = document.getElementById("digit");
const summary = document.getElementById("summary");
const bars = document.getElementById("bars");
const feedback = document.getElementById("feedback");
const feedbackStatus = document.getElementById("feedback-status");
const historyList = document.getElementById("history");
const modes = document.getElementById("modes");
const hint = document.getElementById("hint");
const digitsList = document.getElementById("digits");
const boxes = document.getElementById("boxes");
const feedbackDigits = document.getElementById("feedback-digits");

let socket = null;
let reconnectDelay = 500;
let reconnectTimer = null;
let sendTimer = null;
let strokes = []; // the drawing, in shares of `frame` with event times, so it can be redrawn at any size
let frame = null; // the pad's CSS size when the drawing began: a pad resized since (a phone turned) scales it evenly
let stroke = null; // the stroke being drawn
let strokePointer = null; // the pointer drawing it: a second finger or a resting palm must not join in
let sequence = 0; // every send gets a ref; only the newest answer is shown
let latestRef = null;
let currentId = null; // the drawing whose answer is shown, which feedback refers to; null while a newer one is read
let slowTimers = []; // the "reading…" and "busy" notes, or the countdown to sending it again
let canvasNumber = 0; // one history entry per canvas, updated as strokes are added
let mode = "digit"; // what the pad reads: "digit" or "number"
let sentUnits = null; // the latest drawing's `units()` as sent: its digits' boxes are in those pixels
let latestDrawing = null; // the latest drawing's body as sent, to send again after a refusal's wait
const awaited = new Map(); // drawing id -> ref: queued over the socket, not answered yet
let unacknowledged = null; // {drawing, ref} sent over the socket, no reply yet: sent over HTTP if the socket closes
const lastSent = new Map(); // canvas number -> the sequence number of its latest version sent

// ---- canvas ---------------------------------------------------------------

function resizePad() {
  // Keep the bitmap at the screen's resolution while the element scales with the layout;
  // the strokes are redrawn, never the old bitmap stretched.
  const box = pad.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  const [width, height] = [Math.round(box.width * scale), Math.round(box.height * scale)];
  if (width > 0 && height > 0 && (width !== pad.width || height !== pad.height)) {
    pad.width = width;
    pad.height = height;
    redraw();
    if (boxes.childElementCount) boxes.setAttribute("viewBox", viewBox());
  }
}

function watchPixelRatio() {
  // The window moved to a screen of another density (or zoomed) may have fired no resize: a media
  // query on the ratio now says when it changes, and is asked again for the ratio it changed to.
  const now = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  now.addEventListener("change", () => (resizePad(), watchPixelRatio()), { once: true });
}

function redraw() {
  paper();
  strokes.forEach(drawStroke);
}

function paper() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = ctx.fillStyle = "#000";
  ctx.lineCap = ctx.lineJoin = "round";
  // A share of the pad's height on a wide pad too: a digit is as high as the pad, whatever its width.
  ctx.lineWidth = Math.max(2, Math.min(pad.width, pad.height) * STROKE_SHARE);
}

function fitted() {
  // How the drawing's frame fits the pad now: one scale for both sides (the ink keeps its shape when
  // the pad changes its), from the top left corner.
  const box = pad.getBoundingClientRect();
  const size = frame || box;
  return { box, scale: Math.min(box.width / size.width, box.height / size.height), size };
}

function units() {
  // The bitmap's pixels per share of the frame, across and down: the pad's size, unless it was resized.
  const { box, scale, size } = fitted();
  return { x: (size.width * scale * pad.width) / box.width, y: (size.height * scale * pad.height) / box.height };
}

function viewBox() {
  // The pad's extent in the pixels the latest drawing was sent in, which its digits' boxes are in.
  const { box, scale, size } = fitted();
  return `0 0 ${(box.width / (size.width * scale)) * sentUnits.x} ${(box.height / (size.height * scale)) * sentUnits.y}`;
}

function position(event) {
  const { box, scale, size } = fitted();
  return {
    x: (event.clientX - box.left) / (size.width * scale),
    y: (event.clientY - box.top) / (size.height * scale),
    t: event.timeStamp,
  };
}

function line(points) {
  const u = units();
  ctx.beginPath();
  ctx.moveTo(points[0].x * u.x, points[0].y * u.y);
  for (const p of points.slice(1)) ctx.lineTo(p.x * u.x, p.y * u.y);
  ctx.stroke();
}

function drawStroke(points) {
  const first = points[0];
  const u = units();
  ctx.beginPath();
  ctx.arc(first.x * u.x, first.y * u.y, ctx.lineWidth / 2, 0, Math.PI * 2);
  ctx.fill();
  if (points.length > 1) line(points);
}

// A stroke belongs to the pointer that started it: while it is drawn, other pointers' events are
// ignored, or two fingers' points would be joined into one line.
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  // Only the primary button draws (a touch's contact is one too): a mouse's right button, or a pen
  // with its barrel button held or its eraser end down, opens no stroke.
  if (event.button !== 0) return;
  if (stroke && event.pointerType === "pen" && pad.dataset.pointer === "touch") {
    // A pen put down while a touch draws: the touch is the hand resting on the screen, not ink.
    strokes.pop();
    redraw();
    stroke = null;
  }
  if (stroke) return;
  pad.setPointerCapture(event.pointerId); // a stroke that leaves the canvas keeps drawing
  pad.dataset.pointer = event.pointerType;
  strokePointer = event.pointerId;
  clearTimeout(sendTimer);
  stopSlowNotes(); // a countdown to sending the drawing again: it is a new drawing once the pen lifts
  boxes.replaceChildren(); // they belong to the drawing as it was
  if (!strokes.length) frame = pad.getBoundingClientRect(); // a new drawing: its points are shares of the pad now
  stroke = [position(event)];
  strokes.push(stroke);
  drawStroke(stroke);
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke || event.pointerId !== strokePointer) return;
  // No button held: the release happened where the page could not see it (outside the window).
  if (event.buttons === 0) return endStroke(event);
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  const added = [];
  let last = stroke[stroke.length - 1];
  for (const point of (events.length ? events : [event]).map(position)) {
    if (Math.hypot((point.x - last.x) * frame.width, (point.y - last.y) * frame.height) < MIN_STEP_PX) continue;
    added.push(point);
    last = point;
  }
  if (!added.length) return;
  line([stroke[stroke.length - 1], ...added]);
  stroke.push(...added);
});

function endStroke(event) {
  // A cancelled pointer (the browser took it over) ends its stroke as if lifted: the ink is kept.
  if (!stroke || event.pointerId !== strokePointer) return;
  stroke = null;
  clearTimeout(sendTimer);
  sendTimer = setTimeout(send, SEND_DELAY_MS);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke); // a release the page never saw (after pointerup: a no-op)

function clearPad() {
  clearTimeout(sendTimer);
  stopSlowNotes();
  // A stroke being drawn ends here: what the pointer draws after is not shown, as it would not be sent.
  if (stroke && pad.hasPointerCapture(strokePointer)) pad.releasePointerCapture(strokePointer);
  stroke = null;
  strokes = [];
  frame = null;
  paper();
  latestRef = null;
  latestDrawing = null;
  currentId = null;
  unacknowledged = null;
  canvasNumber += 1;
  result.dataset.state = "waiting";
  result.dataset.uncertain = "false";
  digitOut.textContent = "?";
  summary.textContent = "Waiting for a drawing.";
  feedback.hidden = true;
  showBars(null);
  showDigits(null);
}
document.getElementById("clear").addEventListener("click", clearPad);

function storedMode() {
  try {
    return localStorage.getItem(MODE_KEY);
  } catch (err) {
    return null; // storage blocked (a privacy setting): the page still works, it only forgets
  }
}

function setMode(chosen) {
  // A new mode is a new drawing: the pad changes shape, and what it held was meant for the other mode.
  mode = chosen === "number" ? "number" : "digit";
  document.body.dataset.mode = mode;
  modes.querySelector(`input[value="${mode}"]`).checked = true;
  hint.textContent = WORDS[mode].hint;
  pad.setAttribute("aria-label", WORDS[mode].pad);
  clearPad();
  resizePad();
}

modes.addEventListener("change", (event) => {
  setMode(event.target.value);
  try {
    localStorage.setItem(MODE_KEY, mode);
  } catch (err) {
    // not remembered; see storedMode
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  // In a text field (the number being corrected) Escape only leaves the field: wiping the drawing
  // and its answer there would throw away what was being typed.
  const field = event.target;
  if (field.isContentEditable || field.matches("textarea, select, input:not([type=radio])")) field.blur();
  else clearPad();
});

// ---- sending ----------------------------------------------------------------

function send() {
  if (!strokes.length) return;
  const image = pad.toDataURL("image/png"); // for the history, and the drawing itself in image mode
  latestRef = `c${canvasNumber}-${++sequence}`;
  lastSent.set(canvasNumber, sequence);
  result.dataset.state = "waiting";
  // The answer shown is the drawing's before this stroke: not what a correction now would be about.
  currentId = null;
  feedback.inert = true;
  startSlowNotes(latestRef);
  remember(image);
  latestDrawing = { ...(SEND_IMAGE ? { image } : strokesBody()), mode };
  sentUnits = units(); // a PNG of the canvas is in the same pixels
  transmit(latestDrawing, latestRef);
}

function transmit(drawing, ref) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "drawing", ...drawing, ref }));
    unacknowledged = { drawing, ref };
  } else {
    sendOverHttp(drawing, ref);
  }
}

function strokesBody() {
  // In the bitmap's pixels, the size a PNG of the canvas would have, so the server sees the same
  // shape with the same pen; points a stroke made outside the canvas are kept as they are.
  // t: ms since the drawing's first point. One decimal is far below a pixel and keeps frames small.
  const round = (value) => Math.round(value * 10) / 10;
  const start = strokes[0][0].t;
  const u = units();
  return {
    strokes: strokes.map((points) =>
      points.map((p) => [round(p.x * u.x), round(p.y * u.y), Math.max(0, Math.round(p.t - start))]),
    ),
    width: pad.width,
    height: pad.height,
    pen: round(ctx.lineWidth),
  };
}

async function sendOverHttp(drawing, ref) {
  try {
    const response = await fetch("/api/drawings/?wait=10", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(drawing),
    });
    const body = await readJson(response);
    if (!response.ok || !body) show(httpError(response, body, ref));
    else if (response.status === 202) await poll(body.id, ref); // stored, not answered within the wait
    else showDrawing(body, ref);
  } catch (err) {
    show({ type: "error", ref, code: "unreachable", message: UNREACHABLE });
  }
}

function httpError(response, body, ref) {
  // A refusal over HTTP as the websocket's error frame says it: the wait (Retry-After) as retry_after.
  const wait = Number(response.headers.get("Retry-After")) || undefined; // seconds; an HTTP date is not waited for
  return { type: "error", ref, code: body?.error?.code, message: errorText(response, body), retry_after: wait };
}

async function poll(id, ref) {
  show({ type: "queued", ref, id });
  // A drawing cleared from the pad is still polled: its answer goes to its history entry, as a push
  // does. Polling stops once a newer version of the drawing was sent, whose answer is the one kept.
  for (let tries = 0; tries < POLL_TRIES && isLastVersion(ref); tries++) {
    await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
    let response;
    try {
      response = await fetch(`/api/drawings/${id}/`);
    } catch (err) {
      continue; // the server is away for a moment: the drawing is stored, try again
    }
    if (response.status === 429 || response.status === 503) {
      // Reads refused for now (too many, or a server shedding load): the drawing is stored, so it is
      // asked about again after the wait, not given up as unreadable.
      const wait = Number(response.headers.get("Retry-After")) || POLL_EVERY_MS / 1000;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    const body = await readJson(response);
    if (!response.ok || !body) return show({ type: "error", ref, message: errorText(response, body) });
    if (body.status !== "queued") return showDrawing(body, ref);
  }
  // Given up: said on the pad while it shows this drawing; a cleared drawing's entry stays "…".
  if (ref !== latestRef) return;
  show({ type: "error", ref, message: "No answer yet: the server is busy. Draw again in a moment." });
}

async function readJson(response) {
  try {
    return await response.json();
  } catch (err) {
    return null; // not JSON: e.g. a proxy's error page
  }
}

function errorText(response, body) {
  return (body && body.error && body.error.message) || `The server answered ${response.status}.`;
}

function showDrawing(drawing, ref) {
  // A finished drawing as the API describes it: what the websocket's prediction frame holds.
  show({ type: "prediction", ref, ...drawing });
}

// ---- answers ------------------------------------------------------------------

function show(message) {
  if (message.ref !== latestRef) {
    recordOlder(message); // an answer to an older version of the drawing: at most its history entry
    return;
  }
  if (message.type === "queued") return; // feedback waits for the answer, which is what it corrects
  stopSlowNotes();
  feedback.inert = false;
  if (message.type === "error" || message.status === "failed") {
    // Refused, or accepted and then not readable (the reason is the result's `error`).
    result.dataset.state = "error";
    digitOut.textContent = "!";
    summary.textContent = message.type === "error" ? message.message : message.error || "It could not be read.";
    // Strokes the page made that the server refuses are too many: each stroke added is refused again.
    if (message.code === "invalid_strokes") summary.textContent = TOO_LONG;
    if (message.type === "error" && message.retry_after > 0) sendAgainLater(message);
    feedback.hidden = true;
    showBars(null); // the last answer's: not this drawing's
    showDigits(null);
    recordAnswer(message);
    return;
  }
  currentId = message.id;
  if (message.status === "blank") {
    result.dataset.state = "blank";
    digitOut.textContent = "–";
    // The page sends only ink: what the server found blank was too small or too sparse to read.
    summary.textContent = `Nothing to read there: draw ${WORDS[mode].what}, larger.`;
    feedback.hidden = true;
    showBars(null);
    showDigits(null);
    recordAnswer(message);
    return;
  }
  result.dataset.state = "answered";
  const number = message.mode === "number";
  const read = mark(message);
  digitOut.textContent = read;
  const sure = `${(message.confidence * 100).toFixed(1)} % sure`;
  if (number) {
    summary.textContent = message.uncertain
      ? `Perhaps ${read} (only ${sure}): is it a number?`
      : `It reads ${read} (${sure}).`;
  } else {
    summary.textContent = message.uncertain
      ? `Perhaps ${aDigit(read)} (only ${sure}): is it a digit?`
      : `It is ${aDigit(read)} (${sure}).`;
  }
  result.dataset.uncertain = message.uncertain ? "true" : "false";
  showBars(message.probabilities);
  showDigits(number ? message.digits : null);
  feedbackDigits.value = number ? read : ""; // to correct a digit or two, not type them all
  feedback.hidden = false;
  feedbackStatus.textContent = "";
  recordAnswer(message);
}

function aDigit(digit) {
  return `${String(digit) === "8" ? "an" : "a"} ${digit}`;
}

function startSlowNotes(ref) {
  // Most answers come in a few milliseconds, so nothing changes for them: only a late one gets a note.
  stopSlowNotes();
  const note = (text) => () => {
    if (ref !== latestRef || result.dataset.state !== "waiting") return;
    digitOut.textContent = "…";
    summary.textContent = text;
    feedback.hidden = true;
    showBars(null); // the last answer's, which this drawing may no longer be
    showDigits(null);
  };
  slowTimers = [
    setTimeout(note("Reading…"), READING_AFTER_MS),
    setTimeout(note("Still reading: the server is busy. The answer will show here."), BUSY_AFTER_MS),
  ];
}

function stopSlowNotes() {
  slowTimers.forEach(clearTimeout); // the countdown's interval too: timeouts and intervals share their ids
  slowTimers = [];
}

function sendAgainLater(message) {
  // Refused for now (too many drawings, a busy server): the seconds left are counted down, and the
  // drawing goes again when they are up. Clear or a stroke added stops the count (stopSlowNotes).
  const reason = WAIT_REASONS[message.code] || "The server is busy";
  const due = Date.now() + message.retry_after * 1000;
  const tick = () => {
    const left = Math.ceil((due - Date.now()) / 1000);
    if (left > 0) summary.textContent = `${reason}: sending it again in ${left} s.`;
    else sendAgain();
  };
  tick();
  slowTimers.push(setInterval(tick, 1000));
}

function sendAgain() {
  stopSlowNotes();
  result.dataset.state = "waiting";
  digitOut.textContent = "…";
  summary.textContent = "Sending it again…";
  startSlowNotes(latestRef);
  transmit(latestDrawing, latestRef);
}

function showDigits(digits) {
  // A number's digits, left to right with their confidences, and their boxes over the ink. Digit
  // mode shows none: its one box is the whole drawing.
  digitsList.replaceChildren();
  boxes.replaceChildren();
  if (!digits || !sentUnits || !frame) return;
  boxes.setAttribute("viewBox", viewBox());
  boxes.setAttribute("preserveAspectRatio", "none"); // the viewBox is the whole pad: it fits exactly
  digits.forEach((read, index) => {
    const sure = `${(read.confidence * 100).toFixed(1)} %`;
    const item = document.createElement("li");
    item.append(Object.assign(document.createElement("b"), { textContent: read.digit }), sure);
    item.title = `digit ${index + 1}: ${read.digit}, ${sure} sure`;
    digitsList.appendChild(item);
    const [x0, y0, x1, y1] = read.box;
    const rect = document.createElementNS(SVG_NS, "rect");
    for (const [name, value] of Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 })) {
      rect.setAttribute(name, value);
    }
    boxes.appendChild(rect);
  });
}

function buildBars() {
  for (let d = 0; d < 10; d++) {
    const item = document.createElement("li");
    item.innerHTML = `<span class="track"><span class="fill"></span></span><span>${d}</span>`;
    bars.appendChild(item);
  }
}

function showBars(probabilities) {
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  [...bars.children].forEach((item, d) => {
    const p = probabilities ? probabilities[d] : 0;
    item.querySelector(".fill").style.height = `${(p * 100).toFixed(1)}%`;
    item.classList.toggle("top", d === top);
    item.title = `${d}: ${(p * 100).toFixed(1)} %`;
  });
}

// ---- feedback and history ---------------------------------------------------

function buildFeedback() {
  const holder = document.getElementById("feedback-buttons");
  for (let d = 0; d < 10; d++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = d;
    button.setAttribute("aria-label", `It was ${aDigit(d)}`);
    button.addEventListener("click", () => sendFeedback({ label: d }));
    holder.appendChild(button);
  }
  // A number is typed: its digits, left to right (the browser checks the pattern before submitting).
  feedbackDigits.addEventListener("input", () => (feedbackStatus.textContent = "")); // not beside a new error
  document.getElementById("feedback-number").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFeedback({ number: feedbackDigits.value });
  });
}

async function sendFeedback(answer) {
  if (!currentId) return;
  const said = answer.number ?? answer.label;
  // The drawing corrected is the one shown now: by the time the server answers, the pad may have
  // been cleared (or its mode switched) and hold another.
  const [id, canvas, version] = [currentId, canvasNumber, lastSent.get(canvasNumber)];
  const tell = (text) => {
    if (id === currentId) feedbackStatus.textContent = text; // not beside another drawing's answer
  };
  try {
    const response = await fetch(`/api/drawings/${id}/feedback/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(answer),
    });
    if (response.ok) {
      tell(`Thanks: noted as ${said}.`);
      if (lastSent.get(canvas) === version) recordCorrection(said, canvas); // its entry shows this version
    } else {
      tell(`Could not save that: ${errorText(response, await readJson(response))}`);
    }
  } catch (err) {
    tell("Could not reach the server to save that; try again.");
  }
}

function historyEntry(canvas = canvasNumber) {
  let item = historyList.querySelector(`[data-canvas="${canvas}"]`);
  if (!item && canvas !== canvasNumber) return null; // an older canvas's, scrolled out of the history
  if (!item) {
    item = document.createElement("li");
    item.dataset.canvas = canvasNumber;
    item.innerHTML = '<img alt=""><b>…</b>';
    historyList.prepend(item);
    while (historyList.children.length > HISTORY_SIZE) historyList.lastChild.remove();
  }
  return item;
}

function remember(image) {
  const item = historyEntry();
  item.dataset.mode = mode; // a number's picture is wide
  item.querySelector("img").src = image;
}

function recordAnswer(message, canvas = canvasNumber) {
  record(canvas, mark(message), whatBecameOf(message));
}

function recordCorrection(said, canvas) {
  record(canvas, `${said} ✓`, `drawing you said is ${said}`);
}

function record(canvas, text, alt) {
  const item = historyEntry(canvas);
  if (!item) return;
  item.querySelector("b").textContent = text;
  item.querySelector("img").alt = alt;
}

function whatBecameOf(message) {
  // The history picture's alt text: a refused or unsent drawing was not unreadable, and says so.
  if (message.type === "error") return NOT_READ[message.code] || "drawing the server did not read";
  if (message.status === "failed") return "drawing that could not be read";
  if (message.status === "blank") return "drawing with nothing to read";
  return `drawing read as ${mark(message)}`;
}

function mark(message) {
  // What an answer says in a word: the digit or number read, or a mark for blank and unreadable.
  if (message.type === "error" || message.status === "failed") return "!";
  if (message.status === "blank") return "–";
  return message.mode === "number" ? message.number : String(message.digit);
}

function refParts(ref) {
  return (ref || "").slice(1).split("-").map(Number); // refs are "c<canvas>-<sequence>"
}

function isLastVersion(ref) {
  // Whether this is the latest version sent of its canvas's drawing (a stroke added sends another).
  const [canvas, sent] = refParts(ref);
  return sent === lastSent.get(canvas);
}

function recordOlder(message) {
  // A canvas cleared before its answer came keeps its history entry: the answer to its last version
  // goes there, not on the screen.
  const [canvas] = refParts(message.ref);
  if (message.type === "queued" || canvas === canvasNumber || !isLastVersion(message.ref)) return;
  recordAnswer(message, canvas);
}

// ---- websocket ----------------------------------------------------------------

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const opened = new WebSocket(`${scheme}://${location.host}/ws/recognize/`);
  socket = opened;
  socket.addEventListener("open", () => {
    reconnectDelay = 500;
    setConnection("online", "online");
    // A result pushed while the socket was down is lost: ask where each awaited drawing is
    // (the answer, or "queued" with the server listening for its result again), a cleared one's
    // too, whose answer goes to its history entry.
    for (const [id, ref] of awaited) {
      if (isLastVersion(ref)) socket.send(JSON.stringify({ type: "status", id, ref }));
      else awaited.delete(id); // an older version of a drawing, whose answer would not be kept
    }
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (unacknowledged && message.ref === unacknowledged.ref) unacknowledged = null;
    if (message.type === "queued") awaited.set(message.id, message.ref);
    else if (message.id) awaited.delete(message.id); // answered
    if (message.type === "error" && !message.ref) return; // about the socket (see "close"), no drawing's
    if (message.type === "error" && askAgainLater(message)) return; // a status refused, not the drawing
    show(message);
  });
  socket.addEventListener("close", (event) => {
    if (opened !== socket) return; // closed as the page was left (pagehide): pageshow opens another
    // Refused as one socket too many (1013: try again later): drawings go over HTTP, and the socket
    // is tried again seldom, not twice a second.
    const refused = event.code === 1013;
    if (refused) reconnectDelay = Math.max(reconnectDelay, REFUSED_RETRY_MS);
    setConnection("offline", refused ? "too many tabs open here — answers over HTTP" : "reconnecting… (answers over HTTP)");
    reconnectTimer = setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, refused ? 6 * REFUSED_RETRY_MS : 5000);
    sendUnacknowledgedOverHttp();
  });
}

function askAgainLater(message) {
  // A status asked after a reconnect and refused for now (too many requests): the drawing itself is
  // stored and queued, so it is not sent again (stored twice); its status is asked again after the wait.
  const [id] = [...awaited].find(([, ref]) => ref === message.ref) || [];
  if (!id || !(message.retry_after > 0)) return false;
  setTimeout(() => {
    if (awaited.has(id) && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "status", id, ref: message.ref }));
    }
  }, message.retry_after * 1000);
  return true;
}

function sendUnacknowledgedOverHttp() {
  // A drawing the server never acknowledged may never have reached it: sent again, over HTTP.
  if (unacknowledged && unacknowledged.ref === latestRef) sendOverHttp(unacknowledged.drawing, unacknowledged.ref);
  unacknowledged = null;
}

// An open websocket keeps the page out of the browser's back/forward cache, and Back would load it
// anew, its history and any unanswered drawing lost. So the socket is closed when the page is left,
// and opened again when the page comes back from the cache; on opening it asks about the drawing it
// still awaits, as after any reconnect.
window.addEventListener("pagehide", () => {
  clearTimeout(reconnectTimer);
  const leaving = socket;
  socket = null; // its close event is not a connection lost
  if (leaving) leaving.close();
});
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return; // a page loaded anew connects below
  setConnection("connecting", "connecting…");
  connect();
  sendUnacknowledgedOverHttp(); // sent as the page was left: no reply came
});

buildBars();
buildFeedback();
setMode(storedMode()); // draws the paper at the pad's size
window.addEventListener("resize", resizePad);
watchPixelRatio();
connect();
