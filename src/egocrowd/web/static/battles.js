/* Robot battles (#19). The evaluator's lease counts down (the page without script says until when);
 * a robot's run can take up to a minute, so its button says so while the page waits. The lab's
 * live ranking on the campaign page is fetched again every few seconds, without a reload.
 * Written for old phone browsers too (no modules, no arrow functions). */
(function () {
  "use strict";
  var lease = document.getElementById("lease");
  if (lease) {
    var ends = Date.parse(lease.getAttribute("datetime"));
    var tick = function () {
      var left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      lease.textContent = left > 0 ? tr("{m} min {s} s left", { m: m, s: (s < 10 ? "0" : "") + s }) : tr("Time is up");
      if (left < 120) lease.setAttribute("data-late", "1");
      if (left > 0) window.setTimeout(tick, 1000);
    };
    tick();
  }
  var forms = document.querySelectorAll("form.run-form");
  for (var i = 0; i < forms.length; i++) {
    forms[i].addEventListener("submit", function (ev) {
      var button = ev.target.querySelector("button[data-busy]");
      if (button) {
        window.setTimeout(function () { button.disabled = true; button.textContent = button.getAttribute("data-busy"); }, 0);
      }
    });
  }
  var live = document.getElementById("eval-results");
  if (live && live.getAttribute("data-src")) {
    var every = (parseInt(live.getAttribute("data-poll"), 10) || 15) * 1000;
    var refresh = function () {
      var req = new XMLHttpRequest();
      req.open("GET", live.getAttribute("data-src"));
      req.onload = function () {
        if (req.status === 200) {
          live.innerHTML = req.responseText;
          live.setAttribute("data-refreshed", String(Date.now()));
        }
        window.setTimeout(refresh, every);
      };
      req.onerror = function () { window.setTimeout(refresh, every * 2); }; // offline: try again later
      req.send();
    };
    window.setTimeout(refresh, every);
  }
})();
