/* The redaction review page: outlines the redacted regions of the current render on a canvas over
 * the video, in step with video.currentTime (each frame's time comes from the render); lets the
 * reviewer seek to a track, draw a missed box on the paused frame (mouse or finger) and take the
 * frame range "from here for N seconds". Without this script the page's forms still work (typed). */
(function () {
  "use strict";
  var stage = document.getElementById("rv-stage");
  if (!stage) return;
  var video = document.getElementById("rv-video");
  var canvas = document.getElementById("rv-canvas");
  var ctx = canvas.getContext("2d");
  var frameOut = document.getElementById("rv-frame");
  var timeOut = document.getElementById("rv-time");
  var drawBtn = document.getElementById("rv-draw");
  var COLORS = { face: "#e4002b", text: "#0050b3", add: "#2e7d32", other: "#8a4b00" };
  var times = [], byFrame = {}, adds = [], plan = null, drawing = false, drag = null, drawn = null;

  function load() {
    fetch(stage.dataset.planUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (data) {
        if (!data || !data.plan) return;
        plan = data.plan;
        times = data.frame_times || [];
        (plan.tracks || []).forEach(function (t) {
          (t.boxes || []).forEach(function (b) {
            (byFrame[b[0]] = byFrame[b[0]] || []).push({ cat: t.category, id: t.id, box: b.slice(1, 5) });
          });
        });
        adds = (data.edits || []).filter(function (e) { return e.kind === "add" && !e.withdrawn_at; });
        stage.dataset.ready = "yes";
        redraw();
      });
  }

  // The index of the frame shown at time t: the last frame whose time is <= t (times are sorted).
  function frameAt(t) {
    var lo = 0, hi = times.length - 1, best = 0;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (times[mid] <= t + 0.0005) { best = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return best;
  }

  // Where the picture is inside the element (the player letterboxes it like object-fit: contain).
  function pictureRect() {
    var w = video.clientWidth, h = video.clientHeight;
    var vw = video.videoWidth || (plan && plan.width) || w, vh = video.videoHeight || (plan && plan.height) || h;
    var scale = Math.min(w / vw, h / vh);
    return { x: (w - vw * scale) / 2, y: (h - vh * scale) / 2, w: vw * scale, h: vh * scale };
  }

  function fit() {
    var ratio = window.devicePixelRatio || 1;
    canvas.style.width = video.clientWidth + "px";
    canvas.style.height = video.clientHeight + "px";
    canvas.width = Math.round(video.clientWidth * ratio);
    canvas.height = Math.round(video.clientHeight * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  function outline(r, box, color, dashed, label) {
    ctx.setLineDash(dashed ? [6, 4] : []);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    var x = r.x + box[0] * r.w, y = r.y + box[1] * r.h;
    ctx.strokeRect(x, y, (box[2] - box[0]) * r.w, (box[3] - box[1]) * r.h);
    if (label) {
      ctx.fillStyle = color;
      ctx.font = "12px sans-serif";
      ctx.fillText(label, x + 2, Math.max(12, y - 3));
    }
  }

  function redraw() {
    fit();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!plan) return;
    var r = pictureRect(), f = frameAt(video.currentTime);
    frameOut.textContent = String(f);
    timeOut.textContent = video.currentTime.toFixed(2);
    stage.dataset.frame = String(f);
    var shown = byFrame[f] || [];
    stage.dataset.outlines = String(shown.length);
    shown.forEach(function (o) {
      var b = o.box;
      outline(r, [b[0] / plan.width, b[1] / plan.height, b[2] / plan.width, b[3] / plan.height],
              COLORS[o.cat] || COLORS.other, false, o.cat + " " + o.id);
    });
    adds.forEach(function (e) {
      if (f >= e.frame_start && f <= e.frame_end) outline(r, e.box, COLORS.add, true, "added");
    });
    if (drawn) outline(r, drawn, COLORS.add, true, "new");
  }

  function loop() {
    redraw();
    if (!video.paused && !video.ended) {
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(loop);
      else window.requestAnimationFrame(loop);
    }
  }

  ["loadedmetadata", "seeked", "timeupdate", "pause"].forEach(function (ev) { video.addEventListener(ev, redraw); });
  video.addEventListener("play", loop);
  window.addEventListener("resize", redraw);

  // Clicking a track seeks to its first frame (a little past its time, so that frame is shown).
  document.querySelectorAll(".rv-seek").forEach(function (btn) {
    btn.addEventListener("click", function () {
      video.pause();
      video.currentTime = parseFloat(btn.dataset.time) + 0.001;
      video.focus();
    });
  });

  function set(id, value) {
    var el = document.getElementById(id);
    if (el) el.value = value;
  }

  // Drawing a box: the canvas takes the pointer only while "Draw a box" is on (else the player's
  // own controls under it work as usual).
  if (drawBtn) {
    drawBtn.addEventListener("click", function () {
      drawing = !drawing;
      video.pause();
      drawBtn.setAttribute("aria-pressed", drawing ? "true" : "false");
      drawBtn.textContent = drawing ? tr("Stop drawing") : tr("Draw a box");
      stage.classList.toggle("drawing", drawing);
      // The button sits below the video: bring the whole picture on screen to draw on it.
      if (drawing && stage.scrollIntoView) stage.scrollIntoView({ block: "nearest" });
    });
  }

  function fraction(ev) {
    var rect = canvas.getBoundingClientRect(), r = pictureRect();
    var fx = (ev.clientX - rect.left - r.x) / r.w, fy = (ev.clientY - rect.top - r.y) / r.h;
    return [Math.min(1, Math.max(0, fx)), Math.min(1, Math.max(0, fy))];
  }

  canvas.addEventListener("pointerdown", function (ev) {
    if (!drawing) return;
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    drag = fraction(ev);
  });
  canvas.addEventListener("pointermove", function (ev) {
    if (!drawing || !drag) return;
    var p = fraction(ev);
    drawn = [Math.min(drag[0], p[0]), Math.min(drag[1], p[1]), Math.max(drag[0], p[0]), Math.max(drag[1], p[1])];
    redraw();
  });
  canvas.addEventListener("pointerup", function (ev) {
    if (!drawing || !drag) return;
    var p = fraction(ev);
    drawn = [Math.min(drag[0], p[0]), Math.min(drag[1], p[1]), Math.max(drag[0], p[0]), Math.max(drag[1], p[1])];
    drag = null;
    ["x0", "y0", "x1", "y1"].forEach(function (k, i) { set("rv-" + k, drawn[i].toFixed(4)); });
    var start = document.getElementById("rv-start");
    if (start && start.value === "") fromHere();
    redraw();
  });

  // "From here for N seconds": the current frame to the last frame shown before now + N.
  function fromHere() {
    var secs = parseFloat((document.getElementById("rv-seconds") || {}).value || "2") || 2;
    set("rv-start", frameAt(video.currentTime));
    set("rv-end", frameAt(video.currentTime + secs));
  }
  var here = document.getElementById("rv-here");
  if (here) here.addEventListener("click", fromHere);

  // Typed corners are drawn too.
  ["x0", "y0", "x1", "y1"].forEach(function (k) {
    var el = document.getElementById("rv-" + k);
    if (!el) return;
    el.addEventListener("input", function () {
      var v = ["x0", "y0", "x1", "y1"].map(function (n) { return parseFloat(document.getElementById("rv-" + n).value); });
      drawn = v.every(function (x) { return !isNaN(x); }) ? v : null;
      redraw();
    });
  });

  load();
})();
