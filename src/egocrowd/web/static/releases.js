// The release form's live preview: as filters change, ask the API what they select (POST
// /api/v1/releases/preview, the same check the Preview button runs without a script).
(function () {
  "use strict";
  var form = document.getElementById("release-form");
  var box = document.getElementById("preview");
  if (!form || !box) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var timer = null;
  var seq = 0;

  function split(v) {
    return v.split(/[,\n]/).map(function (x) { return x.trim(); }).filter(Boolean);
  }
  function checked(name) {
    return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return i.value; });
  }
  function val(id) { return (form.elements[id] && form.elements[id].value || "").trim(); }

  function body() {
    var sel = {};
    var camps = checked("campaign_ids").map(Number);
    if (camps.length) sel.campaign_ids = camps;
    var labels = split(val("labels"));
    if (labels.length) sel.labels = labels;
    var countries = split(val("countries")).map(function (c) { return c.toUpperCase(); });
    if (countries.length) sel.countries = countries;
    var ids = split(val("clip_ids")).map(Number);
    if (ids.length) sel.clip_ids = ids;
    ["recorded_from", "recorded_to"].forEach(function (k) { if (val(k)) sel[k] = val(k); });
    ["min_duration_s", "max_duration_s", "min_alpha"].forEach(function (k) { if (val(k)) sel[k] = Number(val(k)); });
    var uses = checked("uses");
    var out = { selection: sel, licence_uses: uses.length ? uses : ["training"] };
    if (val("organization_id")) out.organization_id = Number(val("organization_id"));
    return out;
  }

  // the reasons a clip is left out, in the reader's words (the same msgids as releases.selection's)
  var REASONS = {
    not_found: tr("no such clip in this lab's campaigns"),
    not_accepted: tr("not accepted"),
    withdrawn: tr("withdrawn (its worker withdrew consent, or it was removed)"),
    not_deidentified: tr("no de-identified video"),
    no_consent: tr("no consent record behind it"),
    consent_withdrawn: tr("its worker withdrew the consent it was recorded under"),
    "scope:commercial_use": tr("its worker did not allow commercial use"),
    "scope:redistribution": tr("its worker did not allow redistribution"),
  };
  var lang = document.documentElement.lang || undefined;
  function num(n, digits) {
    try {
      return Number(n).toLocaleString(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits });
    } catch (e) {
      return Number(n).toFixed(digits);
    }
  }
  function reason(code) {
    if (Object.prototype.hasOwnProperty.call(REASONS, code)) return REASONS[code];
    if (code.indexOf("scope:") === 0) return tr("its worker did not grant the scope {scope}", { scope: code.slice(6) });
    return code;
  }

  function show(data) {
    var lines = [];
    var p = document.createElement("p");
    p.id = "preview-count";
    p.setAttribute("data-count", String(data.count));
    // the sentence in the reader's words, its count in bold wherever the language puts it
    var hours = { hours: num(data.hours, 2) };
    var words = (data.count === 1 ? tr("{count} clip, {hours} hours", hours) : tr("{count} clips, {hours} hours", hours)).split("{count}");
    var strong = document.createElement("strong");
    strong.textContent = num(data.count, 0);
    p.appendChild(document.createTextNode(words[0]));
    p.appendChild(strong);
    p.appendChild(document.createTextNode(words.slice(1).join("")));
    lines.push(p);
    if (data.excluded_count) {
      var q = document.createElement("p");
      q.id = "preview-excluded";
      q.textContent = tr("{count} left out:", { count: num(data.excluded_count, 0) });
      lines.push(q);
      var ul = document.createElement("ul");
      ul.className = "small";
      Object.keys(data.excluded_reasons).forEach(function (code) {
        var li = document.createElement("li");
        li.setAttribute("data-reason", code);
        li.textContent = num(data.excluded_reasons[code], 0) + " × " + reason(code);
        ul.appendChild(li);
      });
      lines.push(ul);
    }
    replace(lines);
  }

  function replace(nodes) {
    var heading = box.querySelector("h2");
    while (box.lastChild) box.removeChild(box.lastChild);
    box.appendChild(heading);
    nodes.forEach(function (n) { box.appendChild(n); });
  }

  function refresh() {
    var mine = ++seq;
    fetch("/api/v1/releases/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body()),
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (mine !== seq) return; // a newer answer is on its way
      if (res.ok) { show(res.data); return; }
      var p = document.createElement("p");
      p.id = "preview-count";
      p.className = "muted";
      p.textContent = "Fix the filters to see what they select: " + (res.data.detail || res.data.title || "");
      replace([p]);
    }).catch(function () { /* offline: the Preview button still works */ });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
