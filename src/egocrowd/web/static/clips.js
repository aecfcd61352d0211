/* Clips pages keep themselves current: while a clip is being checked, fetch this same page again
 * and swap in each .clip[data-id] whose status changed. Gentle: every 3 s, backing off to 30 s
 * while nothing changes; paused while the tab is hidden; stops once nothing is being checked. */
(function () {
  "use strict";
  var FIRST = 3000, MOST = 30000, delay = FIRST, timer = null, busy = false;

  function processing() {
    return document.querySelectorAll('.clip[data-status="processing"]');
  }

  function schedule() {
    clearTimeout(timer);
    if (document.hidden || !processing().length) return;
    timer = setTimeout(poll, delay);
  }

  async function poll() {
    if (busy) return;
    busy = true;
    var changed = false;
    try {
      var res = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store",
                                                     headers: { Accept: "text/html" } });
      if (res.ok && !res.redirected) {
        var doc = new DOMParser().parseFromString(await res.text(), "text/html");
        processing().forEach(function (el) {
          var fresh = doc.querySelector('.clip[data-id="' + el.dataset.id + '"]');
          if (fresh && fresh.dataset.status !== el.dataset.status) {
            el.replaceWith(document.importNode(fresh, true));
            changed = true;
          }
        });
      }
    } catch (e) {
      /* offline or the server restarting: try again later */
    } finally {
      busy = false;
    }
    delay = changed ? FIRST : Math.min(MOST, Math.round(delay * 1.5));
    schedule();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !processing().length) { clearTimeout(timer); return; }
    delay = FIRST;
    poll();
  });
  schedule();
})();
