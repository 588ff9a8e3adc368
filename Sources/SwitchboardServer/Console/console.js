// Switchboard console. Talks to the server through the admin endpoints and one live feed
// (Server-Sent Events, /admin/feed). Everything that came from users is put into the page as
// text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "switchboard.console.token";
const TAIL_LIMIT = 200;
const CHART_POINTS = 300;

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  feed: null,
  inspected: null,
  paused: false,
  held: [],
  previous: null,
  series: [],
  channels: [],
};

function text(element, value) {
  element.textContent = value === undefined || value === null ? "" : String(value);
}

function cell(row, value, numeric) {
  const td = document.createElement("td");
  if (numeric) td.className = "n";
  text(td, value);
  row.appendChild(td);
  return td;
}

function scopeOf(channel) {
  const colon = channel.indexOf(":");
  return colon < 0 ? channel : channel.slice(0, colon);
}

// ---- sign-in ------------------------------------------------------------------------------

function tokenFromLink() {
  const hash = window.location.hash;
  if (!hash.startsWith("#token=")) return null;
  const token = decodeURIComponent(hash.slice("#token=".length));
  history.replaceState(null, "", window.location.pathname);
  return token;
}

async function check(token) {
  const response = await fetch("/admin/rules", { headers: { Authorization: "Bearer " + token } });
  if (response.status === 401 || response.status === 403) {
    let message = "the server refused this token (" + response.status + ")";
    try {
      const body = await response.json();
      if (body && body.message) message = body.message;
    } catch (ignored) { /* keep the status */ }
    return { ok: false, message: message };
  }
  return { ok: true };
}

function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  text($("signin-error"), message || "");
}

async function signIn(token) {
  const answer = await check(token);
  if (!answer.ok) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(answer.message);
    return;
  }
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("app").hidden = false;
  openFeed();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.feed) state.feed.close();
  state.feed = null;
  state.token = null;
  showSignIn("");
}

// ---- the feed ------------------------------------------------------------------------------

function openFeed() {
  if (state.feed) state.feed.close();
  let url = "/admin/feed?apikey=" + encodeURIComponent(state.token);
  if (state.inspected) url += "&channel=" + encodeURIComponent(state.inspected);
  const feed = new EventSource(url);
  state.feed = feed;
  feed.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
  feed.addEventListener("message", (event) => tail(JSON.parse(event.data)));
  feed.onopen = () => text($("feed-status"), "live");
  feed.onerror = () => {
    text($("feed-status"), "reconnecting…");
    // A token that stopped being accepted ends the feed; say so.
    check(state.token).then((answer) => { if (!answer.ok) { feed.close(); showSignIn(answer.message); } }, () => {});
  };
}

function render(snapshot) {
  text($("feed-status"), "live, " + new Date(snapshot.time).toLocaleTimeString());
  text($("node"), snapshot.node ? "node " + snapshot.node : "");
  renderTraffic(snapshot);
  renderRules(snapshot.rules);
  state.channels = snapshot.channels || [];
  text($("channel-total"), "(" + snapshot.total_channels + ")");
  renderChannels();
  renderScopes(snapshot.scopes || []);
  const history = snapshot.history || {};
  text($("history-held"), "Replay history held: " + (history.messages || 0) + " messages on " + (history.channels || 0) + " channels, " + (history.bytes || 0) + " bytes.");
  renderInspector(snapshot.inspect);
  renderCluster(snapshot.cluster);
}

function renderTraffic(snapshot) {
  text($("connections"), snapshot.connections);
  const now = snapshot.time;
  const previous = state.previous;
  state.previous = snapshot;
  if (!previous || now <= previous.time) return;
  const seconds = (now - previous.time) / 1000;
  const rate = (key) => Math.max(0, (snapshot[key] - previous[key]) / seconds);
  const joins = rate("joins_total");
  const incoming = rate("messages_in_total");
  const outgoing = rate("messages_out_total");
  text($("joins-rate"), joins.toFixed(1));
  text($("in-rate"), incoming.toFixed(1));
  text($("out-rate"), outgoing.toFixed(1));
  state.series.push({ incoming: incoming, outgoing: outgoing });
  if (state.series.length > CHART_POINTS) state.series.shift();
  drawChart();
}

function drawChart() {
  const canvas = $("chart");
  const context = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  context.clearRect(0, 0, width, height);
  const top = Math.max(1, ...state.series.map((point) => Math.max(point.incoming, point.outgoing)));
  const x = (index) => width - (state.series.length - 1 - index) * (width / (CHART_POINTS - 1));
  const y = (value) => height - 4 - (value / top) * (height - 24);
  for (const [key, colour] of [["incoming", "#2457c5"], ["outgoing", "#c26a12"]]) {
    context.beginPath();
    context.strokeStyle = colour;
    context.lineWidth = 2;
    state.series.forEach((point, index) => {
      if (index === 0) context.moveTo(x(index), y(point[key])); else context.lineTo(x(index), y(point[key]));
    });
    context.stroke();
  }
  context.fillStyle = "#5b6475";
  context.font = "20px system-ui, sans-serif";
  context.fillText("max " + top.toFixed(1) + "/s", 8, 22);
}

function renderRules(rules) {
  if (!rules) return;
  text($("rules-generation"), rules.generation);
  text($("rules-loaded"), rules.loaded_at);
  text($("rules-digest"), rules.digest);
  const list = $("rules-errors");
  list.replaceChildren();
  const errors = rules.last_error || [];
  if (errors.length === 0) {
    $("rules-state").className = "ok";
    text($("rules-state"), "No reload error: generation " + rules.generation + " is in force.");
  } else {
    $("rules-state").className = "bad";
    text($("rules-state"), "The last reload failed; generation " + rules.generation + " keeps serving.");
    for (const error of errors) {
      const item = document.createElement("li");
      text(item, (error.location ? error.location + ": " : "") + error.message);
      list.appendChild(item);
    }
  }
  const files = $("rules-files");
  files.replaceChildren();
  for (const file of rules.files || []) {
    const item = document.createElement("li");
    text(item, file);
    files.appendChild(item);
  }
}

function renderChannels() {
  const filter = $("filter").value.trim().toLowerCase();
  const body = $("channel-rows");
  body.replaceChildren();
  for (const channel of state.channels) {
    if (filter && !channel.channel.toLowerCase().includes(filter)) continue;
    const row = document.createElement("tr");
    row.className = "pick";
    row.title = "inspect " + channel.channel;
    cell(row, channel.channel);
    cell(row, scopeOf(channel.channel));
    cell(row, channel.subscribers, true);
    cell(row, channel.presences, true);
    cell(row, channel.messages_per_minute, true);
    row.addEventListener("click", () => inspect(channel.channel));
    body.appendChild(row);
  }
}

function renderScopes(scopes) {
  const body = $("scope-rows");
  body.replaceChildren();
  for (const scope of scopes) {
    const row = document.createElement("tr");
    cell(row, scope.scope);
    cell(row, scope.channels, true);
    cell(row, scope.subscribers, true);
    cell(row, scope.presences, true);
    cell(row, scope.messages_per_minute, true);
    body.appendChild(row);
  }
}

function renderCluster(cluster) {
  const nodes = (cluster && cluster.nodes) || [];
  $("cluster").hidden = nodes.length === 0;
  if (nodes.length === 0) return;
  text($("cluster-agree"), cluster.rules_agree ? "— rules agree" : "— rules differ between nodes");
  $("cluster-agree").className = cluster.rules_agree ? "ok" : "bad";
  const body = $("cluster-rows");
  body.replaceChildren();
  for (const node of nodes) {
    const row = document.createElement("tr");
    cell(row, node.name + (node.self ? " (this)" : ""));
    cell(row, node.alive ? "alive" : "gone").className = node.alive ? "ok" : "bad";
    cell(row, node.heartbeat_age_seconds + " s ago", true);
    cell(row, node.connections, true);
    cell(row, "gen " + node.rules_generation + ", " + node.rules_digest + (node.rules_error ? " — " + node.rules_error : ""));
    body.appendChild(row);
  }
}

// ---- the inspector -------------------------------------------------------------------------

function inspect(channel) {
  state.inspected = channel;
  state.held = [];
  $("inspect-name").value = channel;
  text($("inspect-channel"), channel);
  $("inspect-body").hidden = false;
  $("tail").replaceChildren();
  openFeed();
}

function renderInspector(inspect) {
  if (!inspect || inspect.channel !== state.inspected) return;
  text($("inspect-subscribers"), inspect.subscribers);
  const list = $("inspect-presence");
  list.replaceChildren();
  let count = 0;
  for (const [key, value] of Object.entries(inspect.presence || {})) {
    for (const meta of value.metas || []) {
      count += 1;
      const item = document.createElement("li");
      text(item, key + ": " + JSON.stringify(meta));
      list.appendChild(item);
    }
  }
  text($("inspect-presence-count"), count);
}

function tail(message) {
  if (message.channel !== state.inspected) return;
  if (state.paused) {
    state.held.push(message);
    if (state.held.length > TAIL_LIMIT) state.held.shift();
    text($("tail-state"), "paused, " + state.held.length + " waiting");
    return;
  }
  appendTail(message);
}

function appendTail(message) {
  const box = $("tail");
  const line = document.createElement("div");
  text(line, new Date(message.time).toLocaleTimeString() + "  " + message.event + "  " + JSON.stringify(message.payload) + (message.meta ? "  " + JSON.stringify(message.meta) : ""));
  box.appendChild(line);
  while (box.childElementCount > TAIL_LIMIT) box.firstElementChild.remove();
  box.scrollTop = box.scrollHeight;
}

function togglePause() {
  state.paused = !state.paused;
  text($("pause"), state.paused ? "Resume" : "Pause");
  if (!state.paused) {
    for (const message of state.held) appendTail(message);
    state.held = [];
    text($("tail-state"), "live tail");
  } else {
    text($("tail-state"), "paused");
  }
}

async function sendTest(event) {
  event.preventDefault();
  let payload;
  try {
    payload = JSON.parse($("send-payload").value || "{}");
  } catch (error) {
    text($("send-result"), "the payload is not JSON: " + error.message);
    return;
  }
  const body = { messages: [{ topic: state.inspected, event: $("send-event").value, payload: payload }] };
  const response = await fetch("/api/broadcast", {
    method: "POST",
    headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let answer = "";
  try { answer = JSON.stringify(await response.json()); } catch (ignored) { /* no body */ }
  text($("send-result"), response.status === 202 ? "sent" : "refused (" + response.status + ") " + answer);
}

async function disconnect(event) {
  event.preventDefault();
  const sub = $("disconnect-sub").value.trim();
  if (!sub) return;
  if (!window.confirm("Disconnect every connection of user " + sub + "? They may reconnect.")) return;
  const response = await fetch("/admin/disconnect?sub=" + encodeURIComponent(sub), {
    method: "POST",
    headers: { Authorization: "Bearer " + state.token },
  });
  const body = await response.json();
  text($("disconnect-result"), response.ok ? "disconnected " + body.disconnected + " connection(s) of " + sub : body.message);
}

// ---- start ---------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim());
});
$("signout").addEventListener("click", signOut);
$("filter").addEventListener("input", renderChannels);
$("inspect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("inspect-name").value.trim();
  if (name) inspect(name);
});
$("pause").addEventListener("click", togglePause);
$("send-form").addEventListener("submit", sendTest);
$("disconnect-form").addEventListener("submit", disconnect);

const linked = tokenFromLink();
const saved = linked || sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved); else showSignIn("");
