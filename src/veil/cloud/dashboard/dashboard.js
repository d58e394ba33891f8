// Veil dashboard: polls the service's JSON API and draws each camera's latest obfuscated
// frame with its boxes and an SVG chart of its people count. Plain JS, nothing fetched
// from outside this service.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const cards = new Map();

function element(tag, attrs = {}, ns = null) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
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

async function json(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function refresh() {
  const cameras = await json("v1/cameras");
  for (const summary of cameras) {
    const parts = card(summary.camera);
    const base = `v1/cameras/${encodeURIComponent(summary.camera)}`;
    const [latest, history] = await Promise.all([json(`${base}/latest`), json(`${base}/history`)]);
    parts.people.textContent = `${latest.people} people`;
    parts.root.dataset.people = latest.people;
    parts.root.dataset.frames = latest.frames;
    if (summary.has_image && latest.frames !== parts.frames) {
      parts.img.src = `${base}/frame?n=${latest.frames}`;
      parts.frames = latest.frames;
    }
    drawBoxes(parts.boxes, latest);
    drawChart(parts.chart, history);
    parts.meta.textContent = `${latest.frames} frames, last ${new Date(latest.ts * 1000).toLocaleTimeString()}`;
  }
  document.getElementById("status").textContent =
    `${cameras.length} camera(s), updated ${new Date().toLocaleTimeString()}`;
}

async function loop() {
  try {
    await refresh();
  } catch (error) {
    document.getElementById("status").textContent = `cannot reach the service: ${error.message}`;
  }
  setTimeout(loop, 1000);
}

loop();
