/* Spark driver app: the little JavaScript the server-rendered pages need.
 *
 * - Buttons with data-action call the JSON driver API (session cookie + CSRF token) and then
 *   refresh a part of the page (htmx.ajax on the element's data-refresh-url), reload, or go on.
 * - Countdowns (offers) and wait timers (store) tick every second from server timestamps,
 *   corrected for the phone's clock using data-server-now.
 * - Delivery photos are shrunk in the browser (max 1600 px JPEG, which also drops EXIF/GPS),
 *   kept in IndexedDB and sent again with backoff until the server answers 2xx.
 * - While on duty (online or holding a batch) the position goes to the API every 15 s.
 * - The service worker (/sw.js, scope /driver/) is registered; Web Push is subscribed with the
 *   VAPID public key from <body data-vapid-key>. Permission is asked at the first moment offers
 *   can come (going online, signing up for a slot), after a sheet that says why (#push-prompt).
 * - A new offer while the app is open (an id on the tab bar's badge not seen before) chimes
 *   (WebAudio) and vibrates.
 * - Dead zones: the active batch (pickup code, stops, addresses once shown) is kept in
 *   localStorage from the Batch screen's #batch-offline data while the batch is active, shown
 *   by the offline page, and wiped once the batch is over or the driver logs out.
 * - Call / Text (data-action="contact") asks the API for a masked number and shows it in the
 *   panel the page already has (text nodes only); the real numbers never reach the phone.
 * No build step, no dependencies but htmx (and Leaflet on Home).
 */
(function () {
  "use strict";

  var body = document.body;
  if (!body) return;
  var I18N = readJSON("driver-i18n") || {};
  var LOCATION_INTERVAL_MS = 15000;
  var skew = 0; // server clock - phone clock, ms
  var lastFix = null; // {lat, lng, accuracy, at}

  // --- Small helpers ------------------------------------------------------------------------

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function t(key, vars) {
    var text = I18N[key] || key;
    Object.keys(vars || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(vars[name])); });
    return text;
  }

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  var toastTimer = null;
  function toast(message, kind) {
    var el = document.getElementById("toast");
    if (!el || !message) return;
    el.textContent = message;
    el.className = "toast" + (kind ? " " + kind : "");
    el.hidden = false;
    el.dataset.kind = kind || "";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, kind === "error" ? 8000 : 4500);
  }

  function busy(el, on) {
    if (!el) return;
    el.classList.toggle("busy", on);
    el.setAttribute("aria-busy", on ? "true" : "false");
  }

  function fmtDuration(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function serverNow() { return Date.now() + skew; }

  // ISO 8601 from Python may carry microseconds; some Safari versions refuse more than 3 digits.
  function parseTime(text) {
    return text ? Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1")) : NaN;
  }

  function updateSkew(root) {
    var el = root && root.closest ? (root.matches("[data-server-now]") ? root : root.querySelector("[data-server-now]")) : null;
    el = el || document.querySelector("[data-server-now]");
    if (el && el.dataset.serverNow) skew = Number(el.dataset.serverNow) - Date.now();
  }

  // The JSON API. Resolves (never rejects) with {ok, status, data, headers}; status 0 = no network.
  function api(method, url, data) {
    var headers = { "X-CSRFToken": csrf(), "Accept": "application/json" };
    var payload;
    if (typeof FormData !== "undefined" && data instanceof FormData) {
      payload = data;
    } else if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(data);
    }
    return fetch(url, { method: method, headers: headers, body: payload, credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        return res.text().then(function (text) {
          var json = {};
          try { json = text ? JSON.parse(text) : {}; } catch (e) { json = {}; }
          return { ok: res.ok, status: res.status, data: json || {}, headers: res.headers };
        });
      })
      .catch(function () { return { ok: false, status: 0, data: { detail: t("offline"), code: "network" }, headers: null }; });
  }

  function errorText(res) {
    var data = res.data || {};
    var known = (I18N.errors || {})[data.code];
    if (known) return known;
    if (res.status === 0) return t("offline");
    var text = data.detail || t("error");
    var fields = data.fields || {};
    var first = Object.keys(fields)[0];
    if (first && fields[first] && fields[first][0] && text.indexOf(fields[first][0]) === -1) {
      text += " (" + first + ": " + fields[first][0] + ")";
    }
    return text;
  }

  function refresh(selectors) {
    String(selectors || "").split(",").forEach(function (sel) {
      sel = sel.trim();
      if (!sel) return;
      var el = document.querySelector(sel);
      if (el && el.dataset.refreshUrl && window.htmx) {
        window.htmx.ajax("GET", el.dataset.refreshUrl, { target: el, swap: "outerHTML" });
      }
    });
  }

  function refreshOffers() {
    if (window.htmx && document.getElementById("offers-live")) window.htmx.trigger(body, "spark:push");
  }

  // --- Location -----------------------------------------------------------------------------

  function fixFrom(pos) {
    return { lat: pos.coords.latitude, lng: pos.coords.longitude, accuracy: pos.coords.accuracy, at: Date.now() };
  }

  function locate(timeoutMs, maxAgeMs) {
    timeoutMs = timeoutMs || 10000;
    maxAgeMs = maxAgeMs || 30000;
    return new Promise(function (resolve) {
      if (lastFix && Date.now() - lastFix.at < maxAgeMs) return resolve(lastFix);
      if (!navigator.geolocation) return resolve(null);
      navigator.geolocation.getCurrentPosition(
        function (pos) { lastFix = fixFrom(pos); resolve(lastFix); },
        function () { resolve(null); },
        { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: maxAgeMs }
      );
    });
  }

  function coords(fix) { return { lat: fix.lat.toFixed(6), lng: fix.lng.toFixed(6) }; }

  var Tracker = {
    watchId: null,
    timer: null,
    start: function () {
      var url = body.dataset.locationUrl;
      if (this.timer || !url || !navigator.geolocation) return;
      this.watchId = navigator.geolocation.watchPosition(
        function (pos) { lastFix = fixFrom(pos); },
        function () { /* denied or no fix: nothing to send */ },
        { enableHighAccuracy: true, maximumAge: 10000, timeout: 30000 }
      );
      var self = this;
      this.timer = setInterval(function () { self.send(); }, LOCATION_INTERVAL_MS);
      setTimeout(function () { self.send(); }, 3000);
    },
    stop: function () {
      if (this.watchId !== null && navigator.geolocation) navigator.geolocation.clearWatch(this.watchId);
      clearInterval(this.timer);
      this.timer = null;
      this.watchId = null;
    },
    send: function () {
      if (!lastFix || Date.now() - lastFix.at > 60000) return;
      var data = coords(lastFix);
      if (lastFix.accuracy != null && isFinite(lastFix.accuracy)) data.accuracy_m = Math.min(100000, Math.round(lastFix.accuracy));
      var self = this;
      api("POST", body.dataset.locationUrl, data).then(function (res) {
        if ((res.status === 400 && res.data.code === "not_on_duty") || res.status === 403 || res.status === 401) {
          self.stop();
          body.dataset.onDuty = "0";
        }
      });
    }
  };

  // --- Clocks: offer countdowns and the wait timer --------------------------------------------

  function tick() {
    var now = serverNow();
    document.querySelectorAll(".countdown[data-expires-at]").forEach(function (el) {
      if (!el._deadline) {
        var at = parseTime(el.dataset.expiresAt);
        el._deadline = isNaN(at) ? now + 1000 * Number(el.dataset.secondsLeft || 0) : at;
      }
      var left = Math.max(0, Math.floor((el._deadline - now) / 1000));
      var card = el.closest(".offer-card");
      if (left <= 0) {
        el.textContent = t("expired");
        el.classList.add("done");
        el.classList.remove("low");
        if (card && !card.classList.contains("expired")) {
          card.classList.add("expired");
          card.querySelectorAll("[data-action=accept], [data-action=toggle]").forEach(function (b) { b.disabled = true; });
        }
      } else {
        el.textContent = fmtDuration(left);
        el.classList.toggle("low", left <= 15);
      }
    });
    document.querySelectorAll(".wait-timer[data-since]").forEach(function (el) {
      var since = parseTime(el.dataset.since);
      if (!isNaN(since)) el.textContent = fmtDuration(Math.max(0, Math.floor((now - since) / 1000)));
    });
  }

  // --- The open board's fair draw --------------------------------------------------------------

  var DRAW_KEY = "spark-draw-until";
  var Draw = {
    wait: function (decidesAt) {
      var ms = decidesAt ? Math.max(0, decidesAt.getTime() - serverNow()) + 1500 : 5000;
      try { sessionStorage.setItem(DRAW_KEY, String(Date.now() + ms + 8000)); } catch (e) { /* private mode */ }
      setTimeout(refreshOffers, ms);
    },
    check: function (live) {
      var until;
      try { until = Number(sessionStorage.getItem(DRAW_KEY) || 0); } catch (e) { until = 0; }
      if (!until) return;
      if (live.dataset.activeBatch) {
        try { sessionStorage.removeItem(DRAW_KEY); } catch (e) { /* ignore */ }
        location.assign(body.dataset.batchUrl || "/driver/batch/");
      } else if (Date.now() > until) {
        try { sessionStorage.removeItem(DRAW_KEY); } catch (e) { /* ignore */ }
        toast(t("draw_lost"));
      }
    }
  };

  // --- Photos: shrink in the browser, upload until it arrives ----------------------------------

  function loadImage(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("not an image")); };
      img.src = url;
    });
  }

  // Max 1600 px on the long side, JPEG. Re-encoding through a canvas also drops EXIF (GPS).
  function shrink(file, maxSide, quality) {
    maxSide = maxSide || 1600;
    quality = quality || 0.82;
    var decode = ("createImageBitmap" in window)
      ? createImageBitmap(file, { imageOrientation: "from-image" }).catch(function () { return loadImage(file); })
      : loadImage(file);
    return decode.then(function (source) {
      var w = source.naturalWidth || source.width, h = source.naturalHeight || source.height;
      var scale = Math.min(1, maxSide / Math.max(w, h));
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(w * scale));
      canvas.height = Math.max(1, Math.round(h * scale));
      canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
      if (source.close) source.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) { resolve(blob || file); }, "image/jpeg", quality);
      });
    }).catch(function () { return file; }); // the server checks and refuses what is not an image
  }

  var Uploads = {
    items: new Map(),
    db: null,
    open: function () {
      return new Promise(function (resolve) {
        if (!("indexedDB" in window)) return resolve(null);
        try {
          var req = indexedDB.open("spark-driver", 1);
          req.onupgradeneeded = function () { req.result.createObjectStore("uploads", { keyPath: "id" }); };
          req.onsuccess = function () { resolve(req.result); };
          req.onerror = function () { resolve(null); };
          req.onblocked = function () { resolve(null); };
        } catch (e) { resolve(null); }
      });
    },
    store: function (mode, fn) {
      var db = this.db;
      return new Promise(function (resolve) {
        if (!db) return resolve(null);
        try {
          var tx = db.transaction("uploads", mode);
          var req = fn(tx.objectStore("uploads"));
          tx.oncomplete = function () { resolve(req ? req.result : null); };
          tx.onerror = tx.onabort = function () { resolve(null); };
        } catch (e) { resolve(null); }
      });
    },
    init: function () {
      var self = this;
      return this.open().then(function (db) {
        self.db = db;
        return self.store("readonly", function (s) { return s.getAll(); });
      }).then(function (saved) {
        (saved || []).forEach(function (item) {
          if (self.items.has(item.id)) return;
          item.attempts = item.attempts || 0;
          self.items.set(item.id, item);
          self.schedule(item, 800);
        });
        self.decorate();
      });
    },
    record: function (item) {
      // Only what is needed to send it again: no timers or flags.
      return { id: item.id, stopId: item.stopId, url: item.url, fields: item.fields, files: item.files,
               attempts: item.attempts, createdAt: item.createdAt };
    },
    add: function (item) {
      var self = this;
      item.attempts = 0;
      this.items.set(item.id, item);
      this.decorate();
      return this.store("readwrite", function (s) { return s.put(self.record(item)); }).then(function () { self.send(item); });
    },
    remove: function (id) {
      this.items.delete(id);
      return this.store("readwrite", function (s) { return s["delete"](id); });
    },
    pending: function () { return this.items.size; },
    send: function (item) {
      if (item.sending) return;
      item.sending = true;
      var form = new FormData();
      Object.keys(item.fields || {}).forEach(function (k) {
        var v = item.fields[k];
        if (v !== null && v !== undefined && v !== "") form.append(k, v);
      });
      Object.keys(item.files || {}).forEach(function (k) {
        if (item.files[k]) form.append(k, item.files[k], k + ".jpg");
      });
      var self = this;
      api("POST", item.url, form).then(function (res) {
        item.sending = false;
        if (res.ok) {
          self.remove(item.id).then(function () {
            toast(t("delivered"), "ok");
            refresh("#stops, #batch-status");
            self.decorate();
          });
          return;
        }
        var transient = res.status === 0 || res.status === 408 || res.status === 429 || res.status >= 500;
        if (!transient) {
          // A clear refusal (not an image, under 21, out of order...): keep nothing, say why.
          self.remove(item.id).then(function () {
            toast(errorText(res), "error");
            refresh("#stops");
            self.decorate();
          });
          return;
        }
        item.attempts += 1;
        var delay = Math.min(60000, 1000 * Math.pow(2, item.attempts)) + Math.floor(Math.random() * 1000);
        item.state = t("upload_retry", { n: item.attempts, s: Math.round(delay / 1000) });
        self.store("readwrite", function (s) { return s.put(self.record(item)); });
        self.decorate();
        self.schedule(item, delay);
      });
    },
    schedule: function (item, delay) {
      var self = this;
      clearTimeout(item.timer);
      item.timer = setTimeout(function () { self.send(item); }, delay);
    },
    retryAll: function () {
      var self = this;
      this.items.forEach(function (item) { self.schedule(item, 0); });
    },
    decorate: function () {
      var self = this;
      document.querySelectorAll(".stop-card[data-stop-id]").forEach(function (card) {
        var item = self.items.get("stop-" + card.dataset.stopId);
        var state = card.querySelector(".upload-state");
        var form = card.querySelector(".deliver-form");
        if (item) {
          if (form) form.hidden = true;
          if (state) { state.hidden = false; state.textContent = item.state || t("uploading"); }
        } else if (state) {
          state.hidden = true;
          if (form) form.hidden = false;
        }
      });
      var complete = document.getElementById("complete-batch");
      if (complete && this.items.size) complete.disabled = true;
    }
  };

  function ageOn(dobValue, today) {
    var dob = new Date(dobValue + "T00:00:00");
    if (isNaN(dob.getTime())) return -1;
    var age = today.getFullYear() - dob.getFullYear();
    var m = today.getMonth() - dob.getMonth();
    if (m < 0 || (m === 0 && today.getDate() < dob.getDate())) age -= 1;
    return age;
  }

  function deliver(form) {
    var photoInput = form.querySelector("input[name=photo]");
    var photo = photoInput && photoInput.files[0];
    if (!photo) { toast(t("need_photo"), "error"); return; }
    var fields = {}, files = {}, idFile = null;
    if (form.dataset.alcohol === "1") {
      var dob = (form.querySelector("input[name=id_birth_date]") || {}).value;
      var idInput = form.querySelector("input[name=id_photo]");
      idFile = idInput && idInput.files[0];
      if (!dob || !idFile) { toast(t("need_id"), "error"); return; }
      if (ageOn(dob, new Date()) < 21) { toast(t("under_21"), "error"); return; }
      fields.id_birth_date = dob;
    }
    var submit = form.querySelector("button[type=submit]");
    busy(submit, true);
    if (submit) submit.disabled = true;
    Promise.all([shrink(photo), idFile ? shrink(idFile) : Promise.resolve(null), locate(5000, 60000)])
      .then(function (done) {
        files.photo = done[0];
        if (done[1]) files.id_photo = done[1];
        if (done[2]) Object.assign(fields, coords(done[2]));
        return Uploads.add({ id: "stop-" + form.dataset.stopId, stopId: form.dataset.stopId, url: form.dataset.url,
                             fields: fields, files: files, createdAt: Date.now() });
      })
      .finally(function () { busy(submit, false); if (submit) submit.disabled = false; });
  }

  // --- Route map (Home) ------------------------------------------------------------------------

  var RouteMap = {
    map: null,
    markers: {},
    line: null,
    form: null,
    init: function () {
      var el = document.getElementById("route-map");
      if (!el || typeof window.L === "undefined") return;
      this.form = document.getElementById("route-form");
      var details = el.closest("details");
      var self = this;
      var start = function () {
        if (self.map) { self.map.invalidateSize(); return; }
        self.build(el);
      };
      // A map in a closed <details> has no size: build it when it opens.
      if (details && !details.open) {
        details.addEventListener("toggle", function () { if (details.open) start(); });
      } else {
        start();
      }
    },
    build: function (el) {
      var L = window.L;
      var center = JSON.parse(el.dataset.center || "null") || { lat: 36.1627, lng: -86.7816 };
      var route = JSON.parse(el.dataset.route || "null");
      var map = L.map(el, { scrollWheelZoom: false }).setView([center.lat, center.lng], 11);
      L.tileLayer(el.dataset.tiles || body.dataset.tiles || "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        { maxZoom: 18, attribution: "© OpenStreetMap" }).addTo(map);
      this.map = map;
      var self = this;
      if (route && route.origin) {
        this.set("origin", route.origin, true);
        if (route.dest) this.set("dest", route.dest, true);
        this.fit();
      }
      map.on("click", function (ev) {
        self.set(self.markers.origin ? "dest" : "origin", [ev.latlng.lat, ev.latlng.lng]);
      });
      this.describe();
    },
    set: function (which, latlng, quiet) {
      var L = window.L, self = this;
      if (!this.map) return;
      if (this.markers[which]) {
        this.markers[which].setLatLng(latlng);
      } else {
        var label = t(which === "origin" ? "route_origin" : "route_dest");
        var tip = document.createElement("span");
        tip.textContent = label; // Leaflet would parse a string as HTML
        var marker = L.marker(latlng, { draggable: true, title: label })
          .bindTooltip(tip, { permanent: true, direction: "top", offset: [0, -30] })
          .addTo(this.map);
        marker.on("dragend", function () { var p = marker.getLatLng(); self.store(which, p.lat, p.lng); self.draw(); });
        this.markers[which] = marker;
      }
      this.store(which, latlng[0], latlng[1]);
      this.draw();
      if (!quiet) this.describe();
    },
    store: function (which, lat, lng) {
      if (!this.form) return;
      this.form.elements[which + "_lat"].value = Number(lat).toFixed(6);
      this.form.elements[which + "_lng"].value = Number(lng).toFixed(6);
      this.describe();
    },
    draw: function () {
      var L = window.L;
      if (this.line) { this.map.removeLayer(this.line); this.line = null; }
      if (this.markers.origin && this.markers.dest) {
        this.line = L.polyline([this.markers.origin.getLatLng(), this.markers.dest.getLatLng()],
          { color: "#0b6bcb", weight: 4, dashArray: "6 8" }).addTo(this.map);
      }
    },
    fit: function () {
      var pts = Object.keys(this.markers).map(function (k) { return this.markers[k].getLatLng(); }, this);
      if (pts.length > 1) this.map.fitBounds(window.L.latLngBounds(pts), { padding: [40, 40] });
      else if (pts.length) this.map.setView(pts[0], 13);
    },
    clear: function () {
      var self = this;
      Object.keys(this.markers).forEach(function (k) { self.map.removeLayer(self.markers[k]); });
      this.markers = {};
      if (this.line) { this.map.removeLayer(this.line); this.line = null; }
      ["origin_lat", "origin_lng", "dest_lat", "dest_lng"].forEach(function (n) { self.form.elements[n].value = ""; });
      this.describe();
    },
    describe: function () {
      var out = document.getElementById("route-points");
      if (!out || !this.form) return;
      var f = this.form.elements;
      var parts = [];
      if (f.origin_lat.value) parts.push(t("route_origin") + ": " + f.origin_lat.value + ", " + f.origin_lng.value);
      if (f.dest_lat.value) parts.push(t("route_dest") + ": " + f.dest_lat.value + ", " + f.dest_lng.value);
      out.textContent = parts.length ? parts.join(" · ") : t("route_need_points");
    },
    useLocation: function () {
      var self = this;
      toast(t("locating"));
      locate(10000, 60000).then(function (fix) {
        if (!fix) { toast(t("need_location"), "error"); return; }
        self.set("origin", [fix.lat, fix.lng]);
        self.fit();
      });
    },
    save: function (form) {
      var f = form.elements;
      if (!f.origin_lat.value || !f.dest_lat.value) { toast(t("route_need_points"), "error"); return; }
      var data = {
        origin_lat: f.origin_lat.value, origin_lng: f.origin_lng.value,
        dest_lat: f.dest_lat.value, dest_lng: f.dest_lng.value,
        max_detour_meters: Math.round(Number(f.max_detour_meters.value || 8047))
      };
      // datetime-local is the phone's local time; toISOString() sends it with its offset (UTC).
      if (f.leave_after.value) data.leave_after = new Date(f.leave_after.value).toISOString();
      if (f.arrive_by.value) data.arrive_by = new Date(f.arrive_by.value).toISOString();
      var submit = form.querySelector("button[type=submit]");
      busy(submit, true);
      api("PUT", form.dataset.url, data).then(function (res) {
        busy(submit, false);
        if (!res.ok) { toast(errorText(res), "error"); return; }
        toast(t("route_saved"), "ok");
        var details = form.closest("details");
        if (details) details.open = false;
        refresh("#route-summary, #feed");
      });
    }
  };

  // --- Web Push ------------------------------------------------------------------------------

  function b64ToBytes(base64) {
    var padded = (base64 + "===".slice((base64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  var Push = {
    supported: function () {
      return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window && !!body.dataset.vapidKey;
    },
    showButton: function () {
      var btn = document.getElementById("enable-push");
      if (btn) btn.hidden = !(this.supported() && Notification.permission === "default");
    },
    ask: function () {
      if (!this.supported()) return;
      if (Notification.permission === "denied") { toast(t("push_denied"), "error"); return; }
      if (Notification.permission === "granted") { this.subscribe(true); return; }
      PushPrompt.show("ask");
    },
    subscribe: function (announce) {
      if (!this.supported() || Notification.permission !== "granted") return Promise.resolve();
      var self = this;
      return navigator.serviceWorker.ready
        .then(function (reg) {
          return reg.pushManager.getSubscription().then(function (sub) {
            return sub || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(body.dataset.vapidKey) });
          });
        })
        .then(function (sub) { return api("POST", body.dataset.pushUrl, sub.toJSON()); })
        .then(function (res) {
          if (res.ok) {
            try { sessionStorage.setItem("spark-push-synced", "1"); } catch (e) { /* ignore */ }
            if (announce) toast(t("push_on"), "ok");
          }
          self.showButton();
        })
        .catch(function () { /* the offers page polls anyway */ });
    }
  };

  // The sheet that says why before the browser asks. Shown at the first moment offers can come,
  // never on page load; "Not now" waits a day; a refusal is explained once and not asked again
  // (the browser would not show its question anyway).
  var PUSH_LATER_KEY = "spark-push-later";
  var PUSH_LATER_MS = 24 * 3600 * 1000;
  var PushPrompt = {
    el: function () { return document.getElementById("push-prompt"); },
    offer: function () {
      if (!this.el() || !Push.supported()) return;
      if (Notification.permission === "granted") { Push.subscribe(false); return; }
      if (Notification.permission === "denied") return;
      var later = 0;
      try { later = Number(localStorage.getItem(PUSH_LATER_KEY) || 0); } catch (e) { /* private mode */ }
      if (Date.now() - later < PUSH_LATER_MS) return;
      this.show("ask");
    },
    show: function (state) {
      var el = this.el();
      if (!el) return;
      ["ask", "allow", "later"].forEach(function (n) { el.querySelector("[data-slot=" + n + "]").hidden = state !== "ask"; });
      ["denied", "close"].forEach(function (n) { el.querySelector("[data-slot=" + n + "]").hidden = state !== "denied"; });
      el.querySelector(".actions").classList.toggle("one", state !== "ask");
      el.hidden = false;
      el.querySelector(state === "ask" ? "[data-slot=allow]" : "[data-slot=close]").focus();
    },
    hide: function () { var el = this.el(); if (el) el.hidden = true; },
    allow: function () {
      var self = this;
      Alert.unlock(); // a tap: the moment a page may open its sound
      Promise.resolve(Notification.requestPermission()).then(function (permission) {
        if (permission === "granted") { self.hide(); Push.subscribe(true); }
        else if (permission === "denied") self.show("denied");
        else self.later(); // the browser's question was dismissed: as "Not now"
        Push.showButton();
      });
    },
    later: function () {
      try { localStorage.setItem(PUSH_LATER_KEY, String(Date.now())); } catch (e) { /* private mode */ }
      this.hide();
    }
  };

  // --- New offers: heard and felt while the app is open -----------------------------------------

  // The tab bar's badge lists the pending offer ids (every screen polls it; Offers brings it
  // with its list). An id not seen before in this tab is a new offer. What is there when the
  // app opens is not news: the driver is looking at it.
  var SEEN_KEY = "spark-offers-seen";
  var Alert = {
    audio: null,
    // Browsers let a page make sound only after the driver touched it: a tap opens the audio
    // context, later chimes use it.
    unlock: function () {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      try {
        if (!this.audio) this.audio = new Ctx();
        if (this.audio.state === "suspended") Promise.resolve(this.audio.resume()).catch(function () { /* no sound */ });
      } catch (e) { this.audio = null; }
      return this.audio;
    },
    chime: function () {
      var ctx = this.unlock();
      if (!ctx) return;
      try {
        var at = ctx.currentTime;
        [880, 1320].forEach(function (hz, i) { // two rising beeps, loud enough for a pocket
          var osc = ctx.createOscillator(), gain = ctx.createGain();
          osc.type = "sine";
          osc.frequency.value = hz;
          gain.gain.value = 0.4;
          osc.connect(gain);
          gain.connect(ctx.destination);
          osc.start(at + i * 0.22);
          osc.stop(at + i * 0.22 + 0.18);
        });
      } catch (e) { /* no sound on this phone: the vibration and the toast remain */ }
    },
    buzz: function () {
      if (typeof navigator.vibrate !== "function") return;
      try { navigator.vibrate([250, 120, 250]); } catch (e) { /* not allowed here */ }
    },
    seen: function () {
      try { return JSON.parse(sessionStorage.getItem(SEEN_KEY) || "null"); } catch (e) { return null; }
    },
    check: function () {
      var badge = document.getElementById("offers-badge");
      if (!badge || badge.dataset.offerIds === undefined) return;
      var ids = badge.dataset.offerIds ? badge.dataset.offerIds.split(",") : [];
      var seen = this.seen();
      try { sessionStorage.setItem(SEEN_KEY, JSON.stringify(ids)); } catch (e) { /* private mode */ }
      if (!Array.isArray(seen)) return;
      var fresh = ids.filter(function (id) { return seen.indexOf(id) === -1; });
      if (!fresh.length) return;
      this.chime();
      this.buzz();
      var cards = fresh.map(function (id) { return document.getElementById("offer-" + id); }).filter(Boolean);
      cards.forEach(function (card) { card.classList.add("fresh"); });
      toast(cards.length ? t("new_offer_here") : t("new_offer"), "ok");
    }
  };

  // --- Dead zones: the active batch as last loaded ---------------------------------------------

  // Customer names and addresses: kept only while the batch is active (its id on <body
  // data-active-batch>), wiped on the first screen that shows another or none, and on logout.
  // A copy older than KEEP_MS is never shown (a phone left logged out with no signal).
  var BATCH_KEY = "spark-active-batch";
  var KEEP_MS = 24 * 3600 * 1000;
  var OfflineBatch = {
    read: function () {
      try { return JSON.parse(localStorage.getItem(BATCH_KEY) || "null"); } catch (e) { return null; }
    },
    wipe: function () {
      try { localStorage.removeItem(BATCH_KEY); } catch (e) { /* private mode */ }
    },
    sync: function () {
      if (body.dataset.page === "offline") return;
      var active = body.dataset.activeBatch || "";
      var fresh = readJSON("batch-offline");
      if (fresh && active && String(fresh.batch_id) === active) {
        try { localStorage.setItem(BATCH_KEY, JSON.stringify(fresh)); } catch (e) { /* full or private */ }
        return;
      }
      var kept = this.read();
      if (kept && String(kept.batch_id) !== active) this.wipe();
    },
    show: function () {
      var section = document.getElementById("offline-batch");
      if (!section) return;
      var kept = this.read();
      var savedAt = kept ? parseTime(kept.saved_at) : NaN;
      if (!kept || !(Date.now() - savedAt < KEEP_MS)) { this.wipe(); return; }
      var slot = function (name) { return section.querySelector("[data-slot=" + name + "]"); };
      var lang = document.documentElement.lang || undefined;
      var time = new Date(savedAt).toLocaleTimeString(lang, { hour: "numeric", minute: "2-digit" });
      slot("saved-at").textContent = t("offline_saved_at", { time: time });
      slot("store").textContent = kept.store || "";
      slot("store-address").textContent = kept.store_address || "";
      slot("pickup-instructions").textContent = kept.pickup_instructions || "";
      slot("pickup-instructions").hidden = !kept.pickup_instructions;
      slot("pickup-code").textContent = kept.pickup_code || "";
      slot("pickup").hidden = !kept.pickup_code;
      var list = slot("stops");
      list.textContent = "";
      (kept.stops || []).forEach(function (stop) {
        var li = document.createElement("li");
        li.className = "card stop-card";
        li.setAttribute("data-testid", "offline-stop");
        [["b", stop.title], ["p", stop.address], ["p", stop.detail], ["p", stop.notes]].forEach(function (part) {
          if (!part[1]) return;
          var el = document.createElement(part[0]);
          el.textContent = part[1];
          li.appendChild(el);
        });
        list.appendChild(li);
      });
      section.hidden = false;
    }
  };

  // --- Actions (buttons with data-action) ----------------------------------------------------

  // A check-in refused for a reason the driver can act on (too far from the store, no location)
  // stays on screen next to the button, with the way out (an associate confirms them), instead
  // of a toast that fades: data-help-into names the box, data-help-codes the error codes.
  function showHelp(btn, res) {
    var box = btn.dataset.helpInto ? document.querySelector(btn.dataset.helpInto) : null;
    var codes = (btn.dataset.helpCodes || "").split(" ");
    if (!box || codes.indexOf((res.data || {}).code) === -1) return false;
    var text = box.querySelector("[data-help-text]");
    if (text) text.textContent = errorText(res);
    box.hidden = false;
    return true;
  }

  var ACTIONS = {
    post: function (btn) {
      var geo = btn.dataset.geo;
      var ready = geo ? locate() : Promise.resolve(null);
      if (geo) toast(t("locating"));
      return ready.then(function (fix) {
        if (geo === "required" && !fix) { toast(t("need_location"), "error"); return null; }
        return api("POST", btn.dataset.url, fix ? coords(fix) : {});
      }).then(function (res) {
        if (!res) return;
        if (!res.ok) {
          if (showHelp(btn, res)) return;
          toast(errorText(res), "error");
          if (btn.dataset.refresh) refresh(btn.dataset.refresh);
          return;
        }
        if (btn.dataset.done) toast(btn.dataset.done, "ok");
        if (btn.dataset.pushPrompt) PushPrompt.offer(); // a slot: offers will come
        if (btn.dataset.then) location.assign(btn.dataset.then);
        else if (btn.dataset.reload) location.reload();
        else if (btn.dataset.refresh) refresh(btn.dataset.refresh);
      });
    },
    "go-online": function (btn) {
      Alert.unlock(); // in the tap: the chime of the offers to come may play
      toast(t("locating"));
      return locate(15000, 60000).then(function (fix) {
        if (!fix) { toast(t("need_location"), "error"); return; }
        return api("POST", btn.dataset.url, coords(fix)).then(function (res) {
          if (!res.ok) { toast(errorText(res), "error"); return; }
          toast(t("online"), "ok");
          body.dataset.onDuty = "1";
          Tracker.start();
          PushPrompt.offer(); // offers can come now: say why notifications matter, then ask
          refresh("#duty, #feed, #route-summary");
        });
      });
    },
    "go-offline": function (btn) {
      return api("POST", btn.dataset.url).then(function (res) {
        if (!res.ok) { toast(errorText(res), "error"); return; }
        toast(t("offline_done"), "ok");
        if (!document.querySelector("[data-testid=active-batch-link]")) {
          body.dataset.onDuty = "0";
          Tracker.stop();
        }
        refresh("#duty, #feed, #route-summary");
      });
    },
    accept: function (btn) {
      return api("POST", btn.dataset.url).then(function (res) {
        if (res.ok) { location.assign(body.dataset.batchUrl || "/driver/batch/"); return; }
        toast(errorText(res), "error"); // 409 taken / 410 expired
        refreshOffers();
      });
    },
    claim: function (btn) {
      return api("POST", btn.dataset.url).then(function (res) {
        if (res.status === 202) {
          var at = res.data.decides_at ? new Date(parseTime(res.data.decides_at)) : null;
          var lang = document.documentElement.lang || undefined;
          var time = at ? at.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
          toast(t("draw", { time: time }), "ok");
          btn.disabled = true;
          Draw.wait(at);
          return;
        }
        if (res.ok) { location.assign(body.dataset.batchUrl || "/driver/batch/"); return; }
        toast(errorText(res), "error"); // 409 taken or busy, 429 too many tries
        refreshOffers();
      });
    },
    toggle: function (btn) {
      var target = document.getElementById(btn.getAttribute("aria-controls"));
      if (!target) return;
      var opening = target.hidden;
      target.hidden = !opening;
      btn.setAttribute("aria-expanded", opening ? "true" : "false");
      if (opening && target.scrollIntoView) target.scrollIntoView({ block: "nearest", behavior: "smooth" });
    },
    "enable-push": function () { Push.ask(); },
    contact: function (btn) {
      var panel = document.getElementById(btn.dataset.panel);
      return api("POST", btn.dataset.url).then(function (res) {
        if (!res.ok) { toast(errorText(res), "error"); return; }
        if (!panel) return;
        var number = panel.querySelector("[data-contact=number]");
        if (number) number.textContent = formatPhone(res.data.proxy_number);
        var call = panel.querySelector("[data-contact=call]");
        var text = panel.querySelector("[data-contact=text]");
        if (call) call.setAttribute("href", "tel:" + res.data.proxy_number);
        if (text) text.setAttribute("href", "sms:" + res.data.proxy_number);
        panel.hidden = false;
        if (panel.scrollIntoView) panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
        var next = btn.dataset.mode === "text" ? text : call;
        if (next) next.focus();
      });
    }
  };

  // "+16155550100" -> "(615) 555-0100"; other countries as given.
  function formatPhone(e164) {
    var us = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(String(e164 || ""));
    return us ? "(" + us[1] + ") " + us[2] + "-" + us[3] : String(e164 || "");
  }

  document.addEventListener("click", function (e) {
    var sheetBtn = e.target.closest("#push-prompt [data-slot]");
    if (sheetBtn) {
      if (sheetBtn.dataset.slot === "allow") PushPrompt.allow();
      else if (sheetBtn.dataset.slot === "later") PushPrompt.later();
      else PushPrompt.hide();
      return;
    }
    var routeBtn = e.target.closest("[data-route]");
    if (routeBtn) {
      e.preventDefault();
      if (routeBtn.dataset.route === "use-location") RouteMap.useLocation();
      else if (routeBtn.dataset.route === "clear") RouteMap.clear();
      return;
    }
    var btn = e.target.closest("[data-action]");
    if (!btn || btn.disabled || btn.classList.contains("busy")) return;
    var handler = ACTIONS[btn.dataset.action];
    if (!handler) return;
    e.preventDefault();
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    busy(btn, true);
    Promise.resolve(handler(btn)).finally(function () { busy(btn, false); });
  });

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.matches("form[data-logout]")) {
      OfflineBatch.wipe(); // the next person with this phone sees no customer's address
    } else if (form.matches(".deliver-form")) {
      e.preventDefault();
      deliver(form);
    } else if (form.matches(".decline-form, .fail-form")) {
      e.preventDefault();
      var picked = form.querySelector("input[name=reason]:checked");
      if (!picked) { toast(t("pick_reason"), "error"); return; }
      var submit = form.querySelector("button[type=submit]");
      busy(submit, true);
      var isDecline = form.matches(".decline-form");
      api("POST", form.dataset.url, { reason: picked.value }).then(function (res) {
        busy(submit, false);
        if (!res.ok) { toast(errorText(res), "error"); return; }
        form.hidden = true;
        if (isDecline) { toast(t("declined"), "ok"); refreshOffers(); }
        else refresh("#stops, #batch-status");
      });
    } else if (form.id === "route-form") {
      e.preventDefault();
      RouteMap.save(form);
    }
  });

  document.addEventListener("change", function (e) {
    var input = e.target;
    if (input.matches && input.matches(".deliver-form input[name=photo]") && input.files[0]) {
      var img = input.form.querySelector(".photo-preview");
      if (!img) return;
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(input.files[0]);
      img.hidden = false;
    }
  });

  // --- htmx: pause polling while the driver is choosing, react to new content ----------------

  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail && e.detail.elt;
    if (!elt || !elt.id) return;
    if (elt.id === "offers-live") {
      // Never swap the list away under a thumb: an open decline picker or a tap in flight.
      if (document.hidden || elt.querySelector("form.decline-form:not([hidden])") || elt.querySelector(".busy")) {
        e.preventDefault();
      }
    } else if ((elt.id === "batch-status" || elt.id === "offers-badge") && document.hidden) {
      e.preventDefault();
    }
  });

  // A poll that was already on its way when the driver opened a picker must not close it.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (target && target.id === "offers-live" && e.detail.requestConfig && e.detail.requestConfig.verb === "get" &&
        (target.querySelector("form.decline-form:not([hidden])") || target.querySelector(".busy"))) {
      e.detail.shouldSwap = false;
    }
  });

  var reloadPending = false;
  function afterContent(root) {
    updateSkew(root);
    tick();
    Uploads.decorate();
    Push.showButton();
    Alert.check();
    OfflineBatch.sync();
    var live = document.getElementById("offers-live");
    if (live) Draw.check(live);
    // The Batch page moves on by itself when the batch's phase changes (the associate handed
    // it over, the returns were checked in, the store cancelled it).
    var status = document.getElementById("batch-status");
    var main = document.getElementById("batch-main");
    if (status && main && status.dataset.phase !== main.dataset.phase && !reloadPending) {
      if (Uploads.pending()) {
        toast(t("uploads_pending"));
      } else {
        reloadPending = true;
        location.reload();
      }
    }
  }
  document.addEventListener("htmx:afterSettle", function (e) { afterContent(e.target); });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    refreshOffers();
    var status = document.getElementById("batch-status");
    if (status) window.htmx.trigger(status, "spark:refresh");
  });
  window.addEventListener("online", function () {
    Uploads.retryAll();
    if (body.dataset.page === "offline") location.reload();
  });
  window.addEventListener("offline", function () { toast(t("offline"), "error"); });

  // --- Service worker -------------------------------------------------------------------------

  if ("serviceWorker" in navigator && body.dataset.swUrl) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register(body.dataset.swUrl, { scope: body.dataset.swScope || "/driver/" })
        .catch(function () { /* no worker: the app still works online */ });
    });
    navigator.serviceWorker.addEventListener("message", function (e) {
      if (e.data && e.data.type === "push" && window.htmx) window.htmx.trigger(body, "spark:push");
    });
  }

  // --- Start -----------------------------------------------------------------------------------

  function start() {
    if (body.dataset.page === "offline") OfflineBatch.show();
    OfflineBatch.sync();
    Alert.check();
    // The first tap anywhere opens the audio context, so an offer's chime may play later.
    document.addEventListener("click", function () { Alert.unlock(); }, { capture: true, once: true });
    updateSkew(document);
    tick();
    setInterval(tick, 1000);
    RouteMap.init();
    Push.showButton();
    Uploads.init();
    if (body.dataset.onDuty === "1") Tracker.start();
    var synced = false;
    try { synced = sessionStorage.getItem("spark-push-synced") === "1"; } catch (e) { /* ignore */ }
    if (!synced && Push.supported() && Notification.permission === "granted") Push.subscribe(false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  // For the browser tests and the console.
  window.SparkDriver = { Uploads: Uploads, Tracker: Tracker, shrink: shrink, api: api, toast: toast, Alert: Alert,
                         OfflineBatch: OfflineBatch, PushPrompt: PushPrompt };
})();
