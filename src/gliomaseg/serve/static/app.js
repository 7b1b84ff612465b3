// gliomaseg viewer: upload, poll the job, show slices with the predicted label map.
"use strict";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
// Label colours and names: BraTS (1 necrotic core, 2 edema, 3 or 4 enhancing), else one tumor label.
const BRATS = { 1: ["necrotic / non-enhancing core", [255, 60, 60]], 2: ["edema", [60, 220, 60]],
                3: ["enhancing tumor", [255, 230, 40]], 4: ["enhancing tumor", [255, 230, 40]] };
const BINARY = { 1: ["tumor", [255, 40, 40]] };
const state = { job: null, cases: [], caseIndex: 0, slice: 0, image: null, label: null, cache: new Map() };

async function api(path, options = {}) {
  const response = await fetch("/api/v1" + path, { ...options, headers: { ...headers, ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

function showError(message) { $("error").textContent = message; $("status").textContent = ""; $("progress").hidden = true; }

function upload(files) {
  $("error").textContent = ""; $("result").hidden = true;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/v1/jobs");
  if (token) request.setRequestHeader("Authorization", "Bearer " + token);
  $("progress").hidden = false; $("progress").value = 0;
  request.upload.onprogress = (e) => { if (e.lengthComputable) $("progress").value = e.loaded / e.total; };
  request.onerror = () => showError("upload failed: the server cannot be reached");
  request.onload = () => {
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
    if (request.status !== 202) { showError(`upload refused (${request.status}): ${body.detail || request.statusText}`); return; }
    $("status").textContent = "queued"; poll(body.id);
  };
  $("status").textContent = `uploading ${files.length} file(s)…`;
  request.send(form);
}

async function poll(id) {
  try {
    const job = await (await api(`/jobs/${id}`)).json();
    $("status").textContent = `${job.status}${job.seconds ? ` (${job.seconds} s)` : ""}`;
    if (job.status === "queued" || job.status === "running") { setTimeout(() => poll(id), 300); return; }
    $("progress").hidden = true;
    if (job.status === "failed") { showError(job.error); return; }
    showResults(await (await api(`/jobs/${id}/results`)).json());
  } catch (e) { showError(e.message); }
}

function showResults(results) {
  state.job = results.id; state.cases = results.cases; state.cache.clear();
  $("case").replaceChildren(...results.cases.map((c, i) => new Option(c.id, i)));
  $("case-choice").hidden = results.cases.length < 2;
  $("problems").textContent = results.problems.length ? "Skipped: " + results.problems.join("; ") : "";
  $("result").hidden = false; $("status").textContent = `done: ${results.cases.length} case(s), model ${results.model}, ${results.seconds} s`;
  selectCase(0);
}

function legendOf(c) { return c.dataset === "brats" ? BRATS : BINARY; }

function selectCase(index) {
  const c = state.cases[index]; state.caseIndex = index;
  const legend = legendOf(c);
  $("legend").replaceChildren(...[...new Set(Object.values(legend).map((v) => v[0]))].map((name) => {
    const colour = Object.values(legend).find((v) => v[0] === name)[1];
    const item = document.createElement("li");
    item.innerHTML = `<span class="swatch" style="background: rgb(${colour})"></span>`;
    item.append(name); return item;
  }));
  $("volumes").tBodies[0].replaceChildren(...Object.entries(c.regions).map(([name, r]) => {
    const row = document.createElement("tr");
    for (const value of [name, r.voxels, r.ml === null ? "– (no spacing)" : r.ml.toFixed(2)]) row.insertCell().textContent = value;
    return row;
  }));
  const scores = Object.entries(c.metrics || {}).filter(([key]) => key.endsWith("dice") || key.endsWith("hd95"));
  $("metrics").hidden = !scores.length;
  $("metrics").querySelector("tbody").replaceChildren(...scores.map(([key, value]) => {
    const row = document.createElement("tr");
    row.insertCell().textContent = key.replace("_", " ") + (key.endsWith("hd95") ? (c.volumetric ? " (mm)" : " (pixels)") : "");
    row.insertCell().textContent = value === null ? "–" : value.toFixed(key.endsWith("dice") ? 4 : 1);
    return row;
  }));
  $("slice").max = c.slices - 1;
  const areas = Object.values(c.regions)[0].slice_area_pixels;
  setSlice(areas.indexOf(Math.max(...areas)));  // start on the slice with the largest tumor area
}

async function loadBitmap(url) {
  if (!state.cache.has(url)) state.cache.set(url, api(url).then((r) => r.blob()).then((b) => createImageBitmap(b)));
  return state.cache.get(url);
}

async function setSlice(index) {
  const c = state.cases[state.caseIndex];
  index = Math.max(0, Math.min(c.slices - 1, index));
  state.slice = index; $("slice").value = index; $("slice-label").textContent = `${index + 1} / ${c.slices}`;
  const base = `/jobs/${state.job}/cases/${state.caseIndex}/slices/${index}`;
  try {
    const [image, label] = await Promise.all([loadBitmap(base + "/image.png"), loadBitmap(base + "/label.png")]);
    if (state.slice === index) { state.image = image; state.label = label; draw(); }
  } catch (e) { showError(e.message); }
}

function draw() {
  const canvas = $("canvas"), image = state.image, label = state.label;
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const scratch = new OffscreenCanvas(label.width, label.height).getContext("2d");
  scratch.drawImage(label, 0, 0);
  const values = scratch.getImageData(0, 0, label.width, label.height).data;  // grey: R = label value
  const picture = context.getImageData(0, 0, canvas.width, canvas.height), out = picture.data;
  const alpha = $("opacity").value / 100, outline = $("mode").value === "outline", legend = legendOf(state.cases[state.caseIndex]);
  const w = label.width, h = label.height, at = (x, y) => values[4 * (y * w + x)];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = at(x, y);
    if (!v || !legend[v]) continue;
    if (outline && x > 0 && y > 0 && x < w - 1 && y < h - 1 && at(x - 1, y) === v && at(x + 1, y) === v && at(x, y - 1) === v && at(x, y + 1) === v) continue;
    const colour = legend[v][1], i = 4 * (y * w + x), a = outline ? Math.max(alpha, 0.9) : alpha;
    for (let k = 0; k < 3; k++) out[i + k] = Math.round((1 - a) * out[i + k] + a * colour[k]);
  }
  context.putImageData(picture, 0, 0);
  canvas.dataset.slice = String(state.slice); canvas.dataset.alpha = String(alpha);
}

async function download() {
  try {
    const blob = await (await api(`/jobs/${state.job}/mask.zip`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob); link.download = `gliomaseg-${state.job}.zip`;
    document.body.append(link); link.click(); link.remove();
  } catch (e) { showError(e.message); }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) upload(e.dataTransfer.files); });
$("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files); });
$("slice").addEventListener("input", (e) => setSlice(Number(e.target.value)));
$("opacity").addEventListener("input", () => state.image && draw());
$("mode").addEventListener("change", () => state.image && draw());
$("case").addEventListener("change", (e) => selectCase(Number(e.target.value)));
$("canvas").addEventListener("wheel", (e) => { e.preventDefault(); setSlice(state.slice + Math.sign(e.deltaY)); }, { passive: false });
document.addEventListener("keydown", (e) => {
  if ($("result").hidden || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (e.key === "ArrowUp" || e.key === "ArrowRight") { e.preventDefault(); setSlice(state.slice + 1); }
  if (e.key === "ArrowDown" || e.key === "ArrowLeft") { e.preventDefault(); setSlice(state.slice - 1); }
});
$("download").addEventListener("click", download);
api("/models").then((r) => r.json()).then((models) => { $("models").textContent = "models: " + models.map((m) => `${m.name} (${m.dataset})`).join(", "); })
  .catch((e) => showError(e.message));
