/* Idle time a task page can see (#11, docs/pay.md "Working time"): the seconds between claiming a
 * task and sending it during which the tab was hidden, or nobody touched the page for longer than
 * `quiet` seconds while nothing was going on (`busy()`: recording, uploading, a video playing).
 * The server subtracts it from claim → submit to measure working time, and keeps it within that
 * span, so a wrong figure can only make the measured time shorter than the slot, never longer.
 *
 *   var idle = egocrowdIdle.track("assignment:12", { quiet: 120, busy: function () { ... } });
 *   idle.seconds()   // whole seconds so far (kept across reloads in localStorage)
 *   idle.forget()    // after the task was sent
 */
(function () {
  "use strict";

  function track(key, opts) {
    opts = opts || {};
    var quiet = opts.quiet || 120;
    var busy = opts.busy || function () { return false; };
    var storeKey = "egocrowd-idle:" + key;
    var idle = 0;
    try { idle = parseFloat(window.localStorage.getItem(storeKey)) || 0; } catch (e) { /* private mode */ }
    var now = Date.now();
    var lastInput = now, lastTick = now;

    function save() {
      try { window.localStorage.setItem(storeKey, String(idle)); } catch (e) { /* private mode */ }
    }
    // Timers in a hidden tab fire rarely: each tick adds the real time since the last one.
    function tick() {
      var t = Date.now();
      var dt = Math.max(0, (t - lastTick) / 1000);
      lastTick = t;
      if (document.hidden) {
        idle += dt;
      } else if (busy()) {
        lastInput = t;
      } else {
        var quietFor = (t - lastInput) / 1000;
        if (quietFor > quiet) idle += Math.min(dt, quietFor - quiet);
      }
      save();
    }
    function touched() { tick(); lastInput = Date.now(); }

    ["pointerdown", "keydown", "touchstart", "wheel", "input"].forEach(function (name) {
      document.addEventListener(name, touched, { passive: true, capture: true });
    });
    document.addEventListener("visibilitychange", function () {
      tick();
      if (!document.hidden) lastInput = Date.now();  // coming back is activity; the hidden time counted
    });
    window.setInterval(tick, 5000);

    return {
      seconds: function () { tick(); return Math.round(idle); },
      forget: function () { try { window.localStorage.removeItem(storeKey); } catch (e) { /* private mode */ } },
    };
  }

  window.egocrowdIdle = { track: track };
})();
