// PAM chat page: one WebSocket to the gateway, following the seed's websocket-architecture.md
// (connection lifecycle, reconnection, message formats, context, demo mode, log markers).
"use strict";

const MAX_RECONNECT_ATTEMPTS = 3;
const MAX_RECENT_INTENTS = 10;
const AUTH_CLOSE_CODES = [4401, 4403];
const PAGES = ["/", "/expenses", "/budget", "/income", "/trips", "/campgrounds", "/fuel", "/weather",
  "/maintenance", "/social", "/profile"];

const $ = (id) => document.getElementById(id);
const debug = localStorage.getItem("pam-debug") === "true";

function log(marker, ...args) {
  if (debug) console.log(marker, ...args);
}

// --- who the user is --------------------------------------------------------

function readToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    localStorage.setItem("pam-token", fromUrl);
    url.searchParams.delete("token"); // keep the token out of the address bar and shared links
    history.replaceState(null, "", url);
  }
  return fromUrl || localStorage.getItem("pam-token") || "demo-token";
}

function tokenSubject(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub || null;
  } catch {
    return null;
  }
}

function guestId() {
  let id = localStorage.getItem("pam-user-id");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    id = "guest-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("pam-user-id", id);
  }
  return id;
}

let token = readToken();
let userId = tokenSubject(token) || guestId();

// --- context sent with every chat (the seed's Context Enrichment System) ----

const sessionData = loadSessionData();

function loadSessionData() {
  const saved = JSON.parse(sessionStorage.getItem("pam-session") || "null");
  return saved || { recent_intents: [], intent_counts: {}, last_activity: new Date(), session_start: new Date() };
}

function recordIntent(intent) {
  if (!intent) return;
  sessionData.recent_intents = [...sessionData.recent_intents, intent].slice(-MAX_RECENT_INTENTS);
  sessionData.intent_counts[intent] = (sessionData.intent_counts[intent] || 0) + 1;
  sessionStorage.setItem("pam-session", JSON.stringify(sessionData));
}

function currentPage() {
  return location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
}

function collectContext() {
  sessionData.last_activity = new Date();
  sessionStorage.setItem("pam-session", JSON.stringify(sessionData));
  return { region: $("region").value, current_page: currentPage(), session_data: sessionData };
}

// --- the connection -----------------------------------------------------------

const pam = {
  messages: [],
  metrics: { connect_time: 0, reconnect_attempts: 0, message_count: 0, error_count: 0 },
  mode: null, // "live" or "demo" once the gateway says so; null while not connected
};
window.pamInstance = pam;

let ws = null;
let reconnectAttempts = 0;
let reconnectTimer = null;
let lastEventId = 0; // highest event_id seen: after a reconnect we ask the server to resume from it
const seenEventIds = new Set();

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const path = `/ws/${encodeURIComponent(userId)}`;
  log("🔌", "connecting to", `${scheme}://${location.host}${path}`);
  setStatus(reconnectAttempts ? "reconnecting" : "connecting",
    reconnectAttempts ? `Reconnecting (attempt ${reconnectAttempts} of ${MAX_RECONNECT_ATTEMPTS})…` : "Connecting…");
  const query = `token=${encodeURIComponent(token)}&reconnect_attempts=${pam.metrics.reconnect_attempts}`;
  const socket = new WebSocket(`${scheme}://${location.host}${path}?${query}`);
  ws = window.pamConnection = socket;
  pam.metrics.connect_time = performance.now();

  socket.onopen = () => {
    log("✅", "socket open");
    reconnectAttempts = 0;
  };
  socket.onmessage = (event) => {
    if (socket !== ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      log("❌", "not JSON:", event.data);
      return;
    }
    log("📨", frame.type, frame);
    if (frame.event_id !== undefined) {
      if (seenEventIds.has(frame.event_id)) return; // replayed after a resume, and already shown
      seenEventIds.add(frame.event_id);
      lastEventId = Math.max(lastEventId, frame.event_id);
    }
    handleFrame(frame);
  };
  socket.onerror = () => {
    if (socket !== ws) return;
    log("❌", "socket error");
    pam.metrics.error_count++;
    scheduleReconnect();
  };
  socket.onclose = (event) => {
    if (socket !== ws) return;
    log("🔌", "socket closed", event.code, event.reason);
    pam.mode = null;
    failPendingAnswers();
    if (AUTH_CLOSE_CODES.includes(event.code)) authRefused();
    else scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (reconnectTimer) return; // onerror and onclose both ask; one timer is enough
  if (reconnectAttempts >= MAX_RECONNECT_ATTEMPTS) {
    enterDemoMode("PAM can't reach its server right now, so it is answering in demo mode.");
    return;
  }
  const delay = Math.min(1000 * 2 ** reconnectAttempts, 10000); // 1s, 2s, 4s ... capped at 10s
  setStatus("reconnecting", `Connection lost · retrying in ${delay / 1000}s`);
  log("🔄", `reconnect attempt ${reconnectAttempts + 1} of ${MAX_RECONNECT_ATTEMPTS} in ${delay} ms`);
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    reconnectAttempts++;
    pam.metrics.reconnect_attempts++;
    connect();
  }, delay);
}

function retryNow() {
  reconnectAttempts = 0;
  showNotice(null);
  connect();
}

function authRefused() {
  // A refused token fails the same way on every retry: forget it; "Try again" connects as a guest.
  localStorage.removeItem("pam-token");
  token = "demo-token";
  userId = guestId();
  enterDemoMode($("notice-text").textContent || ERROR_WORDS.token_invalid);
}

function enterDemoMode(reason) {
  setStatus("offline", "Offline · demo mode");
  showNotice(reason, true);
  log("🔄", "demo mode:", reason);
}

function send(frame) {
  ws.send(JSON.stringify(frame));
  log("📤", frame.type, frame);
  log("📤", "Context payload:", frame.context);
}

// --- frames from the gateway ------------------------------------------------

const answers = new Map(); // message_id of a chat we sent -> its answer's view

const ERROR_WORDS = {
  token_invalid: "Your sign-in wasn't accepted, so PAM is answering in demo mode. Sign in again to use your account.",
  token_expired: "Your sign-in has expired, so PAM is answering in demo mode. Sign in again to use your account.",
  user_mismatch: "This sign-in belongs to a different user, so PAM is answering in demo mode.",
  orchestrator_unavailable: "PAM's assistant isn't available right now. Please try again in a moment.",
  timeout: "PAM took too long to answer. Please try again.",
  llm_error: "The AI service couldn't answer just now. Please try again.",
  worker_lost: "PAM lost track of that answer part-way through. Please ask again.",
  rate_limited: "You're sending messages too quickly. Please wait a moment.",
  connection_limited: "Too many PAM tabs are open. Close one and try again.",
  resume_gap: "Some messages from while you were away are too old to show.",
};

function handleFrame(frame) {
  switch (frame.type) {
    case "connection": return onConnection(frame);
    case "chat_chunk": return answerFor(frame.reply_to).chunk(frame.seq, frame.delta);
    case "chat_response": return onChatResponse(frame);
    case "ui_actions": return frame.actions.forEach((action) => showAction(answerFor(frame.reply_to), action));
    case "action_response": return addSystemLine(`${frame.status === "completed" ? "✅" : "❌"} Action ${frame.status}`);
    case "error": return onError(frame);
  }
}

function onConnection(frame) {
  if (frame.status !== "connected") {
    setStatus("reconnecting", "PAM is restarting · reconnecting…");
    return;
  }
  if (lastEventId) {
    // fetch what we missed: everything after the newest event, and the answers still owed
    const pending = [...answers.entries()].filter(([, a]) => a.state === "streaming").map(([id]) => id);
    send({ type: "resume", last_event_id: lastEventId, pending: pending.slice(-100) });
  }
  pam.mode = frame.mode;
  const ms = Math.round(performance.now() - pam.metrics.connect_time);
  log("✅", `connected in ${ms} ms`, frame);
  setStatus("connected", frame.mode === "demo" ? "Connected · demo session" : "Connected");
  showNotice(null);
}

function onChatResponse(frame) {
  pam.metrics.message_count++;
  recordIntent(frame.intent);
  answerFor(frame.reply_to).finish(frame.message, frame.intent);
}

function onError(frame) {
  pam.metrics.error_count++;
  const words = ERROR_WORDS[frame.code] || frame.message || "Something went wrong. Please try again.";
  const answer = frame.reply_to && answers.get(frame.reply_to);
  if (answer) answer.fail(words);
  else showNotice(words, false);
}

function answerFor(messageId) {
  if (!answers.has(messageId)) answers.set(messageId, new AnswerView(messageId));
  return answers.get(messageId);
}

function failPendingAnswers() {
  // Not final: after the reconnect, a resume delivers the answer whole and replaces these words.
  for (const answer of answers.values()) {
    if (answer.state === "streaming") answer.setText("Connection dropped · PAM will finish this answer when it reconnects…");
  }
}

// --- the conversation on screen ---------------------------------------------

class AnswerView {
  constructor(messageId) {
    this.chunks = [];
    this.state = "streaming";
    this.el = addMessage("assistant", "", { typing: true });
    this.el.dataset.replyTo = messageId || "";
    this.el.dataset.chunks = "0";
  }

  chunk(seq, delta) {
    if (this.state !== "streaming") return;
    this.chunks[seq] = delta; // seq orders the pieces, whatever order they arrive in
    this.el.dataset.chunks = String(this.chunks.filter((c) => c !== undefined).length);
    this.setText(this.chunks.join(""));
  }

  finish(text, intent) {
    if (this.state === "done") return; // a resume may deliver an answer we already have
    this.state = "done";
    this.setText(text); // the whole answer replaces the streamed pieces
    this.el.classList.remove("typing");
    this.el.dataset.state = "done";
    addMeta(this.el, `PAM · ${intent}`);
    pam.messages.push({ role: "assistant", text, intent, at: new Date() });
  }

  fail(words) {
    this.state = "error";
    this.el.classList.remove("typing");
    this.el.dataset.state = "error";
    this.setText(words);
  }

  setText(text) {
    this.el.querySelector(".bubble").textContent = text;
    scrollDown();
  }
}

function addMessage(role, text, { typing = false } = {}) {
  $("messages").querySelector(".welcome")?.remove();
  const el = document.createElement("div");
  el.className = `message ${role}${typing ? " typing" : ""}`;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = text;
  el.append(bubble);
  $("messages").append(el);
  scrollDown();
  return el;
}

function addMeta(el, text) {
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = text;
  el.append(meta);
}

function addSystemLine(text) {
  addMessage("system", text);
}

function showAction(answer, action) {
  if (action.type === "navigate") {
    location.hash = action.target;
    addMeta(answer.el, `↪ opened ${action.target}`);
    return;
  }
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.action = action.type;
  const title = document.createElement("h4");
  title.textContent = `${action.type === "create" ? "🧾 New" : "✏️ Updated"} ${action.target}`;
  const fields = document.createElement("dl");
  for (const [key, value] of Object.entries(action.data || {})) {
    if (value === null || value === undefined || value === "") continue;
    fields.append(Object.assign(document.createElement("dt"), { textContent: key }));
    fields.append(Object.assign(document.createElement("dd"), { textContent: formatValue(key, value) }));
  }
  card.append(title, fields);
  answer.el.append(card);
  scrollDown();
}

function formatValue(key, value) {
  if (typeof value === "number" && key === "amount") return `$${value.toFixed(2)}`;
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function scrollDown() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status-text").textContent = text;
}

function showNotice(text, canRetry = false) {
  $("notice").hidden = !text;
  $("notice-text").textContent = text || "";
  $("retry").hidden = !canRetry;
}

// --- demo mode: answers in the browser when the backend can't be reached ------

const DEMO_ANSWERS = [
  ["expense", /expense|spent|paid|cost|bought|receipt/, "💰 I'd normally help you track that expense, but I'm in demo mode. Once I'm back online I can record it for you."],
  ["budget", /budget|afford|saving/, "📊 I'd normally check your budget, but I'm in demo mode right now."],
  ["trip", /trip|route|drive|road|directions/, "🗺️ I'd normally plan that route with you, but I'm in demo mode. Check road conditions and fuel stops before you go."],
  ["campground", /camp|rv park|caravan/, "🏕️ I'd normally find campgrounds nearby, but I'm in demo mode. The Campgrounds page is a good start."],
  ["fuel", /fuel|diesel|petrol|gas/, "⛽ I'd normally compare fuel prices for you, but I'm in demo mode without live prices."],
  ["weather", /weather|rain|storm|forecast/, "🌦️ I'd normally check the forecast, but I'm in demo mode without live weather."],
];

function generateDemoResponse(userMessage) {
  const lower = userMessage.toLowerCase();
  const [intent, , text] = DEMO_ANSWERS.find(([, pattern]) => pattern.test(lower)) ||
    ["general", null, "👋 I'm in demo mode because I can't reach PAM's server. I'll be able to help properly once the connection is back."];
  return { intent, text };
}

// --- sending ------------------------------------------------------------------

let sent = 0;

function sendChat(text) {
  addMessage("user", text);
  pam.messages.push({ role: "user", text, at: new Date() });
  const messageId = `m-${Date.now().toString(36)}-${++sent}`;
  const frame = { type: "chat", message: text, user_id: userId, context: collectContext(), message_id: messageId };
  if (ws && ws.readyState === WebSocket.OPEN && pam.mode) {
    answerFor(messageId);
    send(frame);
    return;
  }
  const demo = generateDemoResponse(text);
  recordIntent(demo.intent);
  answerFor(messageId).finish(demo.text, `${demo.intent} (offline demo)`);
}

// --- page wiring --------------------------------------------------------------

function renderPageLinks() {
  const links = PAGES.map((page) => {
    const a = document.createElement("a");
    a.href = `#${page}`;
    a.textContent = page === "/" ? "Home" : page.slice(1).replace(/^\w/, (c) => c.toUpperCase());
    return a;
  });
  $("page-links").replaceChildren(...links);
  markCurrentPage();
}

function markCurrentPage() {
  $("route").textContent = currentPage();
  for (const a of $("page-links").children) {
    if (a.getAttribute("href") === `#${currentPage()}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text) return;
  $("input").value = "";
  sendChat(text);
});
$("retry").addEventListener("click", retryNow);
$("region").value = localStorage.getItem("pam-region") || $("region").value;
$("region").addEventListener("change", () => localStorage.setItem("pam-region", $("region").value));
window.addEventListener("hashchange", markCurrentPage);
window.addEventListener("online", () => { if (!pam.mode && !reconnectTimer) retryNow(); });

renderPageLinks();
connect();
