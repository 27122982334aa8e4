// hob operator console: polls the operator API about once a second and renders markets,
// the settlement pipeline, alerts and actors.
//
// Every string from the server enters the page as text (textContent / text nodes), never as
// markup: a market id or an alert message can hold anything. `?stable` masks what changes
// from run to run (clock times, hashes, block numbers) so a screenshot can be compared.
"use strict";

(() => {
  const POLL_MS = 1000;
  const TOKEN_KEY = "hob.operator.token";
  const CHANGES_KEPT = 20;
  const stable = new URLSearchParams(location.search).has("stable");
  const $ = (id) => document.getElementById(id);

  let token = null;
  let timer = null;
  let polls = 0;
  // Each market's status at the previous poll, to log changes as they are seen.
  const lastStatus = new Map();

  // -------------------------------------------------------------------------------------
  // DOM helpers: text only.
  // -------------------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else if (key === "type" || key === "title" || key === "disabled") node[key] = value;
      else if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else throw new Error("el: unsupported property " + key);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const dash = "\u2014";
  const or = (value) => (value === null || value === undefined || value === "" ? dash : String(value));
  const masked = (value) => (stable ? "\u2022\u2022\u2022\u2022" : or(value));
  const short = (hash) => (hash ? masked(hash.slice(0, 12) + "\u2026") : dash);
  const clock = (ms) => (stable ? "--:--:--" : new Date(ms).toISOString().slice(11, 19));
  const badge = (text, kind) => el("span", { class: "badge " + kind }, text);
  const num = (value) => el("td", { class: "num" }, or(value));

  function keyValues(pairs) {
    return el(
      "dl",
      { class: "kv" },
      pairs.map(([key, value, name]) => [el("dt", {}, key), el("dd", name ? { "data-field": name } : {}, value)]),
    );
  }

  // -------------------------------------------------------------------------------------
  // The operator API.
  // -------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, method) {
    let response;
    try {
      response = await fetch(path, {
        method: method || "GET",
        headers: { authorization: "Bearer " + token },
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, "unreachable", "the server did not answer (" + e.message + ")");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const code = body && body.code ? body.code : "http_" + response.status;
      const message = body && body.message ? body.message : response.statusText;
      throw new ApiError(response.status, code, message);
    }
    return body;
  }

  // Without a chain the settlement routes answer 409 no_chain: that is a state, not an error.
  async function unlessNoChain(promise) {
    try {
      return await promise;
    } catch (e) {
      if (e instanceof ApiError && e.code === "no_chain") return { noChain: true, message: e.message };
      throw e;
    }
  }

  async function fetchAll() {
    const [markets, actors, settlement, chain] = await Promise.all([
      api("/api/v1/markets"),
      api("/operator/actors?limit=200"),
      unlessNoChain(api("/operator/settlement")),
      unlessNoChain(api("/operator/chain")),
    ]);
    const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const details = await Promise.all(
      markets.slice().sort(byId).map(async (m) => {
        const id = encodeURIComponent(m.id);
        const [book, trades] = await Promise.all([
          api("/operator/markets/" + id),
          api("/api/v1/markets/" + id + "/trades?limit=1"),
        ]);
        return { info: m, book, last: trades.length ? trades[trades.length - 1] : null };
      }),
    );
    return { markets: details, actors, settlement, chain };
  }

  // -------------------------------------------------------------------------------------
  // Panels.
  // -------------------------------------------------------------------------------------

  async function setHalted(market, halted) {
    const question = halted
      ? "Halt " + market + "? New orders are refused until it is resumed; cancels still work."
      : "Resume " + market + "? New orders are accepted again.";
    if (!window.confirm(question)) return;
    try {
      await api("/operator/markets/" + encodeURIComponent(market) + (halted ? "/halt" : "/resume"), "POST");
    } catch (e) {
      showError("Could not " + (halted ? "halt " : "resume ") + market + ": " + e.message);
    }
    schedule(0);
  }

  function logChange(market, from, to) {
    const list = $("changes");
    list.prepend(
      el("li", { "data-market": market, "data-to": to }, clock(Date.now()) + "  " + market + ": " + from + " \u2192 " + to),
    );
    while (list.children.length > CHANGES_KEPT) list.lastChild.remove();
  }

  function renderMarkets(markets) {
    const rows = markets.map(({ info, book, last }) => {
      const status = book.status;
      const before = lastStatus.get(info.id);
      if (before !== undefined && before !== status) logChange(info.id, before, status);
      lastStatus.set(info.id, status);
      const halted = status === "halted";
      const bid = book.bids.length ? book.bids[0][0] : null;
      const ask = book.asks.length ? book.asks[0][0] : null;
      const trade = last ? last.price + " \u00d7 " + last.qty + " (" + last.side + ")" : null;
      return el(
        "tr",
        { "data-market": info.id, "data-status": status },
        el("td", { class: "id" }, info.id),
        el("td", {}, badge(status, halted ? "bad" : "good")),
        el("td", { class: "num bid", "data-field": "best-bid" }, or(bid)),
        el("td", { class: "num ask", "data-field": "best-ask" }, or(ask)),
        el("td", { class: "num", "data-field": "last-trade" }, or(trade)),
        num(book.resting_orders),
        num(book.version),
        num(book.mailbox_depth),
        el(
          "td",
          {},
          el(
            "button",
            { type: "button", "data-action": halted ? "resume" : "halt", onclick: () => setHalted(info.id, !halted) },
            halted ? "Resume" : "Halt",
          ),
        ),
      );
    });
    $("markets-body").replaceChildren(...rows);
  }

  function renderActors(actors) {
    const row = (kind) => (a) =>
      el(
        "tr",
        { "data-stream": a.stream, "data-kind": kind },
        el("td", { class: "id" }, a.stream),
        el("td", { class: "num", "data-field": "version" }, String(a.version)),
        num(a.mailbox_depth),
        el("td", { class: "hash" }, a.last_snapshot ? "v" + a.last_snapshot.version + " " + short(a.last_snapshot.state_hash) : "none"),
        el("td", { class: "hash" }, short(a.state_hash)),
      );
    // Sorted here: the server lists running actors in no particular order.
    const byStream = (a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0);
    $("actors-body").replaceChildren(
      ...actors.markets.slice().sort(byStream).map(row("market")),
      ...actors.users.slice().sort(byStream).map(row("user")),
    );
    const counters = Object.entries(actors.counters).map(([k, v]) => k + " " + v);
    const counterLine = [el("span", {}, counters.join(" \u00b7 "))];
    if (actors.truncated) counterLine.push(el("span", { class: "note" }, "  (more user actors run than shown)"));
    $("actor-counters").replaceChildren(...counterLine);
  }

  function renderSettlement(s, chain) {
    const body = $("settlement-body");
    if (s.noChain) {
      body.replaceChildren(
        el("p", { class: "note", "data-chain": "none" }, "No chain configured: trades match but do not settle. (" + s.message + ")"),
      );
      return;
    }
    const nonces = s.nonces;
    const batch = s.open_batch
      ? "#" + s.open_batch.batch + ": " + s.open_batch.trades + " trades, " + s.open_batch.failures + " failures"
      : "none";
    const contract = chain.noChain
      ? dash
      : (chain.paused === null ? "unknown" : chain.paused ? "PAUSED" : "running") + " (" + chain.mode + ")";
    const pairs = [
      ["operator", el("span", { class: "hash" }, s.operator), "operator"],
      [
        "actor",
        s.hosted_on
          ? badge("on " + s.hosted_on, "good")
          : s.running
            ? badge("running", "good")
            : badge("stopped", "bad"),
        "running",
      ],
      ["stream", s.stream + " v" + s.version, "stream"],
      ["queued trades", String(s.queued_trades), "queued-trades"],
      ["queued withdrawals", String(s.queued_withdrawals), "queued-withdrawals"],
      ["open batch", batch, "open-batch"],
      ["in flight", String(s.in_flight.length), "in-flight"],
      ["next chain index", String(s.next_chain_index), "next-chain-index"],
      ["nonce next", String(nonces.next), "nonce-next"],
      ["nonce mined / pending", or(nonces.chain_latest) + " / " + or(nonces.chain_pending), "nonce-chain"],
      ["nonce gap", or(nonces.gap), "nonce-gap"],
      ["stuck nonces", nonces.stuck.length ? nonces.stuck.join(", ") : "none", "nonce-stuck"],
      ["settled", s.settled_batches + " batches, " + s.settled_trades + " trades", "settled"],
      ["failed / voided", s.failed_batches + " batches / " + s.voided_trades + " trades", "failed"],
      ["contract", contract, "contract"],
      ["latest block", chain.noChain ? dash : masked(chain.latest_block), "latest-block"],
      [
        "unregistered markets",
        chain.noChain || !chain.unregistered_markets.length ? "none" : chain.unregistered_markets.join(", "),
        "unregistered",
      ],
    ];
    const parts = [keyValues(pairs)];
    if (s.error) parts.push(el("p", { class: "warn" }, s.error));
    if (chain.error) parts.push(el("p", { class: "warn" }, "chain: " + chain.error));
    if (s.in_flight.length) {
      parts.push(
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", {}, "nonce"), el("th", {}, "state"), el("th", {}, "attempts"), el("th", {}, "latest"), el("th", { class: "num" }, "gas price (wei)"))),
          el(
            "tbody",
            {},
            s.in_flight.map((f) => {
              const latest = f.attempts.length ? f.attempts[f.attempts.length - 1] : null;
              return el(
                "tr",
                { "data-nonce": f.nonce, "data-state": f.state },
                num(f.nonce),
                el("td", {}, badge(f.state, f.state === "sent" ? "good" : "bad")),
                num(f.attempts.length),
                el("td", {}, latest ? latest.purpose : dash),
                num(latest ? latest.gas_price_wei : null),
              );
            }),
          ),
        ),
      );
    }
    body.replaceChildren(...parts);
  }

  function renderAlerts(markets, s, chain) {
    const items = [];
    for (const { info, book } of markets) {
      if (book.status === "halted") {
        items.push(el("li", { "data-kind": "halted" }, badge("halted", "bad"), " market " + info.id + " is halted: new orders are refused"));
      }
    }
    if (!chain.noChain && chain.paused) {
      items.push(el("li", { "data-kind": "paused" }, badge("paused", "bad"), " the exchange contract is paused"));
    }
    if (!s.noChain) {
      for (const a of s.alerts.slice().reverse()) {
        items.push(
          el("li", { "data-kind": a.kind }, clock(a.at_ms) + " ", badge(a.kind, "bad"), " " + (a.market ? a.market + ": " : "") + a.message),
        );
      }
    }
    const totals = s.noChain
      ? "settlement alerts: none (no chain)"
      : "settlement alerts since start: " + s.alerts_total + " \u00b7 admin alerts: " + s.admin_alerts;
    $("alerts-body").replaceChildren(
      el("p", { class: "counters" }, totals),
      items.length ? el("ul", { class: "alerts" }, items) : el("p", { class: "note", "data-alerts": "none" }, "No alerts."),
    );
  }

  // -------------------------------------------------------------------------------------
  // State, polling, token.
  // -------------------------------------------------------------------------------------

  function setState(state, text) {
    document.body.dataset.state = state;
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function askForToken(message) {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    $("login").hidden = false;
    if (message) showError(message);
    $("token").focus();
  }

  async function poll() {
    timer = null;
    try {
      const data = await fetchAll();
      polls += 1;
      document.body.dataset.polls = String(polls);
      renderMarkets(data.markets);
      renderActors(data.actors);
      renderSettlement(data.settlement, data.chain);
      renderAlerts(data.markets, data.settlement, data.chain);
      $("updated").textContent = stable ? "(stable)" : clock(Date.now()) + " UTC";
      $("error").hidden = true;
      setState("live", "live");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setState("error", "token refused");
        askForToken("The operator token was refused (401 " + e.code + "): " + e.message + ". Enter the token again.");
        return;
      }
      if (e instanceof ApiError && e.status === 0) {
        setState("error", "server unreachable");
        showError("The server does not answer; the figures below are from the last successful poll. Retrying every second.");
      } else {
        setState("error", "error");
        showError("The operator API failed: " + (e.code ? e.code + ": " : "") + e.message);
      }
    }
    schedule(POLL_MS);
  }

  function schedule(ms) {
    if (token === null) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function start() {
    // `#token=...` (for links and headless tests) is moved into this tab's storage and
    // dropped from the address bar, so it is not left in the history.
    const match = /^#(?:.*&)?token=([^&]*)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    token = sessionStorage.getItem(TOKEN_KEY);
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const entered = $("token").value.trim();
      if (!entered) return;
      sessionStorage.setItem(TOKEN_KEY, entered);
      token = entered;
      $("token").value = "";
      $("login").hidden = true;
      $("error").hidden = true;
      setState("starting", "connecting");
      schedule(0);
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      setState("starting", "no token");
      askForToken(null);
    });
    if (token === null) {
      setState("starting", "no token");
      askForToken(null);
    } else {
      setState("starting", "connecting");
      schedule(0);
    }
  }

  start();
})();
