// DOM helpers. Text only ever enters the page as text nodes (no HTML
// parsing sink is used anywhere in the client; server_test.go checks), so
// a message holding markup shows the markup.

// h creates an element. attrs: "class", "text" (textContent), "on<event>"
// (a listener), anything else set as an attribute (false/null skips it).
// children: nodes or strings (as text nodes), nested arrays flattened.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export const $ = (id) => document.getElementById(id);

// searchTerms extracts the words of a search query worth highlighting:
// quoted phrases' words, prefixes without their *, no operators.
export function searchTerms(query) {
  const words = query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
  return [...new Set(words.filter((w) => !["and", "or", "not"].includes(w)))];
}

// highlight returns text as a fragment with each occurrence of a term
// (case-insensitive, at a word start, as the index matches prefixes) in a
// <mark> of class cls, if given.
export function highlight(text, terms, cls) {
  const frag = document.createDocumentFragment();
  if (!terms.length) {
    frag.appendChild(document.createTextNode(text));
    return frag;
  }
  const esc = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp("(?<![\\p{L}\\p{N}_])(" + esc.join("|") + ")", "giu");
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
    frag.appendChild(h("mark", { class: cls, text: m[0] }));
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
  return frag;
}

// groupDigits spaces a fingerprint into blocks of five for reading aloud.
export function groupDigits(s) {
  const clean = String(s).replace(/\s+/g, "");
  return (clean.match(/.{1,5}/g) || []).join(" ");
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export const fmtTime = (t) => timeFmt.format(new Date(t));
export const fmtDay = (t) => dayFmt.format(new Date(t));
export const fmtFull = (t) => fullFmt.format(new Date(t));

// drawQR paints a QR symbol (rows of '0'/'1') on a canvas with a quiet
// zone of four modules.
export function drawQR(canvas, rows) {
  const n = rows.length + 8;
  canvas.width = n;
  canvas.height = n;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, n, n);
  ctx.fillStyle = "#000";
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; x++) if (row[x] === "1") ctx.fillRect(x + 4, y + 4, 1, 1);
  });
}

// fmtSize says how big a file is, in the unit that reads best.
export function fmtSize(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
