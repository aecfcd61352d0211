/* egocrowd long sessions (#19): log on the phone what happens while a robot works with the people at
 * home, straight into the egocrowd.bench log schema, and upload each finished session with tus when
 * the network allows.
 *
 * Nothing tapped is lost: every tap is written to localStorage at once (a reload, a crash or a dead
 * battery keeps it), finished sessions wait in a queue there until their upload is accepted, and the
 * page's service worker keeps the page itself for a reload without network.
 *
 * Times: ``t`` (seconds since the session started) runs on the monotonic clock (performance.now),
 * so changing the phone's clock mid-session cannot reorder events; across a reload the wall clock
 * bridges the gap, never going back before the last event. Each event also carries ``wall``, the
 * phone's clock (ISO 8601), which the bench readers keep as an extra field.
 * Old phone browsers too: no modules, no arrow functions.
 */
(function () {
  "use strict";
  var root = document.getElementById("field-session");
  if (!root) return;
  var tr = window.tr || function (m) { return m; };
  var cfg = {
    campaign: root.dataset.campaign,
    endpoint: root.dataset.endpoint,
    csrf: root.dataset.csrf,
  };
  var KEY = "egocrowd.field-session.v1." + cfg.campaign;
  var PERMANENT = [400, 401, 403, 404, 409, 410, 413, 422];  // the server said no: retrying cannot help
  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------------------------------ stored state
  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(KEY) || "null");
      if (s && typeof s === "object") return s;
    } catch (e) { /* unreadable: start clean, the queue below is kept separately */ }
    return { current: null, queue: [] };
  }
  var state = load();
  state.queue = state.queue || [];
  function save() { localStorage.setItem(KEY, JSON.stringify(state)); }

  // ------------------------------------------------------------------------------ the clock
  var perfAtLoad = performance.now();
  var tAtLoad = 0;
  function resumeClock() {
    var cur = state.current;
    if (!cur) return;
    var last = cur.events.length ? cur.events[cur.events.length - 1].t : 0;
    var byWall = (Date.now() - cur.wallStart) / 1000;
    tAtLoad = Math.max(last, isFinite(byWall) ? byWall : 0, cur.tSeen || 0);
    perfAtLoad = performance.now();
  }
  function now() {
    var t = tAtLoad + (performance.now() - perfAtLoad) / 1000;
    return Math.round(t * 1000) / 1000;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "s-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  // ------------------------------------------------------------------------------ logging
  function add(ev) {
    var cur = state.current;
    ev.t = Math.max(now(), cur.tSeen || 0);
    ev.wall = new Date().toISOString();
    cur.tSeen = ev.t;
    cur.events.push(ev);
    save();
    return ev;
  }

  function start(robot, environment, people) {
    state.current = {
      header: {
        type: "session",
        session_id: uuid(),
        policy: robot,
        robot: robot,
        environment: environment,
        source: "real",
        people: people.map(function (p) { return { id: p }; }),
        started_at: new Date().toISOString(),
        protocol: "egocrowd.field",
        protocol_version: "1",
        meta: { campaign: Number(cfg.campaign), logged_by: "field_session.js" },
      },
      wallStart: Date.now(),
      events: [],
      n: { instruction: 0, misinterpretation: 0, chain: 0 },
      speaker: people[0] || null,
      chain: null, index: 0, subtask: null, open: [], intervention: null, tSeen: 0,
    };
    tAtLoad = 0;
    perfAtLoad = performance.now();
    save();
  }

  function act(kind) {
    var cur = state.current;
    if (!cur) return;
    var who = cur.speaker || undefined;
    if (kind === "instruction") {
      var task = $("fs-task").value, text = $("fs-text").value.trim();
      if (!task && !text) { say(tr("Choose a task or write what was said."), true); return; }
      var id = "i" + (++cur.n.instruction);
      if (!cur.chain) { cur.chain = "c" + (++cur.n.chain); cur.index = 0; }
      cur.index += 1;
      add({ type: "instruction", id: id, person: who, text: text || task });
      cur.subtask = { subtask: (task || text).slice(0, 200), chain: cur.chain, index: cur.index, instruction: id, person: who };
      add(Object.assign({ type: "subtask_start" }, cur.subtask));
      $("fs-text").value = "";
      say(tr("Instruction logged."));
    } else if (kind === "success" || kind === "failure") {
      if (!cur.subtask) { say(tr("Log the instruction first."), true); return; }
      add(Object.assign({ type: "subtask_end", outcome: kind }, cur.subtask));
      cur.subtask = null;
      if (kind === "failure") cur.chain = null;  // a chain ends at its first failure (CALVIN)
      say(kind === "success" ? tr("Subtask done.") : tr("Subtask failed; the next instruction starts a new chain."));
    } else if (kind === "misinterpretation") {
      var mid = "m" + (++cur.n.misinterpretation);
      add({ type: "misinterpretation", id: mid, source: "observed",
            instruction: cur.subtask ? cur.subtask.instruction : undefined, person: who });
      cur.open.push(mid);
      say(tr("Misunderstanding logged."));
    } else if (kind === "recovery") {
      if (!cur.open.length) { say(tr("Nothing to recover from."), true); return; }
      add({ type: "recovery", misinterpretation: cur.open.shift() });
      say(tr("Recovery logged."));
    } else if (kind === "intervention") {
      if (cur.intervention === null) {
        add({ type: "intervention", reason: "worker_took_over", person: who, duration: 0 });
        cur.intervention = cur.events.length - 1;
        say(tr("Intervention: tap again when the robot is back in control."));
      } else {
        endIntervention();
        say(tr("The robot is back in control."));
      }
    } else if (kind === "end" || kind === "abort") {
      if (kind === "abort" && !window.confirm(tr("Abort this session? It is still uploaded, marked aborted."))) return;
      finish(kind === "end" ? "completed" : "aborted");
      return;
    }
    save();
    draw();
  }

  function endIntervention() {
    var cur = state.current;
    if (cur.intervention === null) return;
    var ev = cur.events[cur.intervention];
    ev.duration = Math.max(0, Math.round((now() - ev.t) * 1000) / 1000);
    cur.intervention = null;
  }

  function finish(reason) {
    var cur = state.current;
    endIntervention();
    add({ type: "session_end", reason: reason });
    cur.header.ended_at = new Date().toISOString();
    var lines = [JSON.stringify(cur.header)].concat(cur.events.map(function (e) { return JSON.stringify(e); }));
    state.queue.push({ id: cur.header.session_id, log: lines.join("\n") + "\n", tries: 0, refused: null });
    state.current = null;
    save();
    draw();
    say(tr("Session saved on this phone."));
    pump();
  }

  // ------------------------------------------------------------------------------ uploads
  var uploading = null, retryTimer = null, backoff = 2000;

  function pump() {
    if (uploading || !window.tus) return;
    var item = null;
    for (var i = 0; i < state.queue.length; i++) if (!state.queue[i].refused) { item = state.queue[i]; break; }
    if (!item) return;
    if (navigator.onLine === false) { drawQueue(); return; }  // the "online" event calls us back
    var blob = new Blob([item.log], { type: "application/x-ndjson" });
    var upload = new tus.Upload(blob, {
      endpoint: cfg.endpoint,
      chunkSize: 256 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      fingerprint: function () { return Promise.resolve("egocrowd-field-session:" + item.id); },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      headers: cfg.csrf ? { "X-CSRF-Token": cfg.csrf } : {},
      metadata: { kind: "field_session", campaign: cfg.campaign, filename: item.id + ".jsonl",
                  filetype: "application/x-ndjson" },
      onShouldRetry: function (err) {
        var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        return PERMANENT.indexOf(status) < 0;
      },
      onError: function (err) {
        uploading = null;
        var res = err.originalResponse, status = res ? res.getStatus() : 0;
        if (PERMANENT.indexOf(status) >= 0) {
          var detail = "";
          try { detail = JSON.parse(res.getBody()).detail || ""; } catch (e) { /* not JSON */ }
          item.refused = detail || tr("The server refused this log.");
          save();
          drawQueue();
          pump();
          return;
        }
        item.tries += 1;
        save();
        drawQueue();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(pump, backoff);  // the network is away: try again later, less often
        backoff = Math.min(backoff * 2, 5 * 60 * 1000);
      },
      onSuccess: function () {
        uploading = null;
        backoff = 2000;
        state.queue = state.queue.filter(function (q) { return q !== item; });
        save();
        drawQueue(true);
        pump();
      },
    });
    uploading = upload;
    drawQueue();
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    });
  }

  // ------------------------------------------------------------------------------ drawing
  function say(text, bad) {
    var el = $("fs-now");
    el.textContent = text;
    el.dataset.kind = bad ? "error" : "info";
  }

  function drawQueue(justSent) {
    var waiting = state.queue.filter(function (q) { return !q.refused; }).length;
    var el = $("fs-queue");
    if (waiting) {
      var text = waiting === 1 ? tr("1 session waiting to upload") : tr("{count} sessions waiting to upload", { count: waiting });
      if (uploading) text += " · " + tr("uploading…");
      else if (navigator.onLine === false) text += " · " + tr("no network: it uploads by itself when there is one");
      el.textContent = text;
      el.dataset.state = "waiting";
    } else if (justSent) {
      el.textContent = tr("Every session is uploaded.");
      el.dataset.state = "done";
    } else {
      el.textContent = "";
    }
    root.dataset.waiting = String(waiting);
    var list = $("fs-refused");
    list.textContent = "";
    state.queue.forEach(function (q) {
      if (!q.refused) return;
      var li = document.createElement("li");
      li.textContent = tr("Session {id} was refused: {reason}", { id: q.id.slice(0, 8), reason: q.refused });
      var again = document.createElement("button");
      again.type = "button";
      again.className = "secondary";
      again.textContent = tr("Try again");
      again.addEventListener("click", function () { q.refused = null; save(); drawQueue(); pump(); });
      var get = document.createElement("a");
      get.className = "button secondary";
      get.textContent = tr("Save the log");
      get.download = q.id + ".jsonl";
      get.href = URL.createObjectURL(new Blob([q.log], { type: "application/x-ndjson" }));
      li.appendChild(document.createElement("br"));
      li.appendChild(again);
      li.appendChild(get);
      list.appendChild(li);
    });
  }

  var EVENT_WORDS = {
    instruction: "Instruction", subtask_start: "Subtask started", subtask_end: "Subtask ended",
    misinterpretation: "Misunderstood", recovery: "Recovered", intervention: "Intervention",
  };

  function draw() {
    var cur = state.current;
    $("fs-setup").hidden = !!cur;
    $("fs-live").hidden = !cur;
    drawQueue();
    if (!cur) return;
    var box = $("fs-speakers");
    box.textContent = "";
    cur.header.people.forEach(function (p) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "fs-speaker";
      b.textContent = p.id;
      b.setAttribute("translate", "no");
      b.setAttribute("aria-pressed", String(cur.speaker === p.id));
      b.addEventListener("click", function () { cur.speaker = p.id; save(); draw(); });
      box.appendChild(b);
    });
    $("fs-intervene").setAttribute("aria-pressed", String(cur.intervention !== null));
    $("fs-intervene").textContent = cur.intervention !== null ? tr("Robot back in control") : tr("Intervention");
    var log = $("fs-log");
    log.textContent = "";
    cur.events.slice(-6).reverse().forEach(function (e) {
      if (e.type === "subtask_start") return;
      var li = document.createElement("li");
      var what = e.type === "subtask_end" ? (e.outcome === "success" ? tr("Subtask done") : tr("Subtask failed")) : tr(EVENT_WORDS[e.type] || e.type);
      li.textContent = clock(e.t) + " · " + what + (e.person ? " · " + e.person : "") + (e.text ? " · " + e.text : "");
      log.appendChild(li);
    });
    root.dataset.events = String(cur.events.length);
  }

  function clock(t) {
    var s = Math.floor(t), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" : "") + (m < 10 && h ? "0" : "") + m + ":" + (sec < 10 ? "0" : "") + sec;
  }

  // ------------------------------------------------------------------------------ wiring
  $("fs-setup").addEventListener("submit", function (e) {
    e.preventDefault();
    var people = Array.prototype.map.call(document.querySelectorAll("#fs-setup input[name=person]:checked"),
                                          function (i) { return i.value; });
    start($("fs-robot").value, $("fs-environment").value.trim(), people);
    draw();
    say(tr("Session started."));
  });
  Array.prototype.forEach.call(root.querySelectorAll("[data-act]"), function (b) {
    b.addEventListener("click", function () { act(b.dataset.act); });
  });
  window.addEventListener("online", function () { backoff = 2000; drawQueue(); pump(); });
  window.addEventListener("offline", function () { drawQueue(); });
  setInterval(function () { if (state.current) $("fs-clock").textContent = clock(now()); }, 1000);

  // The page itself for a reload without network: the service worker keeps it and its files.
  if ("serviceWorker" in navigator && root.dataset.worker) {
    navigator.serviceWorker.register(root.dataset.worker).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function (reg) {
      var urls = [location.pathname].concat((root.dataset.assets || "").split(" ").filter(Boolean));
      if (reg.active) reg.active.postMessage({ keep: urls });
    }).catch(function () { /* no service worker (private mode): the page still logs and uploads */ });
  }

  resumeClock();
  draw();
  if (state.current) say(tr("Session resumed: nothing tapped was lost."));
  pump();
})();
