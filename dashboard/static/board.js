/* Siaga live board: Server-Sent Events in, operator actions out, a sound that
 * repeats until every alarm is acknowledged. No framework, no external asset:
 * the board must work on a fire post's PC without internet access. */
(() => {
  "use strict";

  const root = document.getElementById("board");
  const T = JSON.parse(document.getElementById("i18n").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const lang = root.dataset.lang === "en" ? "en-GB" : "id-ID";
  const alarms = new Map();
  const gateways = new Map();
  const troubles = new Map();
  let serverOffsetMs = 0;

  const t = (key, vars) => {
    let text = T[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, value);
    return text;
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() + serverOffsetMs - Date.parse(iso)) / 1000));
    if (seconds < 60) return t("ago_seconds", { n: seconds });
    if (seconds < 3600) return t("ago_minutes", { n: Math.floor(seconds / 60) });
    if (seconds < 86400) return t("ago_hours", { n: Math.floor(seconds / 3600) });
    return t("ago_days", { n: Math.floor(seconds / 86400) });
  }

  const clock = (iso) => new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  // -- state -----------------------------------------------------------------

  // The highest revision seen of every alarm, closed ones included: updates
  // come from several server threads, so an older copy can arrive after a
  // newer one, and must never bring a resolved alarm back on screen.
  const revisions = new Map();

  function applyAlarm(alarm) {
    const seen = revisions.get(alarm.id);
    if (seen !== undefined && seen > alarm.rev) return; // an older copy arrived late
    revisions.set(alarm.id, alarm.rev);
    if (alarm.open) alarms.set(alarm.id, alarm);
    else alarms.delete(alarm.id);
  }

  function applySnapshot(data) {
    serverOffsetMs = Date.parse(data.server_time) - Date.now();
    alarms.clear();
    data.closed.forEach((c) => { if (!(revisions.get(c.id) > c.rev)) revisions.set(c.id, c.rev); });
    data.alarms.forEach(applyAlarm);
    gateways.clear();
    data.gateways.forEach((gw) => gateways.set(gw.gw, gw));
    troubles.clear();
    (data.troubles || []).forEach(applyTrouble);
  }

  function applyTrouble(trouble) {
    if (trouble.cleared) troubles.delete(trouble.id);
    else troubles.set(trouble.id, trouble);
  }

  // -- rendering -------------------------------------------------------------

  function renderGateways() {
    const list = document.getElementById("gateway-list");
    const items = [...gateways.values()].map((gw) => {
      const label = gw.state === "online" ? t("gw_online") : gw.state === "offline" ? t("gw_offline") : t("gw_unknown");
      const mark = gw.state === "online" ? "●" : gw.state === "offline" ? "✖" : "?";
      return el("li", { class: `gw gw-${gw.state}`, dataset: { gw: gw.gw, state: gw.state } },
        el("span", { class: "mark", "aria-hidden": "true" }, mark), ` ${gw.gw}: `, el("strong", {}, label));
    });
    list.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, t("no_gateways"))]));
  }

  function renderTroubles() {
    const sorted = [...troubles.values()].sort((a, b) => a.began.localeCompare(b.began));
    const items = sorted.map((trouble) => el("li", {
      class: `trouble trouble-${trouble.type}`,
      dataset: { troubleId: trouble.id, type: trouble.type, subject: trouble.subject || trouble.button || trouble.gw },
    },
    el("strong", { class: "what" }, t(`trouble_${trouble.type}`)),
    ` ${trouble.subject || trouble.button || trouble.gw}`,
    trouble.button ? el("span", { class: "via" }, ` @ ${trouble.gw}`) : null,
    el("span", { class: "detail" }, ` — ${trouble.detail}`),
    el("div", { class: "meta" }, `${t("trouble_since")} ${clock(trouble.began)} · `,
      el("span", { class: "ago", dataset: { since: trouble.began } }, ago(trouble.began)))));
    document.getElementById("trouble-list").replaceChildren(...items);
    document.getElementById("trouble-count").textContent = String(sorted.length);
    document.getElementById("no-troubles").hidden = sorted.length > 0;
  }

  function dispatchForm(alarm) {
    const unit = el("input", {
      name: "unit", type: "text", list: "units", required: true, maxlength: "100",
      placeholder: t("unit_placeholder"), "aria-label": t("unit"),
    });
    const note = el("input", { name: "note", type: "text", maxlength: "2000", placeholder: t("note_placeholder"), "aria-label": t("note") });
    return el("form", {
      class: "actions dispatch",
      onsubmit: (e) => {
        e.preventDefault();
        act(alarm.id, "dispatch", { unit: unit.value, note: note.value });
      },
    }, unit, note, el("button", { type: "submit", class: "dispatch" }, t("dispatch")));
  }

  function actionsFor(alarm) {
    if (alarm.state === "unacknowledged") {
      return el("div", { class: "actions" },
        el("button", { type: "button", class: "ack", onclick: () => act(alarm.id, "acknowledge", {}) }, t("acknowledge")));
    }
    return el("div", { class: "steps" }, alarm.state === "acknowledged" ? dispatchForm(alarm) : null, resolveForm(alarm));
  }

  function resolveForm(alarm) {
    const select = el("select", { name: "resolution", "aria-label": t("resolve") },
      ["real", "false_alarm", "test"].map((r) => el("option", { value: r }, t(`resolution_${r}`))));
    const note = el("input", { name: "note", type: "text", maxlength: "2000", placeholder: t("note_placeholder"), "aria-label": t("note") });
    return el("form", {
      class: "actions resolve",
      onsubmit: (e) => {
        e.preventDefault();
        act(alarm.id, "resolve", { resolution: select.value, note: note.value, rev: alarm.rev, presses: alarm.press_count });
      },
    }, select, note, el("button", { type: "submit", class: "resolve" }, t("resolve")));
  }

  function alarmCard(alarm) {
    const place = alarm.site ? alarm.site.name : t("site_unknown");
    const escalated = alarm.state === "unacknowledged" && alarm.escalation > 0 && !alarm.test;
    return el("li", {
      class: `alarm kind-${alarm.kind} state-${alarm.state}${escalated ? " escalated" : ""}${alarm.test ? " test" : ""}`,
      dataset: { alarmId: alarm.id, state: alarm.state, kind: alarm.kind, escalation: alarm.escalation || 0, test: alarm.test ? 1 : 0 },
    },
      alarm.test ? el("strong", { class: "test-banner" }, "⚙ ", t("test_alarm")) : null,
      // Raised although something about it is odd (fail open): say what, so someone looks.
      alarm.anomaly ? el("strong", { class: "anomaly", dataset: { anomaly: alarm.anomaly } }, "? ", t(`anomaly_${alarm.anomaly}`)) : null,
      escalated ? el("strong", { class: "escalation", role: "alert" }, "⚠ ", t("escalated", { step: alarm.escalation }),
        el("span", { class: "hint" }, t("escalated_hint", { since: clock(alarm.opened_at) }),
          alarm.notified ? ` ${t("escalated_notified", { n: alarm.notified })}` : "")) : null,
      el("div", { class: "head" },
        // Text on a coloured badge, no emoji: a fire post PC may have no emoji font (it shows empty boxes).
        el("span", { class: "kind" }, t(`kind_${alarm.kind}`)),
        el("span", { class: "state" }, { unacknowledged: "⚠ ", acknowledged: "✔ ", dispatched: "➜ " }[alarm.state] || "", t(`state_${alarm.state}`)),
        el("span", { class: "number" }, `#${alarm.number}`)),
      el("div", { class: "place" }, place, alarm.label ? el("span", { class: "label" }, ` — ${alarm.label}`) : null),
      el("div", { class: "meta" },
        `${t("pressed_at")} ${clock(alarm.opened_at)} · `,
        el("span", { class: "ago", dataset: { since: alarm.opened_at } }, ago(alarm.opened_at)),
        ` · ${t("presses")}: `, el("strong", { class: "presses" }, alarm.press_count),
        ` · ${alarm.button} @ ${alarm.gw}`,
        alarm.acknowledged_by ? el("div", { class: "ackby" }, t("acknowledged_by", { who: alarm.acknowledged_by })) : null,
        alarm.dispatch_unit ? el("div", { class: "dispatched" }, t("dispatched_to", { unit: alarm.dispatch_unit, who: alarm.dispatched_by })) : null),
      actionsFor(alarm));
  }

  // An update of any alarm redraws the list: what an operator was typing or choosing on a card
  // (a unit, a note, a resolution) and where the cursor was must survive it, or a live update
  // would silently swap "false alarm" back to the default just before they click "resolve".
  function fieldsOf(list) {
    const fields = [];
    list.querySelectorAll("li[data-alarm-id]").forEach((card) => {
      card.querySelectorAll("input[name], select[name]").forEach((field, i) => {
        fields.push([`${card.dataset.alarmId}|${card.dataset.state}|${i}|${field.name}`, field]);
      });
    });
    return fields;
  }

  function draftsOf(list) {
    const values = new Map();
    let focused = null;
    for (const [key, field] of fieldsOf(list)) {
      values.set(key, field.value);
      if (field === document.activeElement) focused = key;
    }
    return { values, focused };
  }

  function restoreDrafts(list, drafts) {
    for (const [key, field] of fieldsOf(list)) {
      if (drafts.values.has(key)) field.value = drafts.values.get(key);
      if (key === drafts.focused) field.focus();
    }
  }

  function renderAlarms() {
    // Escalated unacknowledged alarms first: they are the ones being missed.
    const urgency = (a) => (a.test ? -1 : a.state === "unacknowledged" ? 1 + (a.escalation || 0) : 0);
    const sorted = [...alarms.values()].sort((a, b) => (urgency(b) - urgency(a))
      || (b.opened_at.localeCompare(a.opened_at)) || (b.id - a.id));
    const list = document.getElementById("alarm-list");
    const drafts = draftsOf(list);
    list.replaceChildren(...sorted.map(alarmCard));
    restoreDrafts(list, drafts);
    document.getElementById("alarm-count").textContent = String(sorted.length);
    document.getElementById("no-alarms").hidden = sorted.length > 0;
    updateSound();
  }

  function render() { renderGateways(); renderTroubles(); renderAlarms(); }

  setInterval(() => {
    document.querySelectorAll(".ago[data-since]").forEach((node) => { node.textContent = ago(node.dataset.since); });
  }, 1000);

  // -- actions ------------------------------------------------------------------

  async function act(id, action, body) {
    try {
      const response = await fetch(`/api/alarms/${id}/${action}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({}));
      if (response.status === 409 && data.error === "changed" && data.alarm) {
        // New presses joined while the operator decided: show them, then let the operator decide again.
        applyAlarm(data.alarm);
        renderAlarms();
        window.alert(t("alarm_changed", { n: data.alarm.press_count }));
        return;
      }
      if (!response.ok) throw new Error(data.message || data.error || response.status);
      applyAlarm(data.alarm);
      renderAlarms();
    } catch (error) {
      window.alert(`${t("error_action")}: ${error.message}`);
    }
  }

  // -- sound: repeats while any alarm is unacknowledged -------------------------

  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  const audio = AudioCtx ? new AudioCtx() : null;
  const prompt = document.getElementById("sound-prompt");
  let soundTimer = null;

  function beep() {
    if (!audio || audio.state !== "running") return;
    const start = audio.currentTime;
    const gain = audio.createGain();
    gain.connect(audio.destination);
    gain.gain.setValueAtTime(0.0001, start);
    [880, 660, 880, 660].forEach((freq, i) => {
      const osc = audio.createOscillator();
      osc.type = "square";
      osc.frequency.setValueAtTime(freq, start + i * 0.25);
      osc.connect(gain);
      osc.start(start + i * 0.25);
      osc.stop(start + i * 0.25 + 0.22);
    });
    gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
    gain.gain.setValueAtTime(0.3, start + 0.95);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 1.0);
  }

  // A technician's test alarm never sounds: only real calls for help do.
  function soundNeeded() { return [...alarms.values()].some((a) => a.state === "unacknowledged" && !a.test); }

  function updateSound() {
    const needed = soundNeeded();
    const blocked = !audio || audio.state !== "running";
    prompt.hidden = !(blocked && (needed || audio && audio.state === "suspended"));
    document.body.dataset.sound = needed ? (blocked ? "blocked" : "playing") : "idle";
    document.body.classList.toggle("alarming", needed);
    if (needed && !soundTimer) {
      beep();
      soundTimer = setInterval(() => {
        if (!soundNeeded()) return;
        beep();
        // Escalated: twice as often, so that a dozing post hears the difference.
        if ([...alarms.values()].some((a) => a.state === "unacknowledged" && a.escalation > 0)) setTimeout(beep, 1000);
      }, 2000);
    } else if (!needed && soundTimer) {
      clearInterval(soundTimer);
      soundTimer = null;
    }
  }

  prompt.addEventListener("click", () => {
    if (!audio) return;
    audio.resume().then(() => { updateSound(); if (soundNeeded()) beep(); });
  });
  if (audio) audio.onstatechange = updateSound;

  // -- map and site list ------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  const SHAPES = { unacknowledged: "▲", acknowledged: "■", dispatched: "■", trouble: "◆", out_of_service: "◆", test: "◆", ok: "●" };
  const URGENCY = ["unacknowledged", "acknowledged", "dispatched", "trouble", "out_of_service", "test", "ok"];
  const rank = (state) => { const i = URGENCY.indexOf(state); return i < 0 ? URGENCY.length : i; };
  // The summary: each site's state and counts, with only its buttons that are not ok. A site opened
  // in the list has all its buttons fetched (and fetched again with every refresh while it is open).
  let sites = [];
  const opened = new Map(); // site name -> its every button, as last fetched
  let sitesTimer = null;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    children.forEach((child) => node.append(child instanceof Node ? child : document.createTextNode(String(child))));
    return node;
  }

  const stateText = (state) => t(["unacknowledged", "acknowledged", "dispatched"].includes(state) ? `state_${state}` : `site_state_${state}`);

  // Sites change with alarms and troubles: fetch them again shortly after either (once per burst).
  function refreshSites() {
    if (sitesTimer) return;
    sitesTimer = setTimeout(async () => {
      sitesTimer = null;
      try {
        const response = await fetch("/api/sites?view=summary", { credentials: "same-origin" });
        if (!response.ok) return;
        sites = (await response.json()).sites;
        await Promise.all([...opened.keys()].map(fetchSite));
        renderSites();
      } catch (error) { /* the stream's own reconnect brings a fresh snapshot, and with it this again */ }
    }, 250);
  }

  async function fetchSite(name) {
    const response = await fetch(`/api/sites?site=${encodeURIComponent(name)}`, { credentials: "same-origin" });
    if (response.ok) opened.set(name, (await response.json()).site.buttons);
    else if (response.status === 404) opened.delete(name); // its buttons are gone
  }

  async function openSite(name) {
    try { await fetchSite(name); } catch (error) { return; }
    renderSiteList();
    const more = document.querySelector(`#site-table tr[data-site="${CSS.escape(name)}"] td:last-child`);
    if (more) { more.setAttribute("tabindex", "-1"); more.focus(); }
  }

  // An alarm shows on its site at once; the summary fetched just after confirms it (or corrects it).
  function alarmOnSite(alarm) {
    const site = alarm.site && sites.find((s) => s.name === alarm.site.name);
    if (!site || !alarm.open || alarm.test) return;
    const chip = { id: alarm.button, kind: alarm.kind, label: alarm.label, state: alarm.state, alarm: alarm.id };
    site.buttons = [chip, ...site.buttons.filter((b) => b.id !== alarm.button)];
    if (rank(alarm.state) < rank(site.state)) site.state = alarm.state;
    sites.sort((a, b) => (rank(a.state) - rank(b.state)) || a.name.localeCompare(b.name));
    renderSites();
  }

  function showAlarmOf(site) {
    const alarmed = site.buttons.find((b) => b.alarm);
    setView("alarms");
    const card = alarmed && document.querySelector(`#alarm-list li[data-alarm-id="${alarmed.alarm}"]`);
    if (card) { card.setAttribute("tabindex", "-1"); card.focus(); card.scrollIntoView({ block: "center" }); }
  }

  // Where internet (or a local tile server) exists, [reports] map_tile_url puts the sites on real tiles.
  const tileElement = document.getElementById("tile-map");
  let tileMap = null;
  let tileMarkers = null;

  function renderTileMap(placed) {
    if (!tileMap) {
      tileMap = window.L.map(tileElement);
      window.L.tileLayer(tileElement.dataset.tiles, { maxZoom: 19, attribution: tileElement.dataset.attribution }).addTo(tileMap);
      tileMarkers = window.L.layerGroup().addTo(tileMap);
      tileMap.fitBounds(window.L.latLngBounds(placed.map((s) => [s.lat, s.lon])).pad(0.3), { maxZoom: 16 });
    }
    tileMarkers.clearLayers();
    placed.forEach((site) => {
      const label = `${site.name}: ${stateText(site.state)}`;
      const icon = el("span", { class: `tile-site s-${site.state}`, dataset: { site: site.name, state: site.state } },
        el("span", { class: "shape" }, SHAPES[site.state] || "●"), el("span", { class: "name" }, site.name));
      const marker = window.L.marker([site.lat, site.lon], {
        title: label, alt: label, keyboard: true,
        icon: window.L.divIcon({ html: icon, className: "tile-icon", iconSize: null }),
      });
      marker.on("click", () => showAlarmOf(site));
      marker.on("keypress", (e) => { if (e.originalEvent.key === "Enter") showAlarmOf(site); });
      tileMarkers.addLayer(marker);
    });
  }

  function renderMap() {
    const map = document.getElementById("site-map");
    if (tileElement && window.L) {
      map.setAttribute("display", "none"); // an SVG element has no "hidden" property
      const placed = sites.filter((s) => Number.isFinite(s.lat) && Number.isFinite(s.lon));
      if (placed.length) renderTileMap(placed);
      return;
    }
    const placed = sites.filter((s) => Number.isFinite(s.lat) && Number.isFinite(s.lon));
    if (!placed.length) {
      map.replaceChildren(svg("text", { x: 500, y: 300, "text-anchor": "middle", class: "muted" }, t("map_empty")));
      return;
    }
    // An equirectangular projection fitted to the sites: no tiles, no internet, true to the layout.
    const lats = placed.map((s) => s.lat), lons = placed.map((s) => s.lon);
    const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
    const kx = Math.cos((midLat * Math.PI) / 180);
    const spanX = Math.max((Math.max(...lons) - Math.min(...lons)) * kx, 0.01);
    const spanY = Math.max(Math.max(...lats) - Math.min(...lats), 0.01);
    const scale = Math.min(840 / spanX, 440 / spanY);
    const x = (lon) => 500 + (lon - (Math.min(...lons) + Math.max(...lons)) / 2) * kx * scale;
    const y = (lat) => 300 - (lat - midLat) * scale;
    const nodes = [svg("rect", { x: 0, y: 0, width: 1000, height: 600, class: "map-bg" })];
    placed.slice().reverse().forEach((site) => { // the most urgent last: drawn on top
      const label = `${site.name}: ${stateText(site.state)}`;
      nodes.push(svg("g", {
        class: `site s-${site.state}`, tabindex: "0", role: "button", "aria-label": label,
        "data-site": site.name, "data-state": site.state, transform: `translate(${x(site.lon).toFixed(1)},${y(site.lat).toFixed(1)})`,
      }, svg("title", {}, label),
      svg("text", { class: "shape", "text-anchor": "middle", y: 12 }, SHAPES[site.state] || "●"),
      svg("text", { class: "name", "text-anchor": "middle", y: 40 }, site.name)));
    });
    map.replaceChildren(...nodes);
    map.querySelectorAll("g.site").forEach((node) => {
      const site = sites.find((s) => s.name === node.dataset.site);
      node.addEventListener("click", () => showAlarmOf(site));
      node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); showAlarmOf(site); } });
    });
  }

  const chip = (b) => el("span", { class: `chip s-${b.state}`, dataset: { button: b.id } },
    `${SHAPES[b.state] || "●"} ${b.label || b.id} (${stateText(b.state)})`);

  function siteButtons(site) {
    const all = opened.get(site.name);
    if (all) return all.map(chip);
    const shown = site.buttons.map(chip);
    const rest = (site.count ?? site.buttons.length) - site.buttons.length;
    if (rest <= 0) return shown;
    return [...shown, el("span", { class: "more muted" }, ` ${t("site_more_ok", { n: rest })} `),
      el("button", { type: "button", class: "show-all", onclick: () => openSite(site.name) }, t("site_show_all"))];
  }

  function renderSiteList() {
    const rows = sites.map((site) => el("tr", { dataset: { site: site.name, state: site.state } },
      el("td", {}, site.name),
      el("td", { class: `s-${site.state}` }, `${SHAPES[site.state] || "●"} ${stateText(site.state)}`),
      el("td", {}, siteButtons(site))));
    document.querySelector("#site-table tbody").replaceChildren(...rows);
  }

  function renderSites() { renderMap(); renderSiteList(); }

  const views = { alarms: "alarms-view", map: "map-view", sites: "sites-view" };
  function setView(name) {
    for (const [key, id] of Object.entries(views)) document.getElementById(id).hidden = key !== name && !(wall && key === "map");
    document.querySelectorAll("nav.views button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.view === name)));
    if (name !== "alarms") refreshSites();
    if (tileMap) setTimeout(() => tileMap.invalidateSize(), 0); // it was drawn while hidden
  }
  document.querySelectorAll("nav.views button").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  // A wall display shows the alarms and the map side by side, always.
  const wall = document.body.classList.contains("wall");
  if (wall) document.getElementById("map-view").hidden = false;

  // -- live stream ----------------------------------------------------------------

  const streamState = document.getElementById("stream-state");
  function setStream(state) {
    streamState.dataset.state = state;
    streamState.textContent = state === "live" ? `● ${t("stream_connected")}` : `○ ${t("stream_connecting")}`;
  }

  function connect() {
    const source = new EventSource("/api/stream");
    source.addEventListener("snapshot", (e) => { applySnapshot(JSON.parse(e.data)); setStream("live"); render(); refreshSites(); });
    source.addEventListener("alarm", (e) => {
      const alarm = JSON.parse(e.data);
      applyAlarm(alarm); renderAlarms(); alarmOnSite(alarm); refreshSites();
    });
    source.addEventListener("gateway", (e) => { const gw = JSON.parse(e.data); gateways.set(gw.gw, gw); renderGateways(); });
    source.addEventListener("trouble", (e) => { applyTrouble(JSON.parse(e.data)); renderTroubles(); refreshSites(); });
    source.addEventListener("replaced", (e) => {
      // Over the account's screen limit: this (oldest) screen gave way. It stays closed until someone
      // clicks, so two screens over the limit do not take turns replacing each other.
      // A real button inside the status: reachable by keyboard, announced, and it says what it does.
      source.close();
      streamState.dataset.state = "replaced";
      const reconnect = el("button", {
        type: "button", id: "stream-reconnect", class: "reconnect",
        onclick: () => { setStream("connecting"); connect(); },
      }, `○ ${t("stream_replaced", { n: JSON.parse(e.data).streams_per_account })}`);
      streamState.replaceChildren(reconnect);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED && streamState.dataset.state === "replaced") return;
      setStream("connecting");
      if (source.readyState === EventSource.CLOSED) {
        // The server refused (e.g. signed out) or went away for good: retry, then reload to sign in.
        setTimeout(() => fetch("/api/gateways", { credentials: "same-origin" })
          .then((r) => (r.status === 401 ? window.location.reload() : connect()))
          .catch(() => connect()), 2000);
      }
    });
  }

  updateSound();
  connect();
})();
