/* The long-session page's service worker (#19): keeps that page and its files so a reload without
 * network still opens it (what was tapped lives in localStorage; the page uploads it later).
 * Served at /campaigns/<id>/session/sw.js: its scope is that one page. Network first, so an online
 * phone always gets the current page; the kept copy answers only when the network does not. */
"use strict";
var CACHE = "egocrowd-field-session-v1";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

// The page names what to keep: itself and the files it loads (their URLs carry content hashes).
self.addEventListener("message", function (event) {
  var urls = event.data && event.data.keep;
  if (!Array.isArray(urls)) return;
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return Promise.all(urls.map(function (url) {
      return fetch(url, { credentials: "same-origin" }).then(function (res) {
        if (res.ok) return cache.put(url, res);
      }).catch(function () { /* offline now: the next visit keeps it */ });
    }));
  }));
});

self.addEventListener("fetch", function (event) {
  var req = event.request;
  var url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || url.pathname.indexOf("/api/") === 0) return;
  event.respondWith(fetch(req).then(function (res) {
    if (res.ok && (req.mode === "navigate" || url.pathname.indexOf("/static/") === 0 || url.pathname.indexOf("/vendor/") === 0)) {
      var copy = res.clone();
      caches.open(CACHE).then(function (cache) { cache.put(req.mode === "navigate" ? url.pathname : req, copy); });
    }
    return res;
  }).catch(function () {
    return caches.match(req.mode === "navigate" ? url.pathname : req).then(function (hit) {
      return hit || Response.error();
    });
  }));
});
