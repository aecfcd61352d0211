/* The annotation page (#10): a timeline under the video (spans as bars, the playhead; tap or drag
 * to seek, with a finger or a mouse), "mark start" / "mark end" at the playhead, a span added from
 * the marks and the chosen verb and noun, each span nudged by 0.1 s or typed, and removed; desktop
 * keys (listed on the page; never while typing in a field). The spans live in the page's form as
 * ordinary fields, so what is sent is what the form shows; without this script that form still
 * works with typed seconds. Its words come through tr() (static/locale.js); the timeline is
 * dir="ltr" in every language, so its left is time zero and pointer maths need no mirroring. */
(function () {
  "use strict";
  var stage = document.getElementById("an-stage");
  if (!stage) return;
  var video = document.getElementById("an-video");
  var tools = document.getElementById("an-tools");
  var timeline = document.getElementById("an-timeline");
  var mine = document.getElementById("an-lane-mine");
  var playhead = document.getElementById("an-playhead");
  var markBox = document.getElementById("an-mark");
  var nowOut = document.getElementById("an-now");
  var marked = document.getElementById("an-marked");
  var rowsList = document.getElementById("an-rows");
  var newVerb = document.getElementById("an-new-verb");
  var newNoun = document.getElementById("an-new-noun");
  var playBtn = document.getElementById("an-play");
  var durationMs = parseInt(stage.dataset.durationMs, 10) || 0;
  var STEP = 0.1;
  var markStart = null, markEnd = null, selected = null, seq = 1000;

  function duration() {
    if (durationMs > 0) return durationMs / 1000;
    return isFinite(video.duration) ? video.duration : 0;
  }
  function round2(x) { return Math.round(x * 100) / 100; }
  function clamp(t) { return Math.min(Math.max(t, 0), duration()); }
  function pct(t) { var d = duration(); return d > 0 ? (100 * t) / d : 0; }
  function seconds(t) { return tr("{seconds} s", { seconds: t.toFixed(2) }); }
  function num(input) { var v = parseFloat(String(input.value).replace(",", ".")); return isNaN(v) ? null : v; }

  // --- rows ---------------------------------------------------------------------------------------
  var template = rowsList.querySelector(".an-row").cloneNode(true);
  function rows() { return Array.prototype.slice.call(rowsList.querySelectorAll(".an-row")); }
  function isBlank(row) { return !row.querySelector(".an-start").value && !row.querySelector(".an-end").value; }

  function button(text, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary an-small";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  function nudge(input, by) {
    var v = num(input);
    if (v === null) v = video.currentTime;
    input.value = round2(clamp(v + by)).toFixed(2);
    redraw();
  }

  function decorate(row) {
    if (row.dataset.ready) return;
    row.dataset.ready = "yes";
    var start = row.querySelector(".an-start"), end = row.querySelector(".an-end");
    var bar = document.createElement("div");
    bar.className = "an-row-tools row";
    bar.appendChild(button(tr("Start −0.1 s"), function () { nudge(start, -STEP); }));
    bar.appendChild(button(tr("Start +0.1 s"), function () { nudge(start, STEP); }));
    bar.appendChild(button(tr("End −0.1 s"), function () { nudge(end, -STEP); }));
    bar.appendChild(button(tr("End +0.1 s"), function () { nudge(end, STEP); }));
    bar.appendChild(button(tr("Play span"), function () {
      var t = num(start); if (t !== null) { video.currentTime = t; video.play(); }
    }));
    var del = button(tr("Delete span"), function () { remove(row); });
    del.className = "danger an-small an-delete";
    bar.appendChild(del);
    row.querySelector("fieldset").appendChild(bar);
    row.addEventListener("focusin", function () { select(row); });
    row.addEventListener("input", redraw);
    row.addEventListener("change", redraw);
  }

  var rowsHelp = document.getElementById("an-rows-help");
  function renumber() {
    var all = rows();
    all.forEach(function (row, i) {
      var legend = row.querySelector("legend");
      if (legend) legend.textContent = tr("Span {n}", { n: i + 1 });
    });
    // the page's words are for the empty rows a page without script shows; here rows come from the marks
    if (rowsHelp) {
      rowsHelp.textContent = all.length
        ? tr("Times in seconds, like 1.5: type them or nudge them.")
        : tr("No spans yet: mark a start and an end on the video, then Add span.");
    }
  }

  function addRow(start, end, verb, noun) {
    var row = template.cloneNode(true);
    seq += 1;
    row.querySelectorAll("[id]").forEach(function (el) {
      var old = el.id, fresh = old.replace(/\d+$/, "") + seq;
      el.id = fresh;
      var label = row.querySelector('label[for="' + old + '"]');
      if (label) label.htmlFor = fresh;
    });
    row.querySelector(".an-start").value = start.toFixed(2);
    row.querySelector(".an-end").value = end.toFixed(2);
    row.querySelector(".an-verb").value = verb;
    row.querySelector(".an-noun").value = noun;
    delete row.dataset.ready;
    // keep the list in time order, so the form reads like the timeline
    var after = rows().filter(function (r) { var s = num(r.querySelector(".an-start")); return s !== null && s <= start; });
    var anchor = after.length ? after[after.length - 1].nextSibling : rowsList.firstChild;
    rowsList.insertBefore(row, anchor);
    decorate(row);
    renumber();
    select(row);
    var nothing = document.getElementById("an-nothing");
    if (nothing) nothing.checked = false;
    redraw();
    return row;
  }

  function remove(row) {
    if (!row) return;
    var next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    selected = null;
    renumber();
    if (next) select(next);
    redraw();
    playBtn.focus();
  }

  function select(row) {
    if (selected) selected.classList.remove("an-selected");
    selected = row;
    if (row) row.classList.add("an-selected");
    redraw();
  }

  // --- the timeline -------------------------------------------------------------------------------
  function drawBars(lane, spans, onPick) {
    lane.textContent = "";
    spans.forEach(function (s) {
      if (s.start === null || s.end === null || !(s.end > s.start)) return;
      var b = document.createElement("div");
      b.className = "an-bar" + (s.selected ? " an-bar-selected" : "");
      b.style.left = pct(clamp(s.start)) + "%";
      b.style.width = Math.max(pct(clamp(s.end)) - pct(clamp(s.start)), 0.5) + "%";
      b.title = tr("{label} {start}–{end} s", { label: s.label, start: s.start.toFixed(2), end: s.end.toFixed(2) });
      if (onPick) b.addEventListener("pointerdown", function (ev) { ev.stopPropagation(); onPick(s); });
      lane.appendChild(b);
    });
  }

  function redraw() {
    drawBars(
      mine,
      rows().filter(function (r) { return !isBlank(r); }).map(function (r) {
        return {
          row: r,
          start: num(r.querySelector(".an-start")),
          end: num(r.querySelector(".an-end")),
          label: r.querySelector(".an-verb").value + " " + r.querySelector(".an-noun").value,
          selected: r === selected,
        };
      }),
      function (s) { select(s.row); video.currentTime = s.start; }
    );
    var t = video.currentTime || 0;
    playhead.style.left = pct(t) + "%";
    nowOut.textContent = t.toFixed(1);
    timeline.setAttribute("aria-valuenow", t.toFixed(1));
    if (markStart !== null || markEnd !== null) {
      var a = markStart !== null ? markStart : t, b = markEnd !== null ? markEnd : t;
      markBox.hidden = false;
      markBox.style.left = pct(Math.min(a, b)) + "%";
      markBox.style.width = Math.max(Math.abs(pct(b) - pct(a)), 0.5) + "%";
    } else {
      markBox.hidden = true;
    }
    if (markStart === null && markEnd === null) {
      marked.textContent = tr("Marked: none");
    } else {
      // one sentence with named places, so a language may order it its own way (the times first:
      // the extractor does not see a tr() nested in another's arguments)
      var from = markStart !== null ? seconds(markStart) : "–";
      var to = markEnd !== null ? seconds(markEnd) : "–";
      marked.textContent = tr("Marked: {start} to {end}", { start: from, end: to });
    }
  }

  document.querySelectorAll(".an-lane.an-other").forEach(function (lane) {
    var spans = JSON.parse(lane.dataset.spans || "[]").map(function (s) {
      return { start: parseFloat(s.start), end: parseFloat(s.end), label: s.verb + " " + s.noun };
    });
    lane.dataset.parsed = JSON.stringify(spans);
  });
  function drawOthers() {
    document.querySelectorAll(".an-lane.an-other").forEach(function (lane) {
      drawBars(lane, JSON.parse(lane.dataset.parsed || "[]"), null);
    });
  }

  function seekTo(clientX) {
    var r = timeline.getBoundingClientRect();
    if (r.width <= 0) return;
    video.currentTime = clamp(((clientX - r.left) / r.width) * duration());
    redraw();
  }
  var dragging = false;
  timeline.addEventListener("pointerdown", function (ev) {
    dragging = true;
    timeline.setPointerCapture(ev.pointerId);
    seekTo(ev.clientX);
  });
  timeline.addEventListener("pointermove", function (ev) { if (dragging) seekTo(ev.clientX); });
  timeline.addEventListener("pointerup", function () { dragging = false; });
  timeline.addEventListener("pointercancel", function () { dragging = false; });

  // --- actions ------------------------------------------------------------------------------------
  function togglePlay() { if (video.paused) video.play(); else video.pause(); }
  function seekBy(s) { video.currentTime = clamp((video.currentTime || 0) + s); redraw(); }
  function mark(which) {
    var t = round2(video.currentTime || 0);
    if (which === "start") markStart = t; else markEnd = t;
    redraw();
  }
  function addFromMarks() {
    if (markStart === null || markEnd === null || markStart === markEnd) {
      marked.textContent = tr("Mark a start and an end first (they must differ).");
      return;
    }
    addRow(Math.min(markStart, markEnd), Math.max(markStart, markEnd), newVerb.value, newNoun.value);
    markStart = markEnd = null;
    redraw();
  }

  playBtn.addEventListener("click", togglePlay);
  document.getElementById("an-back").addEventListener("click", function () { seekBy(-1); });
  document.getElementById("an-fwd").addEventListener("click", function () { seekBy(1); });
  document.getElementById("an-start").addEventListener("click", function () { mark("start"); });
  document.getElementById("an-end").addEventListener("click", function () { mark("end"); });
  document.getElementById("an-add").addEventListener("click", addFromMarks);
  video.addEventListener("play", function () { playBtn.textContent = tr("Pause"); });
  video.addEventListener("pause", function () { playBtn.textContent = tr("Play"); });
  video.addEventListener("timeupdate", redraw);
  video.addEventListener("seeked", redraw);
  video.addEventListener("loadedmetadata", function () { redraw(); drawOthers(); });

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || el.isContentEditable;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var handled = true;
    switch (ev.key) {
      case " ": togglePlay(); break;
      case "[": mark("start"); break;
      case "]": mark("end"); break;
      case "ArrowLeft": seekBy(ev.shiftKey ? -STEP : -1); break;
      case "ArrowRight": seekBy(ev.shiftKey ? STEP : 1); break;
      case "Enter":
        // Enter on a button presses it, as usual; elsewhere it adds the marked span
        if (ev.target && ev.target.tagName === "BUTTON") { handled = false; break; }
        addFromMarks(); break;
      case "Delete": case "Backspace": remove(selected); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });

  // --- idle time (pay.rates): hidden tab, or no touch for two minutes while the video is paused ---
  var idleField = document.getElementById("an-idle");
  if (idleField && window.egocrowdIdle) {
    var idle = window.egocrowdIdle.track("annotation:" + idleField.dataset.task, {
      quiet: 120,
      busy: function () { return !video.paused; },
    });
    document.getElementById("an-form").addEventListener("submit", function () {
      idleField.value = String(idle.seconds());
      idle.forget();  // a refused answer starts again from zero: less idle, never more
    });
  }

  // --- start: rows with script are added from the marks, so empty rows go ------------------------
  rows().forEach(function (row) { if (isBlank(row)) row.remove(); else decorate(row); });
  renumber();
  tools.hidden = false;
  stage.dataset.ready = "yes";
  redraw();
  drawOthers();
})();
