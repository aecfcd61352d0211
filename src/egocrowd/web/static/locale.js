// The page scripts' words in the reader's language, and the reader's time zone.
// Written for old phone browsers too (no modules, no arrow functions): it loads on every page.
(function () {
  "use strict";
  var table = {};
  var el = document.getElementById("i18n-strings");
  try {
    table = el ? JSON.parse(el.textContent) : {};
  } catch (e) {
    table = {};
  }
  // tr("Uploaded {done} of {total}", {done: 2, total: 5}): the server rendered every string our
  // scripts mark with tr() into #i18n-strings; a string it did not know stays in English.
  window.tr = function (message, values) {
    var text = Object.prototype.hasOwnProperty.call(table, message) ? table[message] : message;
    if (values) {
      text = text.replace(/\{(\w+)\}/g, function (whole, name) {
        return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
      });
    }
    return text;
  };
  // Pages show times in the reader's zone: tell the server the browser's (an account's own
  // setting, chosen on the account page, wins over it).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && !/(^|;\s*)tz=/.test(document.cookie)) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) {
    /* no Intl: times stay in UTC, labelled as such */
  }
})();
