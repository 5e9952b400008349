// TEL3SIS status page: calls in progress over server-sent events, health (and the calls other
// processes run) refreshed every 15 s.
// Plain JS, no build step. Everything a caller said goes into the page as text, never as HTML.
"use strict";

(function () {
  const live = document.getElementById("live");
  const badge = document.getElementById("live-state");
  const checked = document.getElementById("checked");
  if (!live) return;

  const calls = new Map(); // id -> {call, card, ended}
  const KEEP_ENDED_MS = 20000;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function lineItem(line) {
    const item = el("li", line.speaker + (line.interrupted ? " interrupted" : ""));
    const label = line.speaker === "tool" ? "tool: " + line.text : line.text;
    item.appendChild(el("span", "text", label));
    return item;
  }

  function card(call) {
    const node = el("article", "call-card");
    node.dataset.call = call.id;
    const head = el("header");
    head.appendChild(el("strong", "", call.caller || "unknown caller"));
    head.appendChild(el("span", "tag", call.line));
    head.appendChild(el("span", "pill state", call.state));
    head.appendChild(el("span", "timer", ""));
    node.appendChild(head);
    const list = el("ol", "transcript");
    for (const line of call.lines) list.appendChild(lineItem(line));
    node.appendChild(list);
    return node;
  }

  function showEmpty() {
    // Calls another process runs (an `appliance call`) are listed from the records, beside.
    const open = calls.size + document.querySelectorAll("#elsewhere .call-card").length;
    const empty = live.querySelector(".empty");
    if (open === 0 && !empty) live.appendChild(el("p", "empty", "No calls right now. The box is listening."));
    if (open > 0 && empty) empty.remove();
  }

  function add(call) {
    const existing = calls.get(call.id);
    if (existing) existing.card.remove();
    const entry = { call: call, card: card(call), ended: false };
    calls.set(call.id, entry);
    live.appendChild(entry.card);
    showEmpty();
    tick();
  }

  function snapshot(list) {
    calls.clear();
    live.replaceChildren();
    for (const call of list) add(call);
    showEmpty();
  }

  function update(u) {
    const entry = calls.get(u.id);
    if (u.type === "call") return add(u.call);
    if (!entry) return;
    if (u.type === "line") {
      const list = entry.card.querySelector(".transcript");
      list.appendChild(lineItem(u));
      list.scrollTop = list.scrollHeight;
    } else if (u.type === "state") {
      entry.card.querySelector(".state").textContent = u.state;
    } else if (u.type === "ended") {
      entry.ended = true;
      entry.card.classList.add("ended");
      entry.card.querySelector(".state").textContent = "ended";
      const note = el("p", "ended-note", "Call ended: " + u.reason + ". ");
      const link = el("a", "", "Open the call \u2192");
      link.href = "/calls/" + encodeURIComponent(u.id);
      note.appendChild(link);
      entry.card.appendChild(note);
      setTimeout(function () {
        if (calls.get(u.id) === entry) {
          calls.delete(u.id);
          entry.card.remove();
          showEmpty();
        }
      }, KEEP_ENDED_MS);
    }
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const entry of calls.values()) {
      if (entry.ended) continue;
      entry.card.querySelector(".timer").textContent = clock(now - entry.call.started);
    }
  }
  setInterval(tick, 1000);

  function state(text, cls) {
    badge.textContent = text;
    badge.dataset.state = cls;
  }

  function connect() {
    const source = new EventSource("/api/live");
    source.addEventListener("open", function () { state("live", "live"); });
    source.addEventListener("snapshot", function (e) { snapshot(JSON.parse(e.data).calls); });
    source.addEventListener("update", function (e) { update(JSON.parse(e.data)); });
    source.addEventListener("error", function () {
      // The browser retries by itself; a closed source (logged out, server gone) does not.
      if (source.readyState === EventSource.CLOSED) state("stopped: reload the page", "stopped");
      else state("reconnecting", "connecting");
    });
  }
  connect();

  async function refreshHealth() {
    try {
      const response = await fetch("/partials/health", { credentials: "same-origin" });
      if (response.ok) {
        // Our own server-rendered (escaped) markup: the summary at the top and the cards.
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const id of ["health-summary", "health", "elsewhere"]) {
          const now = document.getElementById(id);
          const next = fresh.getElementById(id);
          if (now && next) now.replaceWith(document.importNode(next, true));
        }
        showEmpty();
        checked.textContent = "checked " + new Date().toLocaleTimeString();
      }
    } catch (e) {
      checked.textContent = "could not check: " + e.message;
    }
  }
  checked.textContent = "checked " + new Date().toLocaleTimeString();
  setInterval(refreshHealth, 15000);
})();
