// A commissioning session's page: poll its JSON and reload when a button's record moved (a press seen,
// an answer recorded, the gateway's indication), so the technician sees each button pass without a click.
(function () {
  "use strict";
  var root = document.getElementById("commissioning-session");
  if (!root) { return; }
  var url = root.getAttribute("data-poll");
  function markOf(b) {
    return [b.event_id || "", b.result, b.checks.indication, b.led_seen, b.buzzer_heard].join("|");
  }
  function shown() {
    var marks = {};
    document.querySelectorAll("#commissioning-buttons tr[data-button]").forEach(function (row) {
      marks[row.getAttribute("data-button")] = row.getAttribute("data-mark");
    });
    return marks;
  }
  function busy() {
    var active = document.activeElement;
    return active && (active.tagName === "SELECT" || active.tagName === "INPUT");
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (session) {
        if (!session) { return; }
        var marks = shown();
        var moved = session.state !== root.getAttribute("data-state") ||
          session.buttons.some(function (b) { return marks[b.id] !== markOf(b); });
        if (moved && !busy()) { window.location.reload(); }
      })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
