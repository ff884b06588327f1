// Customer tracking page (/t/<token>): polls status.json every 15 s and updates the page in place.
// No framework. Leaflet is loaded only when there is a driver position to show (slow phones, weak
// signal). The JSON follows the same privacy rules as the page; this file only displays it.
(function () {
  "use strict";

  var root, state, timer = null, failures = 0, map = null, driverLayer = null, homeLayer = null, leafletLoading = null;

  function $(id) { return document.getElementById(id); }
  function setText(id, text) { var el = $(id); if (el && el.textContent !== (text || "")) el.textContent = text || ""; }
  function show(id, visible) { var el = $(id); if (el) el.hidden = !visible; }

  // --- Rendering ----------------------------------------------------------------------------
  function render(s) {
    setText("trk-headline", s.headline);

    show("trk-eta", !!s.eta);
    if (s.eta) { setText("trk-eta-label", s.eta.label); setText("trk-eta-text", s.eta.text); }

    show("trk-driver", !!s.driver);
    if (s.driver) { setText("trk-driver-text", s.driver.text); setText("trk-vehicle", s.driver.vehicle); }

    show("trk-delivered", !!s.delivered);
    if (s.delivered) {
      setText("trk-delivered-time", s.delivered.time);
      var img = $("trk-photo");
      if (s.delivered.photo_url && img && img.getAttribute("src") !== s.delivered.photo_url) {
        img.setAttribute("src", s.delivered.photo_url);
      }
      show("trk-photo-wrap", !!s.delivered.photo_url);
    }

    renderTimeline(s.timeline || []);
    if (s.tip) {
      setText("trk-tip-amount", s.tip.text);
      setText("trk-tip-note", s.tip.note);
      show("trk-tip-note-wrap", !!s.tip.note);
    }
    show("trk-next", !!s.next_step);
    setText("trk-next-text", s.next_step);
    renderPosition(s.position);
    show("trk-foot", !!s.poll);
  }

  function renderTimeline(steps) {
    var list = $("trk-timeline");
    if (!list) return;
    var frag = document.createDocumentFragment();
    steps.forEach(function (step) {
      var li = document.createElement("li");
      li.className = "trk-step is-" + step.state;
      li.setAttribute("data-key", step.key);
      var label = document.createElement("span");
      label.className = "trk-step-label";
      label.textContent = step.label;
      var time = document.createElement("time");
      time.className = "trk-step-time";
      time.textContent = step.time || "";
      li.appendChild(label);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(time);
      frag.appendChild(li);
    });
    while (list.firstChild) list.removeChild(list.firstChild);
    list.appendChild(frag);
  }

  // --- Map ----------------------------------------------------------------------------------
  function loadLeaflet() {
    if (window.L) return Promise.resolve();
    if (leafletLoading) return leafletLoading;
    leafletLoading = new Promise(function (resolve, reject) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = root.dataset.leafletCss;
      document.head.appendChild(css);
      var js = document.createElement("script");
      js.src = root.dataset.leafletJs;
      js.onload = function () { resolve(); };
      js.onerror = function () { leafletLoading = null; reject(new Error("leaflet")); };
      document.head.appendChild(js);
    });
    return leafletLoading;
  }

  function renderPosition(pos) {
    show("trk-map-card", !!pos);
    if (!pos) {
      if (driverLayer && map) { map.removeLayer(driverLayer); driverLayer = null; }
      return;
    }
    setText("trk-pos-updated", pos.updated);
    loadLeaflet().then(function () { drawPosition(pos); }, function () { /* map stays blank */ });
  }

  function drawPosition(pos) {
    var L = window.L;
    var here = [pos.lat, pos.lng];
    var dest = null;
    try { dest = JSON.parse(root.dataset.destination || "null"); } catch (e) { dest = null; }
    if (!map) {
      map = L.map("trk-map", { scrollWheelZoom: false, zoomControl: true });
      // The page sends no Referer to other sites (the token is in its URL); tile servers get the origin only.
      L.tileLayer(root.dataset.tiles, {
        maxZoom: 18, attribution: "© OpenStreetMap", referrerPolicy: "strict-origin"
      }).addTo(map);
      if (dest) {
        var label = document.createElement("span");
        label.textContent = root.dataset.homeLabel || "You"; // Leaflet would parse a string as HTML
        homeLayer = L.circleMarker([dest.lat, dest.lng], { radius: 8, color: "#2b8a3e", fillOpacity: 0.9 })
          .bindTooltip(label).addTo(map);
      }
    }
    if (!driverLayer) {
      driverLayer = L.circle(here, { radius: pos.radius_m || 200, color: "#0b6bcb", fillOpacity: 0.25, weight: 2 })
        .addTo(map);
    } else {
      driverLayer.setLatLng(here);
      driverLayer.setRadius(pos.radius_m || 200);
    }
    var bounds = L.latLngBounds([here]);
    if (homeLayer) bounds.extend(homeLayer.getLatLng());
    map.invalidateSize();
    if (!map._trkFitted || !map.getBounds().contains(bounds)) {
      map.fitBounds(bounds.pad(0.3), { maxZoom: 15 });
      map._trkFitted = true;
    }
  }

  // --- Polling ------------------------------------------------------------------------------
  function schedule(seconds) {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!state || !state.poll) return;
    timer = setTimeout(poll, Math.max(1, seconds) * 1000);
  }

  function poll() {
    timer = null;
    if (document.hidden) return;  // resumes on visibilitychange
    var url = root.dataset.statusUrl;
    fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store", credentials: "omit" })
      .then(function (res) {
        if (res.status === 429) {
          var wait = parseInt(res.headers.get("Retry-After") || "60", 10);
          schedule(isNaN(wait) ? 60 : wait);
          return null;
        }
        if (res.status === 404) { state.poll = false; return null; }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (next) {
        if (!next) return;
        failures = 0;
        show("trk-refresh-error", false);
        // Delivered just now: reload once, so the page offers what a delivered order has (rating).
        if (next.status !== state.status && next.status === "delivered") { window.location.reload(); return; }
        state = next;
        render(state);
        schedule(state.poll_seconds || 15);
      })
      .catch(function () {
        failures += 1;
        show("trk-refresh-error", true);
        schedule(Math.min(120, 15 * Math.pow(2, failures - 1)));  // weak signal: back off
      });
  }

  function init() {
    root = $("trk");
    var data = $("trk-state");
    if (!root || !data) return;
    try { state = JSON.parse(data.textContent); } catch (e) { return; }
    if (state.position) renderPosition(state.position);
    schedule(state.poll_seconds || 15);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && state.poll && !timer) poll();
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
