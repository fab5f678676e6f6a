// Grove web client: groups, conversation, search, members, invites and
// settings over the daemon's JSON API. One module-level state object; each
// screen has a render function that rebuilds its part of the page from it.

import * as api from "./api.js";
import { $, h, clear, highlight, searchTerms, groupDigits, fmtTime, fmtDay, fmtFull, fmtSize, drawQR } from "./dom.js";

const PAGE = 100; // messages per scroll-back step
const FIRST = 50; // messages shown when a group opens
const EMOJIS = ["👍", "❤️", "😂", "🎉", "👀", "🙏"]; // the reaction picker
const TYPING_GAP = 3000; // ms between typing notices this page sends
const TYPING_SHOWN = 6000; // ms a member's typing notice stays on screen

const S = {
  me: null,
  groups: [],
  current: null, // hex id of the open group
  msgs: [], // the loaded window of the open group, oldest first
  byId: new Map(), // msgs by id, for the quotes of replies
  older: false, // history goes on before msgs[0]
  newer: false, // msgs does not reach the newest message
  loading: false,
  panel: null, // name of the open side panel
  panelGroup: null,
  joinDetail: "",
  stream: null,
  replyTo: null, // the message the composer replies to
  editing: null, // the own message the composer edits
  typers: new Map(), // who is typing in the open group: name -> timer
  download: null, // the status line of the download in progress
};

// ---- start and sign-in

async function main() {
  applyTheme(localStorage.getItem("grove.theme") || "system");
  // A new sign-in link opened in this tab changes only the fragment,
  // which loads nothing: start over with it.
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#login=")) location.reload();
  });
  const m = location.hash.match(/^#login=([A-Za-z0-9_-]+)$/);
  if (m) {
    // The fragment never reaches the server in a request line or log;
    // it is removed from the address bar and history at once.
    history.replaceState(null, "", "/");
    try {
      await api.signIn(m[1]);
    } catch (e) {
      return showSignIn(e.message);
    }
  }
  if (!api.hasToken()) return showSignIn("This browser is not signed in.");
  // Ask for everything the first screen shows at once: status, groups
  // and, on a wide screen, the last open group's newest messages.
  const last = sessionStorage.getItem("grove.group");
  const wide = window.matchMedia("(min-width: 721px)").matches;
  const first = last && wide ? api.get(`/api/groups/${encodeURIComponent(last)}/messages` + api.q({ limit: FIRST })) : null;
  if (first) first.catch(() => {}); // a left group: reported by openGroup, if it opens
  const groups = refreshGroups();
  try {
    S.me = await api.get("/api/status");
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      api.forgetToken();
      return showSignIn(e.message);
    }
    return showSignIn("The daemon did not answer: " + e.message);
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  wire();
  await groups;
  if (first && S.groups.some((g) => g.id === last)) openGroup(last, { page: first });
  S.stream = api.events({
    onEvent,
    onReady: () => {
      // Reconnected: reload whatever may have changed meanwhile.
      setOnline(true);
      refreshGroups();
      if (S.current && !S.newer) reloadNewest();
    },
    onDown: () => setOnline(false),
    onAuthError: (e) => {
      api.forgetToken();
      showSignIn(e.message);
    },
  });
}

function showSignIn(why) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-why").textContent = why;
}

let offlineTimer = null;
function setOnline(up) {
  clearTimeout(offlineTimer);
  if (up) return;
  // A moment's reconnect is not worth a message.
  offlineTimer = setTimeout(() => toast("Lost the connection to the daemon; reconnecting…"), 2000);
}

// ---- groups

let groupsTimer = null;
function refreshGroupsSoon() {
  clearTimeout(groupsTimer);
  groupsTimer = setTimeout(refreshGroups, 150);
}

async function refreshGroups() {
  try {
    S.groups = await api.get("/api/groups");
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) toast(e.message); // the sign-in screen says those
    return;
  }
  S.groups.sort((a, b) => a.name.localeCompare(b.name));
  const g = currentGroup();
  if (g && g.unread && !S.newer && document.visibilityState === "visible") {
    // Counted before this page marked it read; what it shows is read.
    g.unread = 0;
    markReadSoon();
  }
  renderGroups();
  renderConvHead();
}

function reachText(g) {
  const r = g.reach || {};
  if (!r.others) return "only you";
  if (!r.reachable) return "no member reachable";
  return `${r.reachable} of ${r.others} reachable`;
}

const cutOff = (g) => g.reach && g.reach.others > 0 && g.reach.reachable === 0;

function stateText(g) {
  switch (g.state) {
    case "removed": return "removed";
    case "removing": return "removal pending";
    case "rejoin_needed": return "rejoin needed";
  }
  if (cutOff(g)) return "no member reachable";
  if (g.sync && g.sync.catching_up) return "catching up";
  return "";
}

function renderGroups() {
  const list = $("group-list");
  clear(list);
  $("no-groups").hidden = S.groups.length > 0;
  for (const g of S.groups) {
    const st = stateText(g);
    const label = [g.name, g.unread ? `${g.unread} unread` : "", st].filter(Boolean).join(", ");
    list.appendChild(
      h("li", {},
        h("button", { type: "button", "data-group": g.id, "aria-current": g.id === S.current ? "true" : "false", "aria-label": label, onclick: () => openGroup(g.id) },
          h("span", { class: "gname", text: g.name }),
          st ? h("span", { class: "gstate", text: st }) : null,
          g.unread ? h("span", { class: "unread", text: String(g.unread) }) : null)));
  }
}

const currentGroup = () => S.groups.find((g) => g.id === S.current);

function renderConvHead() {
  const g = currentGroup();
  if (!g) return;
  $("conv-name").textContent = g.name;
  $("conv-sub").textContent = `${g.members} member${g.members === 1 ? "" : "s"} · ${reachText(g)}`;
  const banner = $("conv-banner");
  let text = "";
  if (g.state === "removed") text = "You were removed from this group. Its history stays readable here until you leave it.";
  else if (g.state === "removing") text = "A removal of this device is pending; you cannot send.";
  else if (g.state === "rejoin_needed") text = "This device fell too far behind the group: leave it and ask for a new invite.";
  else if (cutOff(g)) {
    const since = g.reach.cut_off_since ? " since " + fmtFull(g.reach.cut_off_since) : "";
    text = `No member reachable${since}. What you send waits here and goes out once one is.`;
  } else if (g.sync && g.sync.catching_up) text = `Catching up with the group${g.sync.total ? ` (${g.sync.done}/${g.sync.total})` : ""}…`;
  banner.textContent = text;
  banner.hidden = !text;
  const canSend = !g.state || g.state === "active";
  $("compose").disabled = !canSend;
  $("send").disabled = !canSend;
  $("show-invite").disabled = !canSend;
}

// ---- conversation

const key = (m) => m.id + "/" + m.sender_peer;

async function openGroup(id, opts = {}) {
  if (S.current !== id) {
    S.current = id;
    sessionStorage.setItem("grove.group", id);
    S.msgs = [];
    S.byId = new Map();
    clear($("messages"));
    endCompose();
    clearTyping();
  }
  $("conv-empty").hidden = true;
  $("conv-body").hidden = false;
  setView("conv");
  renderGroups();
  renderConvHead();
  if (S.panel === "members" || S.panel === "invite" || S.panel === "group") showPanel(S.panel);
  const url = `/api/groups/${id}/messages` + api.q(opts.around ? { around: opts.around, limit: PAGE } : { limit: FIRST });
  S.loading = true;
  let p;
  try {
    p = await (opts.page || api.get(url));
  } catch (e) {
    S.loading = false;
    return toast(e.message);
  }
  if (S.current !== id) return;
  S.msgs = p.messages;
  S.older = p.older;
  S.newer = p.newer;
  renderMessages();
  S.loading = false;
  if (opts.around) {
    const li = document.querySelector(`#messages li[data-id="${CSS.escape(opts.around)}"]`);
    if (li) showHit(li);
  } else {
    scrollToBottom();
    if (!opts.keepFocus) $("compose").focus({ preventScroll: true });
  }
  // For the first-paint benchmark: the frame after the messages were laid
  // out.
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("grove:messages-shown")));
  markReadSoon();
}

async function reloadNewest() {
  const id = S.current;
  try {
    const p = await api.get(`/api/groups/${id}/messages` + api.q({ limit: FIRST }));
    if (S.current !== id) return;
    const have = new Set(S.msgs.map(key));
    const fresh = p.messages.filter((m) => !have.has(key(m)));
    if (fresh.length === 0) return;
    if (p.messages.length && S.msgs.length && !have.has(key(p.messages[0]))) {
      // More arrived than one page: start over at the newest.
      S.msgs = p.messages;
      S.older = p.older;
      renderMessages();
    } else {
      for (const m of fresh) addMessage(m);
    }
    scrollToBottom();
  } catch (e) {
    toast(e.message);
  }
}

function dayNode(t) {
  return h("li", { class: "day", role: "separator", text: fmtDay(t) });
}

// senderName is how a message's sender is shown: a person's device in
// parentheses when the sender's account names it.
const senderName = (m) => (m.own ? "you" : m.sender_device ? `${m.sender} (${m.sender_device})` : m.sender);

const isDeleted = (m) => m.deleted || m.kind === "deleted";

// findMsg finds a loaded message by id.
const findMsg = (id) => S.byId.get(id) || null;

// excerpt is the start of a message's text for a quote or a reply bar.
function excerpt(m) {
  if (isDeleted(m)) return "deleted message";
  const t = (m.text || (m.file ? m.file.name : "")).replace(/\s+/g, " ");
  return t.length > 80 ? t.slice(0, 79) + "…" : t;
}

// Every button of a message carries data-act; one listener on the list
// (onMessageClick) acts on them, so that a long history costs no
// listener per message.
function actButton(act, label, attrs, ...children) {
  return h("button", Object.assign({ type: "button", "data-act": act, text: label || null }, attrs), ...children);
}

function messageNode(m) {
  const dead = isDeleted(m);
  const flags = [];
  if (m.pending) flags.push(["sending", "pending"]);
  if (m.queued) flags.push(["waiting for a member", "queued"]);
  if (m.orphaned) flags.push(["from a discarded branch", "orphaned"]);
  if (m.resent) flags.push(["re-sent", "resent"]);
  if (m.edited && !dead) flags.push(["edited", "edited"]);
  const seen = m.own && m.seen_by && m.seen_by.length
    ? h("span", { class: "seen", title: "Seen by " + m.seen_by.join(", "), text: `seen by ${m.seen_by.length}` })
    : null;
  let body;
  if (dead) body = h("div", { class: "text tombstone", text: "This message was deleted." });
  else if (m.kind === "unsupported") body = h("div", { class: "text tombstone", text: "This message needs a newer version of Grove." });
  else if (m.text || !m.file) body = h("div", { class: "text" }, mentionText(m.text || "", m.mentions));
  const g = currentGroup();
  const canSend = g && (!g.state || g.state === "active");
  return h("li", { class: "msg" + (m.own ? " own" : "") + (dead ? " deleted" : ""), "data-id": m.id, "data-key": key(m), "data-reply": m.reply_to || null, tabindex: "-1" },
    h("div", { class: "meta" },
      h("span", { class: "sender", text: senderName(m) }),
      h("time", { datetime: m.time, title: fmtFull(m.time), text: fmtTime(m.time) }),
      flags.map(([f, c]) => h("span", { class: "flag " + c, text: f })),
      seen),
    m.reply_to && !dead ? quoteNode(m.reply_to) : null,
    body,
    m.file && !dead ? fileNode(m.file) : null,
    !dead && m.reactions && m.reactions.length ? h("div", { class: "reactions" }, m.reactions.map((r) =>
      actButton("react", `${r.emoji} ${r.count}`, {
        class: "reaction" + (r.own ? " own" : ""), "data-emoji": r.emoji, "aria-pressed": r.own ? "true" : "false",
        title: (r.by || []).join(", "), "aria-label": `${r.emoji} from ${(r.by || []).join(", ")}${r.own ? " (press to remove yours)" : ""}`,
      }))) : null,
    !dead && canSend && m.kind !== "unsupported" ? h("div", { class: "actions" },
      actButton("reply", "Reply", { "aria-label": `Reply to ${senderName(m)}` }),
      actButton("picker", "React", { "aria-label": "Add a reaction", "aria-expanded": "false" }),
      m.own ? actButton("edit", "Edit", { "aria-label": "Edit your message" }) : null,
      m.own || (g && g.admin) ? actButton("delete", "Delete", { class: "danger", "aria-label": "Delete for everyone" }) : null) : null);
}

// mentionText marks the @names a message mentions.
function mentionText(text, mentions) {
  if (!mentions || !mentions.length) return text;
  return highlight(text, mentions.map((n) => "@" + n.toLowerCase()), "mention");
}

// quoteNode is the message a reply answers, as far as it is loaded; it
// jumps there.
function quoteNode(id) {
  const t = findMsg(id);
  return actButton("jump", "", { class: "quote", "data-target": id, "aria-label": t ? `In reply to ${senderName(t)}: ${excerpt(t)}` : "In reply to an earlier message" },
    h("span", { class: "qsender", text: t ? senderName(t) : "an earlier message" }),
    t ? h("span", { class: "qtext", text: excerpt(t) }) : null);
}

// previewSrc is a picture's thumbnail as the daemon gave it (a data:
// URL it checked), or null for anything else.
function previewSrc(f) {
  const p = f.preview;
  return typeof p === "string" && /^data:image\/(jpeg|png);base64,[A-Za-z0-9+/=]+$/.test(p) ? p : null;
}

function fileNode(f) {
  const src = previewSrc(f);
  const dims = f.width && f.height ? `${f.width}×${f.height}` : "";
  return h("div", { class: "file" },
    src ? h("img", { class: "fpreview", src, alt: `Preview of ${f.name}${dims ? ", " + dims : ""}` }) : null,
    h("span", { class: "fname", text: f.name }),
    dims ? h("span", { class: "fdims note", text: dims }) : null,
    h("span", { class: "fsize", text: fmtSize(f.size) }),
    actButton("download", "Download", { "aria-label": `Download ${f.name}` }),
    h("span", { class: "fstatus note", role: "status" }));
}

// onMessageClick carries out a message's action buttons.
async function onMessageClick(e) {
  const btn = e.target.closest("button[data-act]");
  const li = btn && btn.closest("li.msg");
  if (!li) return;
  const m = S.msgs.find((x) => key(x) === li.dataset.key);
  if (!m) return;
  const gid = S.current;
  const base = `/api/groups/${gid}/messages/${encodeURIComponent(m.id)}`;
  try {
    switch (btn.dataset.act) {
      case "reply":
        startCompose({ replyTo: m });
        break;
      case "edit":
        startCompose({ editing: m });
        break;
      case "picker": {
        const open = li.querySelector(".picker");
        if (open) {
          open.remove();
          btn.setAttribute("aria-expanded", "false");
          break;
        }
        btn.setAttribute("aria-expanded", "true");
        const own = new Set((m.reactions || []).filter((r) => r.own).map((r) => r.emoji));
        const picker = h("div", { class: "picker", role: "group", "aria-label": "Reactions" },
          EMOJIS.map((em) => actButton("react", em, { "data-emoji": em, "aria-pressed": own.has(em) ? "true" : "false" })));
        btn.parentElement.after(picker);
        picker.querySelector("button").focus();
        break;
      }
      case "react": {
        const em = btn.dataset.emoji;
        const mine = (m.reactions || []).some((r) => r.emoji === em && r.own);
        updateMessage(await api.post(base + "/react", { emoji: em, remove: mine }));
        break;
      }
      case "delete":
        // A second press within five seconds confirms.
        if (!btn.dataset.armed) {
          btn.dataset.armed = "1";
          btn.textContent = "Really delete?";
          setTimeout(() => { delete btn.dataset.armed; btn.textContent = "Delete"; }, 5000);
          break;
        }
        btn.disabled = true;
        updateMessage(await api.del(base));
        break;
      case "jump":
        jumpToMessage(gid, btn.dataset.target);
        break;
      case "download":
        await download(m, btn);
        break;
    }
  } catch (err) {
    btn.disabled = false;
    toast(err.message);
  }
}

// jumpToMessage shows a message of the open group: in place when loaded,
// otherwise in a window around it.
function jumpToMessage(gid, id) {
  const li = document.querySelector(`#messages li[data-id="${CSS.escape(id)}"]`);
  if (!li) return openGroup(gid, { around: id });
  showHit(li);
}

// showHit scrolls to the message a search or a quote jumped to and
// highlights it for a few seconds; data-jumped stays on it until the list
// is drawn again, so what was jumped to can be told after the highlight
// is gone.
function showHit(li) {
  for (const old of document.querySelectorAll("#messages li[data-jumped]")) delete old.dataset.jumped;
  li.dataset.jumped = "1";
  li.classList.add("hit");
  li.scrollIntoView({ block: "center" });
  li.focus({ preventScroll: true });
  setTimeout(() => li.classList.remove("hit"), 4000);
}

// download fetches a file through the signed-in session and hands it to
// the browser as a download (a blob: address, which this page made).
async function download(m, btn) {
  const st = btn.parentElement.querySelector(".fstatus");
  btn.disabled = true;
  st.textContent = "fetching…";
  S.download = st;
  try {
    const b = await api.blob(`/api/groups/${S.current}/files/${encodeURIComponent(m.id)}`);
    const url = URL.createObjectURL(b);
    const a = h("a", { href: url, download: m.file.name, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    st.textContent = "saved";
  } catch (e) {
    st.textContent = e.message;
  } finally {
    btn.disabled = false;
    if (S.download === st) S.download = null;
  }
}

// updateMessage shows a message as it is now (edited, deleted, reacted
// to, read) where it is loaded, and the quotes of the replies to it.
function updateMessage(m) {
  if (!m || (m.group && m.group !== S.current)) return;
  const k = key(m);
  const i = S.msgs.findIndex((x) => key(x) === k);
  if (i < 0) return;
  S.msgs[i] = m;
  S.byId.set(m.id, m);
  const li = document.querySelector(`#messages li[data-key="${CSS.escape(k)}"]`);
  if (li) li.replaceWith(messageNode(m));
  for (const r of document.querySelectorAll(`#messages li[data-reply="${CSS.escape(m.id)}"]`)) {
    const rm = S.msgs.find((x) => key(x) === r.dataset.key);
    if (rm) r.replaceWith(messageNode(rm));
  }
  if (S.editing && key(S.editing) === k && isDeleted(m)) endCompose();
}

// ---- composing: a reply or an edit in progress

function startCompose({ replyTo = null, editing = null }) {
  S.replyTo = replyTo;
  S.editing = editing;
  const bar = $("compose-ctx");
  const m = replyTo || editing;
  $("compose-ctx-text").textContent = editing ? "Editing your message" : `Replying to ${senderName(m)}: ${excerpt(m)}`;
  bar.hidden = false;
  const ta = $("compose");
  if (editing) ta.value = editing.text || "";
  autosize();
  ta.focus();
}

function endCompose() {
  const wasEditing = !!S.editing;
  S.replyTo = null;
  S.editing = null;
  $("compose-ctx").hidden = true;
  if (wasEditing) {
    $("compose").value = "";
    autosize();
  }
}

// ---- typing

let lastTyping = 0;
function sendTyping() {
  const id = S.current;
  if (!id || !$("compose").value || S.editing || Date.now() - lastTyping < TYPING_GAP) return;
  lastTyping = Date.now();
  api.post(`/api/groups/${id}/typing`).catch(() => {}); // a hint; losing one costs nothing
}

function showTyping(name, on) {
  clearTimeout(S.typers.get(name));
  if (on) S.typers.set(name, setTimeout(() => showTyping(name, false), TYPING_SHOWN));
  else S.typers.delete(name);
  const names = [...S.typers.keys()];
  $("typing").textContent = !names.length ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function clearTyping() {
  for (const t of S.typers.values()) clearTimeout(t);
  S.typers.clear();
  $("typing").textContent = "";
}

const dayOf = (t) => new Date(t).toDateString();

function renderMessages() {
  S.byId = new Map(S.msgs.map((m) => [m.id, m]));
  const ol = $("messages");
  const frag = document.createDocumentFragment();
  let day = "";
  for (const m of S.msgs) {
    const d = dayOf(m.time);
    if (d !== day) {
      frag.appendChild(dayNode(m.time));
      day = d;
    }
    frag.appendChild(messageNode(m));
  }
  clear(ol);
  ol.appendChild(frag);
  $("history-start").hidden = S.older;
  $("jump-latest").hidden = !S.newer;
}

// addMessage appends a live message unless it is already shown (an own
// message arrives both as the send's answer and as an event).
function addMessage(m) {
  const k = key(m);
  const i = S.msgs.findIndex((x) => key(x) === k);
  S.byId.set(m.id, m);
  if (i >= 0) {
    S.msgs[i] = m;
    const li = document.querySelector(`#messages li[data-key="${CSS.escape(k)}"]`);
    if (li) li.replaceWith(messageNode(m));
    return;
  }
  const last = S.msgs[S.msgs.length - 1];
  S.msgs.push(m);
  const ol = $("messages");
  if (!last || dayOf(last.time) !== dayOf(m.time)) ol.appendChild(dayNode(m.time));
  ol.appendChild(messageNode(m));
}

const nearBottom = () => {
  const sc = $("scroller");
  return sc.scrollHeight - sc.scrollTop - sc.clientHeight < 80;
};

function scrollToBottom() {
  const sc = $("scroller");
  sc.scrollTop = sc.scrollHeight;
}

async function loadOlder() {
  // The observer reports what it saw a moment ago: only load when the top
  // is still near (not right after a group opened and scrolled down).
  if (S.loading || !S.older || !S.msgs.length || $("scroller").scrollTop > 400) return;
  S.loading = true;
  const id = S.current;
  try {
    const p = await api.get(`/api/groups/${id}/messages` + api.q({ before: S.msgs[0].id, limit: PAGE }));
    if (S.current !== id) return;
    const sc = $("scroller");
    const fromBottom = sc.scrollHeight - sc.scrollTop;
    S.msgs = p.messages.concat(S.msgs);
    S.older = p.older;
    renderMessages();
    sc.scrollTop = sc.scrollHeight - fromBottom;
  } catch (e) {
    toast(e.message);
    return;
  } finally {
    S.loading = false;
  }
  // Still at the top (short messages, a tall window): the observer sees
  // no change, so go on.
  if (S.older && $("scroller").scrollTop <= 400) loadOlder();
}

async function loadNewer() {
  if (S.loading || !S.newer || !S.msgs.length) return;
  S.loading = true;
  const id = S.current;
  try {
    const p = await api.get(`/api/groups/${id}/messages` + api.q({ after: S.msgs[S.msgs.length - 1].id, limit: PAGE }));
    if (S.current !== id) return;
    for (const m of p.messages) addMessage(m);
    S.newer = p.newer;
    $("jump-latest").hidden = !S.newer;
  } catch (e) {
    toast(e.message);
  } finally {
    S.loading = false;
  }
}

// send takes the text out of the composer at once, so that the next
// message can be typed while this one is on its way; sends go out one
// after the other, in the order typed. A failed send puts its text back
// if the composer is still empty.
let sendChain = Promise.resolve();
function send() {
  const ta = $("compose");
  const text = ta.value;
  if (!text.trim() || !S.current) return;
  const id = S.current;
  const { replyTo, editing } = S;
  ta.value = "";
  endCompose();
  autosize();
  lastTyping = 0;
  if (editing) {
    sendChain = sendChain.then(() => editOne(id, editing, text));
    return;
  }
  sendChain = sendChain.then(() => sendOne(id, text, replyTo));
}

async function editOne(id, m, text) {
  if (text === m.text) return;
  try {
    updateMessage(await api.post(`/api/groups/${id}/messages/${encodeURIComponent(m.id)}/edit`, { text }));
  } catch (e) {
    toast(e.message);
  }
}

async function sendOne(id, text, replyTo) {
  try {
    const m = await api.post(`/api/groups/${id}/messages`, replyTo ? { text, reply_to: replyTo.id } : { text });
    if (S.current === id) {
      if (S.newer) await openGroup(id, { keepFocus: true });
      else addMessage(m);
      scrollToBottom();
    }
    if (m.queued) toast("No member is reachable: the message waits and goes out once one is.");
  } catch (e) {
    toast(e.message);
    const ta = $("compose");
    if (S.current === id && !ta.value) {
      ta.value = text;
      autosize();
    }
  }
}

// markReadSoon tells the daemon that what the open group shows was read:
// when it opens, and as messages arrive while it is on screen at the
// newest message.
let readTimer = null;
function markReadSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const id = S.current;
    if (!id || document.visibilityState !== "visible" || S.newer) return;
    try {
      await api.post(`/api/groups/${id}/read`);
    } catch (e) {
      return; // the count stays; nothing lost
    }
    const g = S.groups.find((x) => x.id === id);
    if (g && g.unread) {
      g.unread = 0;
      renderGroups();
    }
  }, 300);
}

// ---- events

function onEvent(ev) {
  switch (ev.kind) {
    case "message":
      if (ev.group === S.current && ev.message) showTyping(ev.message.sender, false);
      if (ev.group === S.current && !S.newer && ev.message) {
        const stick = nearBottom();
        addMessage(ev.message);
        if (stick) scrollToBottom();
        markReadSoon();
      }
      refreshGroupsSoon();
      break;
    case "message_updated":
      if (ev.group === S.current && ev.message) updateMessage(ev.message);
      break;
    case "typing":
      if (ev.group === S.current && ev.member) showTyping(ev.member.name, true);
      break;
    case "file_progress":
      if (ev.group === S.current && S.download && ev.detail) S.download.textContent = ev.detail;
      break;
    case "join_progress":
      S.joinDetail = ev.detail || "";
      if (S.panel === "join") {
        const p = $("join-progress");
        if (p) p.textContent = S.joinDetail;
      }
      break;
    case "member_added":
    case "member_removed":
    case "removed":
    case "epoch":
    case "group_joined":
    case "reach":
    case "sync":
    case "fork_resolved":
      refreshGroupsSoon();
      if (S.panel === "members" && ev.group === S.current && ev.kind.startsWith("member")) showPanel("members");
      break;
    case "peers":
      if (S.panel === "settings") refreshPeers();
      refreshGroupsSoon();
      break;
    case "device_linked":
      // The detail names the new device and the comparison string it
      // shows too: the person compares the two screens.
      if (S.panel === "settings") {
        const st = $("link-status");
        if (st) st.textContent = `Linked ${ev.detail || "a new device"}. The new device shows the same comparison string; if it does not, revoke it below.`;
        refreshDevices();
      }
      break;
    case "device_revoked":
      if (S.panel === "settings") refreshDevices();
      break;
  }
}

// ---- panels

function setView(v) {
  document.body.className = "view-" + v;
}

function closePanel() {
  if (!S.panel) return false;
  S.panel = null;
  $("panel").hidden = true;
  $("app").classList.remove("with-panel");
  setView(S.current ? "conv" : "groups");
  return true;
}

const panels = {
  members: { title: "Members", build: buildMembers },
  invite: { title: "Invite", build: buildInvite },
  group: { title: "Group", build: buildGroupActions },
  search: { title: "Search", build: buildSearch },
  settings: { title: "Settings", build: buildSettings },
  join: { title: "Join a group", build: buildJoin },
  create: { title: "New group", build: buildCreate },
};

function showPanel(name) {
  const p = panels[name];
  S.panel = name;
  $("panel-title").textContent = p.title;
  const body = $("panel-body");
  clear(body);
  $("panel").hidden = false;
  $("app").classList.add("with-panel");
  setView("panel");
  p.build(body);
}

// confirmButton asks for a second press within five seconds before a
// destructive action (no window.confirm: it blocks keyboard flow).
function confirmButton(label, confirmLabel, action) {
  let armed = null;
  const b = h("button", { type: "button", class: "danger", text: label });
  b.addEventListener("click", async () => {
    if (!armed) {
      b.textContent = confirmLabel;
      armed = setTimeout(() => { armed = null; b.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
      b.textContent = label;
    }
  });
  return b;
}

async function watchChange(ch, out) {
  const say = (c) => {
    out.textContent = c.state === "done" ? "Done." : `${c.state}${c.waiting ? ": " + c.waiting : ""}…`;
  };
  say(ch);
  for (let i = 0; i < 10 && ch.state !== "done"; i++) {
    try {
      ch = await api.get(`/api/groups/${ch.group}/changes/${ch.id}` + api.q({ wait: "30s" }));
    } catch (e) {
      out.textContent = e.message;
      return;
    }
    say(ch);
  }
  refreshGroupsSoon();
}

async function buildMembers(body) {
  const g = currentGroup();
  if (!g) return;
  const gid = g.id;
  let ms;
  try {
    ms = await api.get(`/api/groups/${gid}/members`);
  } catch (e) {
    return body.appendChild(h("p", { class: "error", text: e.message }));
  }
  if (S.panel !== "members" || S.current !== gid) return;
  const status = h("p", { class: "note", role: "status" });
  body.appendChild(h("p", { class: "note", text: "Compare each fingerprint with the member in person or on a call: equal fingerprints mean nobody sits in between. Marks are kept in this browser." }));
  // A person's devices (members with one account) are listed together,
  // under the person when there are several.
  const people = new Map();
  for (const m of ms) {
    const k = m.account ? "a:" + m.account : "p:" + m.peer_id;
    if (!people.has(k)) people.set(k, []);
    people.get(k).push(m);
  }
  const item = (m, tag, cls) => {
    const mark = m.self ? null : verifyMark(m);
    const label = m.device ? `${m.name} (${m.device})` : m.name;
    return h(tag, { class: cls, "data-peer": m.peer_id },
      h("div", {}, h("strong", { text: label }), m.self ? h("span", { class: "badge", text: "you" }) : null,
        m.admin ? h("span", { class: "badge", text: "admin" }) : null, mark),
      h("div", { class: "fingerprint", "aria-label": `Fingerprint of ${m.name}`, text: groupDigits(m.fingerprint) }),
      h("div", { class: "note mono", text: m.peer_id }),
      m.self ? null : verifyToggle(m, mark),
      g.admin && !m.self && g.state === "active"
        ? h("div", { class: "row" }, confirmButton(`Remove ${label}`, `Really remove ${label}?`, async () => {
          try {
            const ch = await api.post(`/api/groups/${gid}/remove`, { member: m.peer_id });
            await watchChange(ch, status);
            if (S.panel === "members") showPanel("members");
          } catch (e) {
            status.textContent = e.message;
          }
        }))
        : null);
  };
  body.appendChild(h("ul", { class: "list", id: "member-list" }, [...people.values()].map((devs) => devs.length === 1
    ? item(devs[0], "li")
    : h("li", { class: "person" }, h("div", { class: "person-name", text: devs[0].name }),
      h("ul", { class: "devices" }, devs.map((m) => item(m, "li", "device")))))));
  body.appendChild(status);
}

// Verification marks: the fingerprint a person confirmed for a member's
// device, kept in this browser. A mark whose fingerprint no longer matches
// is shown as a warning: the member's keys changed since they were
// compared.
const verifiedKey = (m) => "grove.verified." + m.peer_id;

// verifyMark is the member's verification badge, kept current by
// verifyToggle.
function verifyMark(m) {
  const span = h("span", { class: "vmark" });
  fillMark(span, m);
  return span;
}

function fillMark(span, m) {
  clear(span);
  const fp = localStorage.getItem(verifiedKey(m));
  if (!fp) return;
  if (fp === m.fingerprint) span.appendChild(h("span", { class: "badge verified", text: "verified" }));
  else span.appendChild(h("span", { class: "badge changed", text: "fingerprint changed since you verified" }));
}

function verifyToggle(m, mark) {
  const id = "verify-" + m.peer_id;
  const box = h("input", { type: "checkbox", id, checked: localStorage.getItem(verifiedKey(m)) === m.fingerprint });
  box.addEventListener("change", () => {
    if (box.checked) localStorage.setItem(verifiedKey(m), m.fingerprint);
    else localStorage.removeItem(verifiedKey(m));
    fillMark(mark, m);
  });
  return h("div", { class: "row" }, box, h("label", { for: id, text: `I compared ${m.name}'s fingerprint` }));
}

function buildInvite(body) {
  const g = currentGroup();
  if (!g) return;
  const expiry = h("select", { id: "invite-expiry" },
    h("option", { value: "1h", text: "1 hour" }),
    h("option", { value: "24h", text: "1 day", selected: true }),
    h("option", { value: "168h", text: "7 days" }));
  const out = h("div", { id: "invite-out" });
  body.appendChild(h("p", { text: `A one-time code lets one device join ${g.name}. Send it over a channel you trust.` }));
  body.appendChild(h("div", { class: "row" },
    h("label", { for: "invite-expiry", text: "Valid for" }), expiry,
    h("button", { type: "button", class: "primary", id: "create-invite", onclick: async () => {
      clear(out);
      try {
        const inv = await api.post(`/api/groups/${g.id}/invites`, { expires: expiry.value });
        const code = h("textarea", { class: "code", id: "invite-code", rows: "5", readonly: true, "aria-label": "Invite code" });
        code.value = inv.code;
        out.appendChild(h("label", { for: "invite-code", text: `Code (valid until ${fmtFull(inv.expires)})` }));
        out.appendChild(code);
        out.appendChild(h("div", { class: "row" }, h("button", { type: "button", onclick: async () => {
          try {
            await navigator.clipboard.writeText(inv.code);
            toast("Copied.");
          } catch (e) {
            code.select();
          }
        }, text: "Copy" })));
        if (inv.qr && inv.qr.length) {
          const c = h("canvas", { class: "qr", role: "img", "aria-label": "QR code of the invite" });
          drawQR(c, inv.qr);
          out.appendChild(c);
        }
        code.focus();
        code.select();
      } catch (e) {
        out.appendChild(h("p", { class: "error", text: e.message }));
      }
    }, text: "Create code" })));
  body.appendChild(out);
}

function buildGroupActions(body) {
  const g = currentGroup();
  if (!g) return;
  const status = h("p", { class: "note", role: "status" });
  body.appendChild(h("dl", { class: "kv" },
    h("dt", { text: "Name" }), h("dd", { text: g.name }),
    h("dt", { text: "Id" }), h("dd", { class: "mono", text: g.id }),
    h("dt", { text: "Epoch" }), h("dd", { text: String(g.epoch) }),
    h("dt", { text: "Members" }), h("dd", { text: String(g.members) }),
    h("dt", { text: "Role" }), h("dd", { text: g.admin ? "admin" : "member" }),
    h("dt", { text: "Reach" }), h("dd", { text: reachText(g) })));
  if (g.state === "active" || !g.state) {
    body.appendChild(h("section", {},
      h("h3", { text: "Rotate keys" }),
      h("p", { class: "note", text: "Fresh keys for this device in this group: whoever may have copied the old ones cannot read what follows." }),
      h("button", { type: "button", id: "rotate", text: "Rotate my keys", onclick: async () => {
        try {
          await watchChange(await api.post(`/api/groups/${g.id}/rotate`), status);
        } catch (e) {
          status.textContent = e.message;
        }
      } })));
  }
  body.appendChild(h("section", {},
    h("h3", { text: "Leave" }),
    h("p", { class: "note", text: "Leaving deletes this group's history from this device." }),
    confirmButton("Leave group", "Really leave and delete the history here?", async () => {
      try {
        await api.post(`/api/groups/${g.id}/leave`);
        S.current = null;
        sessionStorage.removeItem("grove.group");
        $("conv-body").hidden = true;
        $("conv-empty").hidden = false;
        closePanel();
        setView("groups");
        await refreshGroups();
        toast(`Left ${g.name}.`);
      } catch (e) {
        status.textContent = e.message;
      }
    })));
  body.appendChild(status);
}

async function buildSearch(body) {
  const query = $("search-input").value.trim();
  if (!query) return body.appendChild(h("p", { class: "note", text: "Type words to search for; several words must all match, word* matches prefixes, \"quotes\" match phrases." }));
  body.appendChild(h("p", { class: "note", role: "status", id: "search-status", text: "Searching…" }));
  let res;
  try {
    res = await api.get("/api/search" + api.q({ q: query, limit: 50 }));
  } catch (e) {
    $("search-status").textContent = e.message;
    return;
  }
  if (S.panel !== "search") return;
  const terms = searchTerms(query);
  $("search-status").textContent = res.hits.length ? `${res.hits.length}${res.next ? "+" : ""} found` : "Nothing found.";
  const names = new Map(S.groups.map((g) => [g.id, g.name]));
  body.appendChild(h("ul", { class: "hits", id: "hits" }, res.hits.map((hit) => {
    const m = hit.message;
    return h("li", {}, h("button", { type: "button", "data-id": m.id, onclick: () => jumpTo(m) },
      h("div", { class: "meta", text: `${names.get(m.group) || m.group} · ${m.own ? "you" : m.sender} · ${fmtFull(m.time)}` }),
      h("div", { class: "text" }, highlight(m.text, terms))));
  })));
}

function jumpTo(m) {
  closePanel();
  openGroup(m.group, { around: m.id });
}

function buildJoin(body) {
  const code = h("textarea", { id: "join-code", class: "code", rows: "5", "aria-label": "Invite code", placeholder: "Paste the invite code" });
  const progress = h("p", { class: "note", id: "join-progress", role: "status" });
  const go = h("button", { type: "button", class: "primary", id: "join-submit", text: "Join" });
  go.addEventListener("click", async () => {
    if (!code.value.trim()) return;
    go.disabled = true;
    progress.textContent = "Asking the inviter's device…";
    try {
      const g = await api.post("/api/join", { code: code.value.trim() });
      closePanel();
      await refreshGroups();
      openGroup(g.id);
      toast(`Joined ${g.name}.`);
    } catch (e) {
      progress.textContent = e.message;
    } finally {
      go.disabled = false;
    }
  });
  body.appendChild(h("label", { for: "join-code", text: "Invite code" }));
  body.appendChild(code);
  body.appendChild(h("div", { class: "row" }, go));
  body.appendChild(progress);
  code.focus();
}

function buildCreate(body) {
  const name = h("input", { type: "text", id: "group-name", autocomplete: "off", maxlength: "64" });
  const out = h("p", { class: "note", role: "status" });
  const form = h("form", {}, h("label", { for: "group-name", text: "Name" }), name,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", text: "Create" })), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) return;
    try {
      const g = await api.post("/api/groups", { name: name.value.trim() });
      closePanel();
      await refreshGroups();
      openGroup(g.id);
    } catch (err) {
      out.textContent = err.message;
    }
  });
  body.appendChild(form);
  name.focus();
}

async function refreshPeers() {
  const ul = $("peer-list");
  if (!ul) return;
  try {
    const ps = await api.get("/api/peers");
    clear(ul);
    if (!ps.length) ul.appendChild(h("li", { class: "note", text: "No peer connected." }));
    for (const p of ps) ul.appendChild(h("li", {}, h("strong", { text: p.name || "unknown peer" }), h("div", { class: "note mono", text: p.id })));
  } catch (e) {
    toast(e.message);
  }
}

// buildDevices is the Settings section of the account's devices: the
// list (refreshDevices fills it) and linking a new device.
function buildDevices() {
  const out = h("div", { id: "link-out" });
  const link = h("button", { type: "button", id: "link-device", text: "Link a new device" });
  link.addEventListener("click", async () => {
    clear(out);
    link.disabled = true;
    try {
      const lc = await api.post("/api/devices/link");
      const code = h("textarea", { class: "code", id: "link-code", rows: "3", readonly: true, "aria-label": "Link code" });
      code.value = lc.code;
      out.appendChild(h("p", { text: `On the new device run grove init --link CODE --device NAME with this code. It works once, until ${fmtFull(lc.expires)}.` }));
      out.appendChild(code);
      out.appendChild(h("div", { class: "row" }, h("button", { type: "button", text: "Copy", onclick: async () => {
        try {
          await navigator.clipboard.writeText(lc.code);
          toast("Copied.");
        } catch (e) {
          code.select();
        }
      } })));
      out.appendChild(h("p", { class: "note", id: "link-status", role: "status",
        text: "Waiting for the new device… Once it links, its comparison string shows here and on the new device: they must be the same." }));
      code.focus();
      code.select();
    } catch (e) {
      out.appendChild(h("p", { class: "error", text: e.message }));
    } finally {
      link.disabled = false;
    }
  });
  return h("section", {}, h("h3", { text: "Devices" }),
    h("p", { class: "note", text: "The devices of your account as this device knows them. Revoke one that is lost or not yours: it leaves every group, and members refuse it from then on." }),
    h("ul", { class: "list", id: "device-list" }), h("div", { class: "row" }, link), out);
}

async function refreshDevices() {
  const ul = $("device-list");
  if (!ul) return;
  let ds;
  try {
    ds = await api.get("/api/devices");
  } catch (e) {
    clear(ul);
    ul.appendChild(h("li", { class: "note", text: e.message }));
    const link = $("link-device");
    if (link) link.hidden = e.status === 503;
    return;
  }
  clear(ul);
  for (const d of ds) {
    let seen = "not seen yet";
    if (d.online) seen = "online now";
    else if (d.last_seen) seen = "last seen " + fmtFull(d.last_seen);
    const groups = d.groups === 1 ? "in 1 group" : `in ${d.groups} groups`;
    ul.appendChild(h("li", { "data-device": d.id },
      h("div", {}, h("strong", { text: d.name }), d.self ? h("span", { class: "badge", text: "this device" }) : null,
        d.revoked ? h("span", { class: "badge changed", text: "revoked" }) : null),
      h("div", { class: "fingerprint", "aria-label": `Fingerprint of ${d.name}`, text: groupDigits(d.fingerprint) }),
      h("div", { class: "note", text: d.self ? groups : `${seen} · ${groups}` }),
      d.self || d.revoked ? null : h("div", { class: "row" }, confirmButton(`Revoke ${d.name}`, `Really revoke ${d.name}? It leaves every group.`, async () => {
        try {
          await api.post(`/api/devices/${encodeURIComponent(d.id)}/revoke`);
          toast(`Revoked ${d.name}.`);
        } catch (e) {
          toast(e.message);
        }
        refreshDevices();
      }))));
  }
}

async function buildSettings(body) {
  const me = S.me;
  body.appendChild(h("section", {}, h("h3", { text: "This device" }),
    h("dl", { class: "kv" },
      h("dt", { text: "Name" }), h("dd", { text: me.name }),
      h("dt", { text: "Fingerprint" }), h("dd", { class: "fingerprint", text: groupDigits(me.fingerprint) }),
      h("dt", { text: "Peer id" }), h("dd", { class: "mono", text: me.peer_id }),
      h("dt", { text: "Version" }), h("dd", { text: me.version }),
      h("dt", { text: "Running since" }), h("dd", { text: fmtFull(me.started_at) })),
    h("details", {}, h("summary", { text: "Addresses" }), h("ul", { class: "list mono" }, (me.addrs || []).map((a) => h("li", { text: a }))))));
  body.appendChild(buildDevices());
  const receipts = h("input", { type: "checkbox", id: "receipts", checked: !me.receipts_off });
  receipts.addEventListener("change", async () => {
    const on = receipts.checked;
    receipts.disabled = true;
    try {
      await api.post("/api/receipts", { on });
      S.me.receipts_off = !on;
    } catch (e) {
      receipts.checked = !on;
      toast(e.message);
    } finally {
      receipts.disabled = false;
    }
  });
  body.appendChild(h("section", {}, h("h3", { text: "Privacy" }),
    h("div", { class: "row" }, receipts, h("label", { for: "receipts", text: "Send read receipts" })),
    h("p", { class: "note", text: "Members see that this device has read their messages. Off: this device tells nobody; you still see others' receipts." })));
  const theme = h("select", { id: "theme" },
    ["system", "light", "dark"].map((t) => h("option", { value: t, text: t, selected: (localStorage.getItem("grove.theme") || "system") === t })));
  theme.addEventListener("change", () => {
    localStorage.setItem("grove.theme", theme.value);
    applyTheme(theme.value);
  });
  body.appendChild(h("section", {}, h("h3", { text: "Appearance" }), h("div", { class: "row" }, h("label", { for: "theme", text: "Theme" }), theme)));
  body.appendChild(h("section", {}, h("h3", { text: "Connected peers" }), h("ul", { class: "list", id: "peer-list" })));
  const invites = h("ul", { class: "list", id: "invite-list" });
  body.appendChild(h("section", {}, h("h3", { text: "Open invite codes" }), invites));
  body.appendChild(h("section", {}, h("h3", { text: "Keyboard" }), h("dl", { class: "kv" },
    [["/ or Ctrl+K", "search"], ["Alt+↑ / Alt+↓", "previous / next group"], ["Enter", "send"], ["Shift+Enter", "new line"],
      ["↑ in an empty message", "edit your last message"], ["↑ / ↓ on the messages", "move between messages (Tab reaches their actions)"],
      ["Esc", "cancel a reply or edit, close the panel, go back"], ["?", "this page"]].map(([k, v]) => [h("dt", { class: "mono", text: k }), h("dd", { text: v })]))));
  body.appendChild(h("section", {}, h("button", { type: "button", id: "sign-out", text: "Sign out of this browser", onclick: async () => {
    try { await api.post("/api/logout"); } catch (e) { /* signed out either way */ }
    api.forgetToken();
    if (S.stream) S.stream.stop();
    showSignIn("Signed out.");
  } })));
  refreshPeers();
  refreshDevices();
  // The switch may have been flipped elsewhere (grove receipts off).
  api.get("/api/status").then((st) => {
    S.me = st;
    const box = $("receipts");
    if (box && !box.disabled) box.checked = !st.receipts_off;
  }, () => {});
  try {
    const names = new Map(S.groups.map((g) => [g.id, g.name]));
    const is = await api.get("/api/invites");
    if (!is.length) invites.appendChild(h("li", { class: "note", text: "None." }));
    for (const inv of is) {
      invites.appendChild(h("li", {},
        h("div", { text: `${names.get(inv.group) || inv.group} · until ${fmtFull(inv.expires)}${inv.used ? " · being redeemed" : ""}` }),
        h("div", { class: "row" }, confirmButton("Revoke", "Really revoke?", async () => {
          try {
            await api.del(`/api/invites/${encodeURIComponent(inv.id)}`);
            if (S.panel === "settings") showPanel("settings");
          } catch (e) {
            toast(e.message);
          }
        }))));
    }
  } catch (e) {
    invites.appendChild(h("li", { class: "error", text: e.message }));
  }
}

function applyTheme(t) {
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

// ---- wiring

let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

function autosize() {
  const ta = $("compose");
  if (!ta.value) {
    ta.style.height = "";
    return;
  }
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight + 2, 160) + "px";
}

function moveGroup(step) {
  if (!S.groups.length) return;
  let i = S.groups.findIndex((g) => g.id === S.current);
  i = i < 0 ? 0 : (i + step + S.groups.length) % S.groups.length;
  openGroup(S.groups[i].id);
}

const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");

function back() {
  if (closePanel()) return;
  if (document.body.classList.contains("view-conv")) setView("groups");
}

function wire() {
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  // Enter sends. Some input paths (synthetic key events from automation,
  // some IMEs) still deliver the line break after the cancelled keydown;
  // it is dropped until the key comes up.
  let enterSent = false;
  $("compose").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      enterSent = true;
      send();
    } else if (e.key === "ArrowUp" && !$("compose").value && !S.editing) {
      // Up in an empty composer edits your last message.
      const m = S.msgs.findLast((x) => x.own && !isDeleted(x) && x.kind !== "unsupported");
      if (m) {
        e.preventDefault();
        startCompose({ editing: m });
      }
    }
  });
  // Up and Down move through the messages; Tab then reaches the focused
  // message's actions.
  $("scroller").addEventListener("keydown", (e) => {
    if ((e.key !== "ArrowUp" && e.key !== "ArrowDown") || e.altKey || (e.target !== $("scroller") && !e.target.matches("li.msg"))) return;
    const items = [...document.querySelectorAll("#messages li.msg")];
    if (!items.length) return;
    e.preventDefault();
    const up = e.key === "ArrowUp";
    let i = items.indexOf(e.target);
    if (i < 0) i = up ? items.length : -1;
    items[Math.max(0, Math.min(items.length - 1, i + (up ? -1 : 1)))].focus();
  });
  $("compose").addEventListener("beforeinput", (e) => {
    if (enterSent && (e.inputType === "insertLineBreak" || e.inputType === "insertParagraph" || e.data === "\n" || e.data === "\r")) e.preventDefault();
  });
  $("compose").addEventListener("keyup", (e) => {
    if (e.key === "Enter") enterSent = false;
  });
  $("compose").addEventListener("input", () => {
    autosize();
    sendTyping();
  });
  $("compose-ctx-cancel").addEventListener("click", () => {
    endCompose();
    $("compose").focus();
  });
  $("messages").addEventListener("click", onMessageClick);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); showPanel("search"); });
  $("open-settings").addEventListener("click", () => showPanel("settings"));
  $("new-group").addEventListener("click", () => showPanel("create"));
  $("join-group").addEventListener("click", () => showPanel("join"));
  $("show-members").addEventListener("click", () => showPanel("members"));
  $("show-invite").addEventListener("click", () => showPanel("invite"));
  $("show-group").addEventListener("click", () => showPanel("group"));
  $("close-panel").addEventListener("click", closePanel);
  $("back").addEventListener("click", back);
  $("jump-latest").addEventListener("click", () => openGroup(S.current));
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      if (e.target.id === "top-sentinel") loadOlder();
      else loadNewer();
    }
  }, { root: $("scroller"), rootMargin: "400px 0px" });
  io.observe($("top-sentinel"));
  io.observe($("bottom-sentinel"));
  document.addEventListener("visibilitychange", markReadSoon);
  document.addEventListener("keydown", (e) => {
    const inField = typing(document.activeElement);
    if ((e.key === "k" && (e.ctrlKey || e.metaKey)) || (e.key === "/" && !inField)) {
      e.preventDefault();
      $("search-input").focus();
      $("search-input").select();
    } else if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      moveGroup(e.key === "ArrowUp" ? -1 : 1);
    } else if (e.key === "Escape") {
      if (document.activeElement === $("search-input")) $("search-input").blur();
      if (S.replyTo || S.editing) return endCompose(); // first of all, a reply or edit in progress
      back();
    } else if (e.key === "?" && !inField) {
      showPanel("settings");
    }
  });
}

main();
