/* egocrowd phone capture: record (or pick) a clip, check it in the browser, upload it with tus.
 *
 * Configuration comes from data-* attributes on #capture (see _capture_widget.html):
 *   data-endpoint        tus endpoint, e.g. /api/v1/uploads
 *   data-assignment      assignment id, sent as Upload-Metadata "assignment"
 *   data-min-duration    seconds (default 0)        data-max-duration   seconds (default 600)
 *   data-min-width       pixels, long side is compared with the larger of width/height
 *   data-min-height      pixels, short side is compared with the smaller
 *   data-min-fps         frames per second; checked on a recording made here (the camera reports
 *                        its rate), a picked file's rate is left to the server
 *   data-orientation     "landscape" | "portrait" | "any": checked on the file's displayed size, and
 *                        the live preview says "turn your phone" while recording the wrong way
 * An optional checkbox [data-role=mount] (the campaign's mount) must be ticked before uploading; its
 * value travels as Upload-Metadata "mount" and QC checks it against the campaign.
 *   data-min-brightness  mean luma 0-255 below which a clip is "too dark" (default 40)
 *   data-max-bytes       refuse locally above this size (optional)
 *   data-chunk-size      bytes per PATCH (default 8 MiB; a drop costs at most one chunk's retry)
 *   data-csrf            CSRF token, sent as header X-CSRF-Token
 *   data-redirect        where to go after success; "{upload}" is replaced by the upload id and
 *                        "{clip}" by the server's Egocrowd-Clip-Id response header
 *   data-audio           "true" to record sound (default off: bystanders' voices are personal data)
 * With /static/idle.js loaded, the idle time this page saw since it opened the slot (tab hidden, no
 * touch for two minutes while not recording or uploading) travels as Upload-Metadata "idle_seconds".
 *
 * Old phones: the script keeps to what a Chrome 70-era Android WebView runs (ES2017, no optional
 * chaining, no ??; tests/uploads/test_capture_es2017.py parses it so). Where MediaRecorder or the
 * camera API is missing, Record gives way to the phone's camera app ([data-role=camera], an
 * <input type=file capture=environment>), whose file is checked and uploaded like a recording.
 *
 * Upload only on Wi-Fi ([data-role=wifi-only], remembered in localStorage): while the Network
 * Information API says the phone is on mobile data, the upload waits (or pauses) and starts again by
 * itself when the connection changes. Browsers without that API (or without its `type`) cannot tell
 * Wi-Fi from mobile data: the box says so and uploads go ahead.
 *
 * Words go through tr() (static/locale.js) and numbers through Intl in the page's language.
 *
 * Checks run before any byte is sent so a worker on metered data does not pay for a clip the
 * server would reject. Uploads resume after a network drop (tus retries with backoff) and after a
 * page reload: the recording is kept in IndexedDB until the upload finishes, and tus-js-client's
 * fingerprint storage finds the unfinished upload again.
 */
(function () {
  "use strict";

  var root = document.getElementById("capture");
  if (!root) return;
  // base.html loads locale.js first; a page without it (the widget served alone) shows English.
  var tr = window.tr || function (message, values) {
    return message.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  };
  var cfg = readConfig(root.dataset);
  var $ = function (role) { return root.querySelector('[data-role="' + role + '"]'); };
  var ui = {
    preview: $("preview"), record: $("record"), file: $("file"), upload: $("upload"),
    pause: $("pause"), retake: $("retake"), checks: $("checks"), progress: $("progress"),
    percent: $("percent"), status: $("status"), elapsed: $("elapsed"), turn: $("turn"), mount: $("mount"),
    camera: $("camera"), cameraLabel: $("camera-label"), fallbackNote: $("fallback-note"),
    wifiOnly: $("wifi-only"), wifiNote: $("wifi-note"),
  };

  var idle = window.egocrowdIdle && cfg.assignment
    ? window.egocrowdIdle.track("assignment:" + cfg.assignment, {
        quiet: 120,
        busy: function () {
          return (state.recorder && state.recorder.state === "recording") || root.dataset.state === "uploading" ||
            root.dataset.state === "waiting-wifi";
        },
      })
    : null;

  var state = { stream: null, recorder: null, chunks: [], file: null, startedAt: 0, timer: null,
                lumaSamples: [], sampleTimer: null, upload: null, checksOk: false, recordedSeconds: null,
                cameraFps: null };

  function readConfig(d) {
    var num = function (v, dflt) { var n = parseFloat(v); return isFinite(n) ? n : dflt; };
    return {
      endpoint: d.endpoint || "/api/v1/uploads",
      assignment: d.assignment || "",
      minDuration: num(d.minDuration, 0),
      maxDuration: num(d.maxDuration, 600),
      minWidth: num(d.minWidth, 0),
      minHeight: num(d.minHeight, 0),
      minFps: num(d.minFps, 0),
      orientation: d.orientation || "any",
      minBrightness: num(d.minBrightness, 40),
      maxBytes: num(d.maxBytes, Infinity),
      chunkSize: num(d.chunkSize, 8 * 1024 * 1024),
      csrf: d.csrf || "",
      redirect: d.redirect || "",
      audio: d.audio === "true",
    };
  }

  function setStatus(text, kind) {
    ui.status.textContent = text;
    ui.status.dataset.kind = kind || "info";
  }

  // Numbers in the page's language with Latin digits, as the server's Babel formats them.
  var lang = document.documentElement.lang || "en";
  var formats = {};
  function fmtNumber(n, digits) {
    digits = digits || 0;
    try {
      if (!formats[digits]) {
        formats[digits] = new Intl.NumberFormat(lang + "-u-nu-latn",
          { minimumFractionDigits: digits, maximumFractionDigits: digits });
      }
      return formats[digits].format(n);
    } catch (e) {
      return n.toFixed(digits);  // no Intl, or a language it does not know
    }
  }

  function fmtTime(s) {
    s = Math.max(0, Math.floor(s));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function fmtBytes(n) {
    if (n >= 1e9) return tr("{size} GB", { size: fmtNumber(n / 1e9, 2) });
    if (n >= 1e6) return tr("{size} MB", { size: fmtNumber(n / 1e6, 1) });
    return tr("{size} kB", { size: fmtNumber(Math.max(1, Math.round(n / 1e3))) });
  }

  // ---- recording ---------------------------------------------------------------------------

  function pickMimeType() {
    var candidates = ["video/mp4;codecs=avc1", "video/mp4", "video/webm;codecs=vp9",
                      "video/webm;codecs=vp8", "video/webm"];
    if (!window.MediaRecorder) return null;
    for (var i = 0; i < candidates.length; i++) {
      if (MediaRecorder.isTypeSupported(candidates[i])) return candidates[i];
    }
    return "";
  }

  function canRecordHere() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  }

  async function startRecording() {
    if (!canRecordHere()) {
      useCameraApp();
      setStatus(tr("This browser cannot record in the page. Use the camera app or pick a video."), "error");
      return;
    }
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 }, height: { ideal: 1080 },
                 frameRate: { ideal: 30 } },
        audio: cfg.audio,
      });
    } catch (err) {
      setStatus(tr("Camera not available ({reason}). Allow camera access or pick a file.", { reason: err.name }), "error");
      return;
    }
    resetResult();
    var track = state.stream.getVideoTracks()[0];
    state.cameraFps = track && track.getSettings ? (track.getSettings().frameRate || null) : null;
    ui.preview.srcObject = state.stream;
    ui.preview.muted = true;
    ui.preview.controls = false;
    try { await ui.preview.play(); } catch (e) { /* autoplay may need a gesture; the record tap is one */ }
    var mime = pickMimeType();
    state.recorder = new MediaRecorder(state.stream, mime ? { mimeType: mime } : undefined);
    state.chunks = [];
    state.lumaSamples = [];
    state.recorder.ondataavailable = function (e) { if (e.data && e.data.size) state.chunks.push(e.data); };
    state.recorder.onstop = finishRecording;
    state.recorder.start(1000);
    state.startedAt = performance.now();
    state.startedIso = new Date().toISOString();
    root.dataset.state = "recording";
    ui.record.textContent = tr("Stop");
    ui.record.setAttribute("aria-pressed", "true");
    setStatus(tr("Recording…"));
    state.timer = setInterval(tick, 250);
    // Brightness is sampled from the live picture: cheap, and works for formats we cannot seek.
    state.sampleTimer = setInterval(function () {
      var l = measureLuma(ui.preview);
      if (l !== null) state.lumaSamples.push(l);
    }, 1000);
  }

  function tick() {
    var s = (performance.now() - state.startedAt) / 1000;
    ui.elapsed.textContent = fmtTime(s) + " / " + fmtTime(cfg.maxDuration);
    ui.elapsed.dataset.seconds = s.toFixed(1);
    if (s >= cfg.maxDuration) stopRecording();
    liveOrientation();
  }

  // ---- orientation -------------------------------------------------------------------------

  function shapeOf(w, h) { return w > h ? "landscape" : h > w ? "portrait" : "square"; }

  function turnAdvice() {
    return cfg.orientation === "landscape"
      ? tr("This campaign needs landscape: turn your phone sideways.")
      : tr("This campaign needs portrait: hold your phone upright.");
  }

  function turnAgain() {
    return cfg.orientation === "landscape"
      ? tr("This campaign needs landscape: turn your phone sideways and record again.")
      : tr("This campaign needs portrait: hold your phone upright and record again.");
  }

  // While the camera runs: the preview's size follows the phone's rotation.
  function liveOrientation() {
    var v = ui.preview, wrong = false;
    if (state.stream && cfg.orientation !== "any" && v.videoWidth) {
      wrong = shapeOf(v.videoWidth, v.videoHeight) !== cfg.orientation;
    }
    if (wrong && ui.turn.hidden) ui.turn.textContent = turnAdvice();
    ui.turn.hidden = !wrong;
  }

  function stopRecording() {
    if (state.recorder && state.recorder.state !== "inactive") {
      state.recordedSeconds = (performance.now() - state.startedAt) / 1000;
      state.recorder.stop();
    }
  }

  function stopCamera() {
    clearInterval(state.timer);
    clearInterval(state.sampleTimer);
    if (state.stream) state.stream.getTracks().forEach(function (t) { t.stop(); });
    state.stream = null;
  }

  async function finishRecording() {
    var type = (state.recorder.mimeType || "video/webm").split(";")[0];
    var ext = type.indexOf("mp4") >= 0 ? "mp4" : "webm";
    var now = new Date();
    var file = new File(state.chunks, "capture-" + now.toISOString().replace(/[:.]/g, "-") + "." + ext,
                        { type: type, lastModified: now.getTime() });
    file.recordedAt = state.startedIso || now.toISOString();  // when the recording began
    stopCamera();
    liveOrientation();
    ui.record.textContent = tr("Record again");
    ui.record.setAttribute("aria-pressed", "false");
    await useFile(file, { recorded: true });
    saveRecording(file);  // so a reload mid-upload can resume instead of re-recording
  }

  // ---- checks ------------------------------------------------------------------------------

  var canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  var ctx = canvas.getContext("2d", { willReadFrequently: true });

  function measureLuma(video) {
    if (!video.videoWidth || video.readyState < 2) return null;
    try {
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      var px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      var sum = 0;
      for (var i = 0; i < px.length; i += 4) sum += 0.2126 * px[i] + 0.7152 * px[i + 1] + 0.0722 * px[i + 2];
      return sum / (px.length / 4);
    } catch (e) {
      return null;  // tainted canvas or decoder hiccup: no sample
    }
  }

  function once(el, event, timeoutMs) {
    return new Promise(function (resolve, reject) {
      var t = setTimeout(function () { el.removeEventListener(event, on); reject(new Error("timeout")); }, timeoutMs);
      function on() { clearTimeout(t); el.removeEventListener(event, on); resolve(); }
      el.addEventListener(event, on);
    });
  }

  // Probe a file with an off-screen <video>: duration, size, and a few frames' brightness.
  async function probe(file) {
    var v = document.createElement("video");
    v.muted = true;
    v.playsInline = true;
    v.preload = "auto";
    var url = URL.createObjectURL(file);
    v.src = url;
    var info = { duration: null, width: 0, height: 0, luma: [] };
    try {
      await once(v, "loadedmetadata", 10000);
      info.width = v.videoWidth;
      info.height = v.videoHeight;
      var d = v.duration;
      if (!isFinite(d)) {
        // MediaRecorder WebM has no duration in its header; seeking far forces the browser to find it.
        v.currentTime = 1e7;
        try { await once(v, "durationchange", 5000); } catch (e) { /* keep unknown */ }
        d = v.duration;
      }
      info.duration = isFinite(d) ? d : null;
      if (info.duration) {
        for (var k = 1; k <= 5; k++) {
          v.currentTime = info.duration * k / 6;
          try { await once(v, "seeked", 3000); } catch (e) { break; }
          var l = measureLuma(v);
          if (l !== null) info.luma.push(l);
        }
      }
    } catch (e) {
      info.error = tr("This file could not be read as a video.");
    } finally {
      URL.revokeObjectURL(url);
      v.removeAttribute("src");
      v.load();
    }
    return info;
  }

  function runChecks(file, info, opts) {
    var results = [];
    var add = function (ok, text, level) { results.push({ ok: ok, text: text, level: level || (ok ? "pass" : "fail") }); };
    if (info.error) {
      add(false, info.error);
      return results;
    }
    var duration = info.duration !== null ? info.duration : (opts.recorded ? state.recordedSeconds : null);
    if (duration === null) {
      add(true, tr("Length could not be measured; the server will check it."), "warn");
    } else {
      add(duration >= cfg.minDuration && duration <= cfg.maxDuration,
          tr("Length {length} s (needs {min}–{max} s)",
             { length: fmtNumber(duration, 1), min: fmtNumber(cfg.minDuration), max: fmtNumber(cfg.maxDuration) }));
    }
    var longSide = Math.max(info.width, info.height), shortSide = Math.min(info.width, info.height);
    var needLong = Math.max(cfg.minWidth, cfg.minHeight), needShort = Math.min(cfg.minWidth, cfg.minHeight);
    var size = { width: info.width, height: info.height, minWidth: needLong, minHeight: needShort };
    add(longSide >= needLong && shortSide >= needShort, needLong
      ? tr("Resolution {width}×{height} (needs at least {minWidth}×{minHeight})", size)
      : tr("Resolution {width}×{height}", size));
    if (cfg.orientation !== "any" && info.width) {
      var shape = shapeOf(info.width, info.height);
      add(shape === cfg.orientation, shape !== cfg.orientation ? turnAgain()
        : shape === "landscape" ? tr("Orientation: landscape") : tr("Orientation: portrait"));
    }
    if (cfg.minFps && opts.recorded && state.cameraFps) {
      add(state.cameraFps >= cfg.minFps,
          tr("Frame rate {fps} fps (needs at least {min})", { fps: fmtNumber(Math.round(state.cameraFps)), min: fmtNumber(cfg.minFps) }));
    }
    var samples = opts.recorded && state.lumaSamples.length ? state.lumaSamples : info.luma;
    if (!samples.length) {
      add(true, tr("Brightness could not be measured; the server will check it."), "warn");
    } else {
      var mean = samples.reduce(function (a, b) { return a + b; }, 0) / samples.length;
      add(mean >= cfg.minBrightness, mean >= cfg.minBrightness ? tr("Light is good") : tr("Too dark: turn on a light and record again"));
    }
    add(file.size <= cfg.maxBytes, isFinite(cfg.maxBytes)
      ? tr("Size {size} (limit {limit})", { size: fmtBytes(file.size), limit: fmtBytes(cfg.maxBytes) })
      : tr("Size {size}", { size: fmtBytes(file.size) }));
    return results;
  }

  function renderChecks(results) {
    ui.checks.innerHTML = "";
    results.forEach(function (r) {
      var li = document.createElement("li");
      li.dataset.level = r.level;
      var mark = document.createElement("span");
      mark.className = "capture-mark";
      mark.setAttribute("aria-hidden", "true");
      mark.textContent = r.level === "pass" ? "✓" : r.level === "warn" ? "!" : "✗";
      var label = document.createElement("span");
      label.textContent = r.text;
      var sr = document.createElement("span");
      sr.className = "capture-sr";
      sr.textContent = r.level === "pass" ? tr("Passed:") : r.level === "warn" ? tr("Warning:") : tr("Failed:");
      li.append(mark, sr, " ", label);
      ui.checks.appendChild(li);
    });
  }

  async function useFile(file, opts) {
    state.file = file;
    state.checksOk = false;
    ui.upload.disabled = true;
    root.dataset.state = "checking";
    setStatus(tr("Checking the clip…"));
    ui.preview.srcObject = null;
    ui.preview.src = URL.createObjectURL(file);
    ui.preview.controls = true;
    ui.preview.muted = false;
    var info = await probe(file);
    var results = runChecks(file, info, opts || {});
    renderChecks(results);
    state.checksOk = results.every(function (r) { return r.level !== "fail"; });
    ui.retake.hidden = false;
    readiness();
  }

  function mountOk() { return !ui.mount || ui.mount.checked; }

  // Upload only a clip that passed the checks, with the campaign's mount confirmed.
  function readiness() {
    // Only between checking and sending: an upload under way, paused, waiting or done keeps its state.
    if (!state.file || ["checking", "ready", "confirm", "rejected"].indexOf(root.dataset.state) < 0) return;
    ui.upload.disabled = !(state.checksOk && mountOk());
    root.dataset.state = !state.checksOk ? "rejected" : mountOk() ? "ready" : "confirm";
    if (!state.checksOk) {
      setStatus(tr("This clip would be rejected. Fix the items marked ✗ and record again."), "error");
    } else if (!mountOk()) {
      setStatus(tr("Tick the box above to confirm how you wore the phone, then upload."), "warn");
    } else if (onCellular() && wifiOnly()) {
      setStatus(tr("Ready: {size} will upload when you are on Wi-Fi.", { size: fmtBytes(state.file.size) }), "ok");
    } else if (onCellular() || (navigator.connection && navigator.connection.saveData)) {
      setStatus(tr("Ready to upload {size} over mobile data.", { size: fmtBytes(state.file.size) }), "ok");
    } else {
      setStatus(tr("Ready to upload {size}.", { size: fmtBytes(state.file.size) }), "ok");
    }
  }

  function resetResult() {
    state.file = null;
    ui.checks.innerHTML = "";
    ui.upload.disabled = true;
    ui.pause.hidden = true;
    ui.progress.value = 0;
    ui.percent.textContent = "";
  }

  // ---- keeping the recording across reloads (IndexedDB) -------------------------------------

  var DB = "egocrowd-capture", STORE = "recordings";

  function idb() {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) return reject(new Error("no IndexedDB"));
      var req = indexedDB.open(DB, 1);
      req.onupgradeneeded = function () { req.result.createObjectStore(STORE); };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }

  function idbDo(mode, fn) {
    return idb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var req = fn(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(req && req.result); db.close(); };
        tx.onerror = function () { reject(tx.error); db.close(); };
      });
    });
  }

  function saveRecording(file) {
    // Stored per assignment; the File keeps name/type/lastModified, so the tus fingerprint matches.
    return idbDo("readwrite", function (s) {
      return s.put({ file: file, recordedAt: file.recordedAt }, cfg.assignment);
    }).catch(function () { /* private mode or quota: resume-after-reload just won't be offered */ });
  }

  function loadRecording() {
    return idbDo("readonly", function (s) { return s.get(cfg.assignment); }).catch(function () { return null; });
  }

  function forgetRecording() {
    return idbDo("readwrite", function (s) { return s.delete(cfg.assignment); }).catch(function () {});
  }

  // ---- upload ------------------------------------------------------------------------------

  var PERMANENT = [400, 401, 403, 404, 410, 412, 413, 415, 422];

  // ---- Wi-Fi only ------------------------------------------------------------------------
  // The Network Information API's `type` exists on Android Chrome and WebView (not on desktop
  // browsers or iOS); without it nobody can tell mobile data from Wi-Fi, so uploads go ahead.

  var WIFI_KEY = "egocrowd-capture:wifi-only";
  var connection = navigator.connection || navigator.mozConnection || navigator.webkitConnection || null;
  var knowsType = !!connection && typeof connection.type === "string";

  function wifiOnly() { return !!(ui.wifiOnly && ui.wifiOnly.checked); }
  function onCellular() { return knowsType && connection.type === "cellular"; }

  function showWifiNote() {
    if (!ui.wifiNote) return;
    ui.wifiNote.hidden = !(wifiOnly() && !knowsType);
    if (!ui.wifiNote.hidden) {
      ui.wifiNote.textContent = tr("This browser cannot tell Wi-Fi from mobile data, so uploads start right away.");
    }
  }

  function waitForWifi() {
    root.dataset.state = "waiting-wifi";
    ui.upload.disabled = true;
    ui.pause.hidden = true;
    setStatus(tr("Waiting for Wi-Fi. The upload starts by itself when you connect."), "warn");
  }

  // The connection changed: start or resume a waiting upload, pause a running one on mobile data.
  function connectionChanged() {
    if (wifiOnly() && onCellular()) {
      if (root.dataset.state === "uploading" && state.upload) {
        state.upload.abort();
        waitForWifi();
      }
    } else if (root.dataset.state === "waiting-wifi") {
      if (state.upload) {
        root.dataset.state = "uploading";
        ui.pause.hidden = false;
        setStatus(tr("Resuming the upload…"));
        state.upload.start();
      } else {
        startUpload();
      }
    }
    readiness();
  }

  function startUpload() {
    if (!state.file || !state.checksOk || !mountOk() || !window.tus) return;
    if (wifiOnly() && onCellular()) {
      waitForWifi();
      return;
    }
    var file = state.file;
    var metadata = {
      assignment: cfg.assignment,
      filename: file.name,
      filetype: file.type || "application/octet-stream",
      device: navigator.userAgent,
      recorded_at: file.recordedAt || new Date(file.lastModified || Date.now()).toISOString(),
    };
    if (ui.mount) metadata.mount = ui.mount.value;  // ticked: mountOk()
    if (idle) metadata.idle_seconds = String(idle.seconds());
    var upload = new tus.Upload(file, {
      endpoint: cfg.endpoint,
      chunkSize: cfg.chunkSize,
      // Mobile networks drop for minutes: keep trying with growing gaps (ms).
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 120000],
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      headers: cfg.csrf ? { "X-CSRF-Token": cfg.csrf } : {},
      metadata: metadata,
      onShouldRetry: function (err) {
        var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        return PERMANENT.indexOf(status) < 0;
      },
      onProgress: function (sent, total) {
        var pct = total ? (sent / total) * 100 : 0;
        ui.progress.value = pct;
        ui.percent.textContent = tr("{percent} %", { percent: fmtNumber(pct) });
        setStatus(tr("Uploading… {sent} of {total}", { sent: fmtBytes(sent), total: fmtBytes(total) }));
      },
      onError: function (err) {
        root.dataset.state = "error";
        ui.pause.hidden = true;
        ui.upload.disabled = false;
        ui.upload.textContent = tr("Try again");
        setStatus(explain(err), "error");
      },
      onSuccess: function (payload) {
        var id = upload.url ? upload.url.replace(/\/+$/, "").split("/").pop() : "";
        var res = payload && payload.lastResponse;
        var clip = (res && res.getHeader("Egocrowd-Clip-Id")) || "";
        if (clip) root.dataset.clipId = clip;
        root.dataset.state = "done";
        root.dataset.uploadId = id;
        ui.pause.hidden = true;
        ui.progress.value = 100;
        ui.percent.textContent = tr("{percent} %", { percent: fmtNumber(100) });
        setStatus(tr("Uploaded. Thank you!"), "ok");
        forgetRecording();
        if (idle) idle.forget();
        if (cfg.redirect) {
          setTimeout(function () { window.location.assign(cfg.redirect.replace("{upload}", encodeURIComponent(id))
                                                             .replace("{clip}", encodeURIComponent(clip))); }, 800);
        }
      },
    });
    state.upload = upload;
    root.dataset.state = "uploading";
    ui.upload.disabled = true;
    ui.pause.hidden = false;
    ui.pause.textContent = tr("Pause");
    setStatus(tr("Starting upload…"));
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);  // most recent first
        setStatus(tr("Resuming your earlier upload…"));
      }
      if (root.dataset.state === "uploading") upload.start();  // not if the phone moved to mobile data meanwhile
    });
  }

  function explain(err) {
    var res = err.originalResponse;
    var status = res ? res.getStatus() : 0;
    var detail = "";
    try { detail = JSON.parse(res.getBody()).detail || ""; } catch (e) { /* not JSON */ }
    // detail: the server's problem document, already in the reader's language.
    var more = detail ? " " + detail : "";
    if (status === 413) return tr("The clip is larger than this task allows.") + more;
    if (status === 401 || status === 403) return tr("You are not allowed to upload for this task (signed out?).") + more;
    if (status === 410 || status === 404) return tr("This upload expired. Tap Try again to start over.");
    if (!navigator.onLine) return tr("No network. The upload will continue when you tap Try again.");
    var failed = status ? tr("Upload failed ({status}).", { status: status }) : tr("Upload failed.");
    return failed + " " + (detail || tr("Tap Try again."));
  }

  function togglePause() {
    if (!state.upload) return;
    if (root.dataset.state === "uploading") {
      state.upload.abort();
      root.dataset.state = "paused";
      ui.pause.textContent = tr("Resume");
      setStatus(tr("Paused. Nothing is sent until you resume."));
    } else {
      root.dataset.state = "uploading";
      ui.pause.textContent = tr("Pause");
      state.upload.start();
    }
  }

  // ---- wiring ------------------------------------------------------------------------------

  ui.record.addEventListener("click", function () {
    if (state.recorder && state.recorder.state === "recording") stopRecording();
    else startRecording();
  });
  ui.file.addEventListener("change", function () {
    var f = ui.file.files && ui.file.files[0];
    if (f) useFile(f, { recorded: false });
  });
  // The camera app's clip is this page's recording: kept in IndexedDB like one, for a reload.
  if (ui.camera) {
    ui.camera.addEventListener("change", function () {
      var f = ui.camera.files && ui.camera.files[0];
      if (!f) return;
      try { f.recordedAt = new Date(f.lastModified || Date.now()).toISOString(); } catch (e) { /* read-only */ }
      useFile(f, { recorded: false }).then(function () { saveRecording(f); });
    });
  }
  ui.upload.addEventListener("click", function () {
    ui.upload.textContent = tr("Upload");
    startUpload();
  });
  if (ui.wifiOnly) {
    try { ui.wifiOnly.checked = window.localStorage.getItem(WIFI_KEY) === "1"; } catch (e) { /* private mode */ }
    ui.wifiOnly.addEventListener("change", function () {
      try { window.localStorage.setItem(WIFI_KEY, wifiOnly() ? "1" : "0"); } catch (e) { /* private mode */ }
      showWifiNote();
      connectionChanged();
    });
    showWifiNote();
  }
  if (connection && connection.addEventListener) connection.addEventListener("change", connectionChanged);
  ui.pause.addEventListener("click", togglePause);
  if (ui.mount) ui.mount.addEventListener("change", readiness);
  ui.preview.addEventListener("resize", liveOrientation);  // fires when the phone turns mid-recording
  ui.retake.addEventListener("click", function () {
    forgetRecording();
    resetResult();
    ui.retake.hidden = true;
    ui.preview.removeAttribute("src");
    root.dataset.state = "idle";
    setStatus(idleHint());
  });
  window.addEventListener("offline", function () {
    if (root.dataset.state === "uploading") setStatus(tr("Network lost: waiting to resume…"), "warn");
  });
  window.addEventListener("online", function () {
    // tus-js-client may have given up while offline; pick up from the server's offset.
    if (root.dataset.state === "error" && state.upload) { root.dataset.state = "uploading"; state.upload.start(); }
  });

  function idleHint() {
    return canRecordHere() ? tr("Tap Record or pick a video.") : tr("Record with the camera app, or pick a video.");
  }

  // No recording in the page (MediaRecorder missing: older Android WebViews): the camera app films.
  function useCameraApp() {
    if (!ui.cameraLabel) return;
    ui.record.hidden = true;
    ui.cameraLabel.hidden = false;
    if (ui.fallbackNote) ui.fallbackNote.hidden = false;
  }

  if (!canRecordHere()) useCameraApp();
  root.dataset.state = "idle";
  setStatus(idleHint());
  loadRecording().then(function (saved) {
    if (saved && saved.file && root.dataset.state === "idle") {
      var f = saved.file;
      try { f.recordedAt = saved.recordedAt; } catch (e) { /* read-only in some engines */ }
      useFile(f, { recorded: false }).then(function () {
        if (state.checksOk && mountOk()) setStatus(tr("Your last recording was not uploaded yet. Tap Upload to resume."), "ok");
      });
    }
  });

  // Exposed for debugging and tests (read-only view of the state).
  window.egocrowdCapture = { config: cfg, state: state, startUpload: startUpload, stopRecording: stopRecording,
                             canRecordHere: canRecordHere };
})();
