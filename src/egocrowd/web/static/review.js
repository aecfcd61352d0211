/* The review item page's keyboard shortcuts on desktop: A accepts, R goes to the reject reason,
 * J/K or the arrow keys seek 5 s back or forward, Space plays or pauses. None fires while typing
 * in a field, or with a modifier key held. Without this script the page's forms work the same. */
(function () {
  "use strict";
  var form = document.getElementById("ri-decide");
  var video = document.getElementById("ri-video");
  var hint = document.getElementById("ri-keys");
  if (!form && !video) return;
  // Only where there is a keyboard and a fine pointer: a phone gets no hint it cannot use.
  if (hint && window.matchMedia && window.matchMedia("(pointer: fine)").matches) hint.hidden = false;

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function seek(by) {
    if (!video) return;
    var end = isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.max(0, Math.min(end, video.currentTime + by));
  }

  function submitWith(id) {
    var btn = document.getElementById(id);
    if (!btn) return false;
    if (form.requestSubmit) form.requestSubmit(btn); else btn.click();
    return true;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var key = ev.key, done = true;
    if ((key === "a" || key === "A") && form) done = submitWith("ri-accept");
    else if ((key === "r" || key === "R") && form) {
      var reason = document.getElementById("ri-reason");
      if (reason) reason.focus(); else done = false;
    } else if (key === "j" || key === "J" || key === "ArrowLeft") seek(-5);
    else if (key === "k" || key === "K" || key === "ArrowRight") seek(5);
    else if (key === " " && video) {
      var t = ev.target && ev.target.tagName;
      if (t === "BUTTON" || t === "A" || t === "VIDEO") return; // their own Space
      if (video.paused) video.play(); else video.pause();
    } else done = false;
    if (done) ev.preventDefault();
  });
})();
