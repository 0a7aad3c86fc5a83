// Live figures: opens /live (server-sent events) on pages with [data-live] elements and keeps them current.
// No inline script is allowed by the Content-Security-Policy, so pages include this file with <script src defer>.
(function () {
  "use strict";
  var targets = document.querySelectorAll("[data-live]");
  var ages = document.querySelectorAll("[data-live-age]");
  if (!targets.length && !ages.length) {
    return;
  }
  var lastEventAt = null;

  function show(figures) {
    targets.forEach(function (element) {
      var key = element.getAttribute("data-live");
      var path = key.split(".");
      var value = figures;
      for (var i = 0; i < path.length && value !== undefined && value !== null; i++) {
        value = value[path[i]];
      }
      if (value === undefined || value === null) {
        return;
      }
      if (typeof value === "number") {
        element.textContent = value.toLocaleString("en-US");
      } else if (typeof value === "object") {
        var parts = Object.keys(value).sort().map(function (currency) { return value[currency]; });
        element.textContent = parts.length ? parts.join(", ") : "nothing";
      } else {
        element.textContent = String(value);
      }
    });
    lastEventAt = figures.last_event_at ? new Date(figures.last_event_at) : null;
    tick();
  }

  function describeAge(seconds) {
    if (seconds < 60) { return seconds + " s ago"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min ago"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + " h ago"; }
    return Math.floor(seconds / 86400) + " days ago";
  }

  function tick() {
    var text = "no events yet";
    if (lastEventAt) {
      var seconds = Math.max(0, Math.round((Date.now() - lastEventAt.getTime()) / 1000));
      text = "last event " + describeAge(seconds);
    }
    ages.forEach(function (element) { element.textContent = text; });
  }

  var source = new EventSource("/live");
  source.addEventListener("today", function (message) {
    try {
      show(JSON.parse(message.data));
    } catch (error) {
      // A malformed event is skipped; the next one repairs the figures.
    }
  });
  window.setInterval(tick, 1000);
})();
