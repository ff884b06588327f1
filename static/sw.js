/* Spark driver app service worker. Served at /sw.js by driver_app.pwa.service_worker, which
 * puts `self.SPARK_SW = {version, shell, offline, icon, badge}` in front of this file; the app
 * registers it with scope /driver/.
 *
 * - install: cache the app shell (driver CSS/JS, htmx, Leaflet, icons) and the offline page.
 * - fetch: pages (navigations) network-first, falling back to the offline page. Pages are never
 *   stored: they hold customer addresses and the CSRF token. The offline page shows the active
 *   batch driver.js kept in localStorage while it is active (pickup code, stops), nothing else.
 *   Static shell files cache-first.
 *   The API and everything else go straight to the network.
 * - push: show the notification from the JSON payload {type, title, body, url, tag} (an offer
 *   stays until tapped or dismissed, and vibrates) and tell open pages, so the offers list and
 *   the tab bar's badge refresh at once (driver.js chimes for a new offer).
 * - notificationclick: focus an open app window on the payload's url, or open one.
 */
/* global self, caches, clients */
"use strict";

var CONFIG = self.SPARK_SW || { version: "dev", shell: [], offline: "/driver/offline/", icon: "", badge: "" };
var CACHE = "spark-driver-" + CONFIG.version;

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE)
      .then(function (cache) {
        // The offline page must be there; a shell file that fails is fetched later on demand.
        return cache.add(new Request(CONFIG.offline, { cache: "reload" })).then(function () {
          return Promise.all(CONFIG.shell.map(function (url) {
            return cache.add(new Request(url, { cache: "reload" })).catch(function () { return null; });
          }));
        });
      })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys()
      .then(function (keys) {
        return Promise.all(keys.map(function (key) {
          if (key.indexOf("spark-driver-") === 0 && key !== CACHE) return caches.delete(key);
          return null;
        }));
      })
      .then(function () { return self.clients.claim(); })
  );
});

function isShell(url) {
  return CONFIG.shell.indexOf(url.pathname) !== -1 || url.pathname.indexOf("/static/") === 0;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return; // map tiles and the like: the browser's business

  if (request.mode === "navigate") {
    event.respondWith(
      fetch(request).catch(function () {
        return caches.match(CONFIG.offline).then(function (page) {
          return page || new Response("Offline", { status: 503, headers: { "Content-Type": "text/plain" } });
        });
      })
    );
    return;
  }

  if (isShell(url)) {
    event.respondWith(
      caches.open(CACHE).then(function (cache) {
        return cache.match(request).then(function (hit) {
          if (hit) return hit;
          return fetch(request).then(function (response) {
            if (response.ok && response.type === "basic") cache.put(request, response.clone());
            return response;
          });
        });
      })
    );
  }
  // Everything else (the JSON API, htmx partials, uploads): straight to the network.
});

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data ? event.data.text() : "" }; }
  var title = data.title || "Spark";
  var url = typeof data.url === "string" && data.url.charAt(0) === "/" ? data.url : "/driver/offers/";
  var isOffer = data.type === "offer";
  var options = {
    body: data.body || "",
    tag: data.tag || "spark",
    renotify: true,
    // An offer lasts a minute or two: it stays on screen until the driver acts on it, and buzzes.
    requireInteraction: isOffer,
    vibrate: isOffer ? [250, 120, 250, 120, 250] : undefined,
    icon: CONFIG.icon || undefined,
    badge: CONFIG.badge || undefined,
    data: { url: url },
    timestamp: Date.now()
  };
  event.waitUntil(Promise.all([
    self.registration.showNotification(title, options),
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      windows.forEach(function (client) { client.postMessage({ type: "push", payload: data }); });
    })
  ]));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  // Only our own pages: a payload never sends the driver to another site.
  var target = new URL((event.notification.data && event.notification.data.url) || "/driver/offers/", self.location.origin);
  if (target.origin !== self.location.origin) target = new URL("/driver/offers/", self.location.origin);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        var client = windows[i];
        if (new URL(client.url).pathname.indexOf("/driver/") === 0 && "focus" in client) {
          return client.focus().then(function (focused) {
            return focused && "navigate" in focused ? focused.navigate(target.href) : focused;
          });
        }
      }
      return self.clients.openWindow ? self.clients.openWindow(target.href) : null;
    })
  );
});
