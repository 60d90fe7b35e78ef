// The page of `mobilenetv2 serve`: send a photo to /v1/predict and draw the answer. Class names are only ever set
// as text (textContent), never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("mobilenetv2-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("mobilenetv2-key", keyInput.value));

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (keyInput.value) h["X-API-Key"] = keyInput.value;
  return h;
}

function row(table, name, value) {
  const tr = table.insertRow();
  tr.insertCell().textContent = name;
  tr.insertCell().textContent = value;
}

async function loadCard() {
  const card = await (await fetch("/v1/model")).json();
  $("model-line").textContent = `${card.task} · ${card.model} · ${card.backend}`;
  const table = $("card-table");
  row(table, "task", card.task);
  row(table, "model", card.model);
  row(table, "backend", card.backend);
  row(table, "classes", `${card.class_names.length}: ${card.class_names.slice(0, 30).join(", ")}${card.class_names.length > 30 ? ", …" : ""}`);
  row(table, "input", `${card.preprocessing.input_size} px`);
  if (card.parameters) row(table, "parameters", card.parameters.toLocaleString());
  if (card.multiply_adds) row(table, "multiply-adds", `${(card.multiply_adds / 1e6).toFixed(1)}M`);
}

function showError(text) {
  const status = $("status");
  status.textContent = text;
  status.className = "error";
}

let latest = 0;  // answers to an older upload than the latest are dropped

async function send(file) {
  if (!file) return;
  const mine = ++latest;
  $("result").hidden = false;
  $("status").className = "";
  $("status").textContent = "predicting…";
  $("labels").replaceChildren();
  const canvas = $("canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  const bitmap = await createImageBitmap(file).catch(() => null);
  let response, answer;
  try {
    response = await fetch("/v1/predict?top_k=5", {method: "POST", body: file,
      headers: headers({"Content-Type": file.type || "application/octet-stream"})});
    const text = await response.text();
    try { answer = JSON.parse(text); } catch { answer = {error: text.slice(0, 200) || response.statusText}; }
  } catch (e) {
    if (mine === latest) showError(`no answer from the server: ${e}`);
    return;
  }
  if (mine !== latest) return;
  if (!response.ok) return showError(`error ${response.status}: ${answer.error}`);
  $("status").textContent = `${answer.task}, ${answer.latency_ms} ms on the server (${answer.backend})`;
  if (bitmap) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
  }
  if (answer.task === "classification") drawLabels(answer);
  else if (answer.task === "segmentation") await drawMask(answer, canvas);
  else if (answer.task === "detection") drawBoxes(answer, canvas);
}

function addItem(text, share) {
  const li = document.createElement("li");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = text;
  li.append(label);
  if (share !== undefined) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(100 * share))}%`;
    li.append(bar);
  }
  $("labels").append(li);
}

function drawLabels(answer) {
  answer.labels.forEach((name, i) => addItem(`${name} ${(100 * answer.probabilities[i]).toFixed(1)}%`, answer.probabilities[i]));
}

async function drawMask(answer, canvas) {
  const mask = new Image();
  mask.src = `data:image/png;base64,${answer.mask_png}`;
  await mask.decode();
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 0.5;
  ctx.drawImage(mask, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  for (const [name, share] of Object.entries(answer.fractions)) addItem(`${name} ${(100 * share).toFixed(1)}%`, share);
}

function drawBoxes(answer, canvas) {
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = Math.max(2, Math.round(canvas.width / 400));
  ctx.font = `${Math.max(12, Math.round(canvas.width / 60))}px sans-serif`;
  for (const d of answer.detections) {
    const [x0, y0, x1, y1] = d.box;
    ctx.strokeStyle = "red";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillStyle = "red";
    ctx.fillText(`${d.label} ${d.score.toFixed(2)}`, x0, Math.max(12, y0 - 3));
  }
  for (const [name, count] of Object.entries(answer.counts)) addItem(`${name} × ${count}`);
  if (!answer.detections.length) addItem("nothing detected");
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); send(e.dataTransfer.files[0]); });
$("file").addEventListener("change", (e) => { send(e.target.files[0]); e.target.value = ""; });  // the same file again is a new upload
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) send(item.getAsFile());
});
loadCard().catch((e) => showError(`no model card: ${e}`));
