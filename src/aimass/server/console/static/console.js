// The console's only script (a static file, so the pages' CSP needs no inline script):
// confirmation before forms marked data-confirm, the live job page (server-sent events and
// a loss chart), and the dataset upload with its progress.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

const SVG = "http://www.w3.org/2000/svg";  // the SVG namespace's name: never fetched

function drawCurve(holder, points) {
  // The training loss as an SVG polyline (built with the DOM: no inline markup or style).
  if (!holder || !points || points.length < 2) return;
  const width = 640, height = 200, pad = 28;
  const steps = points.map((p) => p[0]), losses = points.map((p) => p[1]);
  const x0 = Math.min(...steps), x1 = Math.max(...steps) || 1;
  const y0 = Math.min(...losses), y1 = Math.max(...losses);
  const x = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "curve");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `training loss from ${y1.toFixed(3)} to ${losses[losses.length - 1].toFixed(3)}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
  svg.appendChild(line);
  for (const [label, px, py] of [[y1.toFixed(3), 2, pad], [y0.toFixed(3), 2, height - pad], [`step ${x1}`, width - pad - 40, height - 6]]) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", px);
    text.setAttribute("y", py);
    text.textContent = label;
    svg.appendChild(text);
  }
  holder.replaceChildren(svg);
}

function showJob(job) {
  document.getElementById("job-status").textContent = job.status;
  document.getElementById("job-status").className = `status ${job.status}`;
  document.getElementById("job-progress").value = job.progress;
  document.getElementById("job-percent").textContent = `${Math.round(100 * job.progress)} %`;
  const { curve, ...rest } = job.metrics || {};
  document.getElementById("job-metrics").textContent = JSON.stringify(rest, null, 2);
  drawCurve(document.getElementById("job-curve"), curve);
  if (job.error) {
    const error = document.getElementById("job-error");
    error.textContent = job.error;
    error.hidden = false;
  }
}

function followJob(box) {
  // Server-sent events: the job and its new log lines while it runs.
  const logs = document.getElementById("job-logs");
  const source = new EventSource(`${box.dataset.eventsUrl}?after=${box.dataset.after || 0}`);
  source.addEventListener("message", (event) => {
    const update = JSON.parse(event.data);
    showJob(update.job);
    for (const line of update.logs) {
      logs.textContent += `${line.text}\n`;
    }
    if (update.job.finished) {
      source.close();
      window.location.reload();  // the finished page shows the result and its links
    }
  });
  window.addEventListener("beforeunload", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("job");
  if (!box) return;
  drawCurve(document.getElementById("job-curve"), JSON.parse(box.dataset.curve || "[]"));
  if (box.dataset.finished === "no") followJob(box);
});

// Dataset upload: the file is read here and sent base64 in a form post, so the page can
// show the upload's progress; the server validates every row before storing any.
function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return window.btoa(text);
}

const FORMATS = { jsonl: "jsonl", ndjson: "jsonl", csv: "csv", parquet: "parquet", conll: "conll", bio: "conll", iob: "conll" };

document.addEventListener("DOMContentLoaded", () => {
  const upload = document.getElementById("upload");
  if (!upload) return;
  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = document.getElementById("upload-message");
    const bar = document.getElementById("upload-progress");
    const file = upload.elements.file.files[0];
    const format = FORMATS[(file.name.split(".").pop() || "").toLowerCase()];
    if (!format) {
      message.textContent = `cannot tell the format of ${file.name}: use .jsonl, .csv, .parquet or .conll`;
      return;
    }
    const fields = new URLSearchParams();
    for (const name of ["csrf", "name", "kind", "text_field", "label_field", "deidentify"]) {
      fields.set(name, upload.elements[name].value);
    }
    fields.set("format", format);
    fields.set("content_base64", toBase64(await file.arrayBuffer()));
    const request = new XMLHttpRequest();
    request.open("POST", upload.dataset.target);
    request.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    bar.hidden = false;
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) bar.value = progress.loaded / progress.total;
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (error) { body = {}; }
      if (request.status === 200 && body.redirect) {
        message.textContent = "stored; opening it ...";
        window.location.assign(body.redirect);
      } else {
        message.textContent = body.error || `the upload failed (${request.status})`;
        message.className = "error";
      }
    });
    message.textContent = `uploading ${file.name} ...`;
    request.send(fields.toString());
  });
});

// Generation: the form is posted with fetch and the server-sent events are read from the
// response as they arrive, so the text appears token by token.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("generate");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = document.getElementById("generated");
    const info = document.getElementById("generated-info");
    out.textContent = "";
    info.textContent = "generating ...";
    const response = await fetch(form.dataset.target, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/event-stream" },
      body: new URLSearchParams(new FormData(form)).toString(),
    });
    if (!response.ok || !response.body) {
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const error = page.querySelector(".error");
      info.textContent = error ? error.textContent : `generation failed (${response.status})`;
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", name = "message";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.startsWith("event: ")) name = line.slice(7);
        if (!line.startsWith("data: ")) continue;
        const data = JSON.parse(line.slice(6));
        if (name === "token") out.textContent += data.text;
        if (name === "done") {
          info.textContent = `${data.usage.completion_tokens} tokens, ${data.finish_reason}, ${data.timing.tokens_per_second} tokens/s`;
        }
        if (name === "error") info.textContent = data.message;
      }
    }
  });
});
