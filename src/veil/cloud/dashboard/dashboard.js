// Veil dashboard: asks for a viewer token, then draws each camera's latest obfuscated frame with its
// boxes and an SVG chart of its people count. Live updates come over Server-Sent Events read with
// fetch() (so the token travels in the Authorization header, never in a URL); when the stream
// drops, the page polls until it can reconnect. Images are fetched the same way and shown as blobs.
// Plain JS, nothing fetched from outside this service. The token stays in this tab's sessionStorage.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const KEY = "veil-viewer-token";
const POLL_MS = 2000;
const RECONNECT_MS = 3000;
const cards = new Map();
let token = sessionStorage.getItem(KEY);
let live = false;
let session = 0; // bumped on sign-out: loops of an old session stop

class Refused extends Error {}

function element(tag, attrs = {}, ns = null) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function status(text) {
  document.getElementById("status").textContent = text;
}

async function api(path) {
  const response = await fetch(path, {
    cache: "no-store", credentials: "omit", headers: { Authorization: `Bearer ${token}` },
  });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    throw new Refused(body.detail || `refused (${response.status})`);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response;
}

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const root = element("div", { class: "camera", "data-camera": name });
  const title = element("h2");
  const label = element("span");
  label.textContent = name;
  const people = element("span", { class: "people" });
  title.append(label, people);
  const view = element("div", { class: "view" });
  const img = element("img", { alt: `latest obfuscated frame of ${name}` });
  const boxes = element("svg", { class: "boxes", preserveAspectRatio: "none" }, SVG);
  view.append(img, boxes);
  const chart = element("svg", { class: "chart", viewBox: "0 0 400 110", preserveAspectRatio: "none" }, SVG);
  const meta = element("div", { class: "meta" });
  root.append(title, view, chart, meta);
  document.getElementById("cameras").append(root);
  const parts = { root, people, img, boxes, chart, meta, frames: -1 };
  cards.set(name, parts);
  return parts;
}

function drawBoxes(svg, latest) {
  svg.setAttribute("viewBox", `0 0 ${latest.width} ${latest.height}`);
  svg.replaceChildren(...latest.detections.map(({ box: [x1, y1, x2, y2] }) =>
    element("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, SVG)));
}

function drawChart(svg, points) {
  svg.replaceChildren();
  if (points.length === 0) return;
  const t0 = points[0].ts, t1 = points[points.length - 1].ts;
  const top = Math.max(1, ...points.map((p) => p.people));
  const x = (p) => (t1 > t0 ? ((p.ts - t0) / (t1 - t0)) * 380 + 10 : 200);
  const y = (p) => 100 - (p.people / top) * 90;
  svg.append(element("polyline", {
    points: points.map((p) => `${x(p).toFixed(1)},${y(p).toFixed(1)}`).join(" "),
    "data-count": points.length,
  }, SVG));
  const max = element("text", { x: 2, y: 9 }, SVG);
  max.textContent = `max ${top}`;
  svg.append(max);
}

async function showImage(parts, base, frames) {
  const response = await fetch(`${base}/frame`, {
    cache: "no-store", credentials: "omit", headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) return; // expired between the summary and now: the next update draws it
  const url = URL.createObjectURL(await response.blob());
  const old = parts.img.src;
  parts.img.src = url;
  parts.frames = frames;
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

async function update(summary) {
  const parts = card(summary.camera);
  const base = `v1/cameras/${encodeURIComponent(summary.camera)}`;
  const [latest, history] = await Promise.all([
    api(`${base}/latest`).then((r) => r.json()), api(`${base}/history`).then((r) => r.json())]);
  parts.people.textContent = `${latest.people} people`;
  parts.root.dataset.people = latest.people;
  parts.root.dataset.frames = latest.frames;
  if (summary.has_image && latest.frames !== parts.frames) await showImage(parts, base, latest.frames);
  if (!summary.has_image && parts.img.src) {
    URL.revokeObjectURL(parts.img.src);
    parts.img.removeAttribute("src");
    parts.frames = -1;
  }
  drawBoxes(parts.boxes, latest);
  drawChart(parts.chart, history);
  parts.meta.textContent = `${latest.frames} frames, last ${new Date(latest.ts * 1000).toLocaleTimeString()}`;
}

function setLive(value) {
  live = value;
  document.body.dataset.mode = live ? "live" : "polling";
}

function updated(count) {
  status(`${count} camera(s), updated ${new Date().toLocaleTimeString()} (${live ? "live" : "polling"})`);
}

async function refresh() {
  const cameras = await (await api("v1/cameras")).json();
  for (const summary of cameras) await update(summary);
  updated(cameras.length);
}

function handle(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (event === "camera") return update(JSON.parse(data)).then(() => updated(cards.size));
  if (event === "revoked") signOut("the token was revoked or has expired");
  return null;
}

// The live stream: fetch() with the Authorization header, read as text/event-stream by hand.
async function stream(mine) {
  while (mine === session) {
    try {
      const response = await fetch("v1/stream", {
        cache: "no-store", credentials: "omit",
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      });
      if (response.status === 401 || response.status === 403) {
        signOut("the token was refused");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
      setLive(true);
      updated(cards.size);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      while (mine === session) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          await handle(block);
        }
      }
      reader.cancel().catch(() => {});
    } catch (error) {
      if (error instanceof Refused) {
        signOut(error.message);
        return;
      }
    }
    setLive(false); // the poller takes over until the stream is back
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function poll(mine) {
  while (mine === session) {
    if (!live) {
      try {
        await refresh();
      } catch (error) {
        if (error instanceof Refused) {
          signOut(error.message);
          return;
        }
        status(`cannot reach the service: ${error.message}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function start() {
  session += 1;
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  stream(session);
  poll(session);
}

function signOut(reason) {
  session += 1;
  setLive(false);
  token = null;
  sessionStorage.removeItem(KEY);
  for (const parts of cards.values()) parts.root.remove();
  cards.clear();
  document.getElementById("logout").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = reason || "";
  status("signed out");
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault(); // never a form submission: the token would end up in a URL
  const input = document.getElementById("token");
  token = input.value.trim();
  input.value = "";
  try {
    await refresh();
  } catch (error) {
    signOut(error instanceof Refused ? error.message : `cannot reach the service: ${error.message}`);
    return;
  }
  sessionStorage.setItem(KEY, token);
  start();
});
document.getElementById("logout").addEventListener("click", () => signOut(""));

if (token) start();
else signOut("");
