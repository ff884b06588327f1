// Staff dashboard: Leaflet maps of batches, drag-and-drop stop ordering, the store switcher,
// the polls that wait while the associate is busy, refused htmx actions shown in place and the
// questions asked before revoking, removing or cancelling. Loaded on every dashboard page.
// Tiles come from the map's data-tiles (settings.SPARK_MAP_TILE_URL, which the CSP allows);
// without network the markers and lines still show on a blank background.
// Server data (addresses, store names) never goes in as HTML: Leaflet inserts a string tooltip
// with innerHTML, so tooltips get a DOM node holding text.
(function () {
  "use strict";
  var DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  var COLORS = ["#0b6bcb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#c2255c", "#1098ad", "#5c940d"];

  function textNode(text) {
    var span = document.createElement("span");
    span.textContent = text == null ? "" : String(text);
    return span;
  }

  function drawMaps() {
    if (typeof L === "undefined") return;
    document.querySelectorAll(".map").forEach(function (el) {
      if (el._leaflet_id) { el._leaflet_map && el._leaflet_map.remove(); }
      var map = L.map(el, { scrollWheelZoom: false });
      el._leaflet_map = map;
      L.tileLayer(el.dataset.tiles || DEFAULT_TILES, { maxZoom: 18, attribution: "© OpenStreetMap" }).addTo(map);
      var bounds = [];
      var points = el.dataset.points ? JSON.parse(el.dataset.points) : null;
      var routes = el.dataset.routes ? JSON.parse(el.dataset.routes) : null;
      if (points) routes = [points];
      (routes || []).forEach(function (route, i) {
        var color = COLORS[i % COLORS.length];
        var line = route.map(function (p) { return [p.lat, p.lng]; });
        if (line.length) line.push(line[0]);  // back to the store
        L.polyline(line, { color: color, weight: 3 }).addTo(map);
        route.forEach(function (p) {
          bounds.push([p.lat, p.lng]);
          L.circleMarker([p.lat, p.lng], { radius: p.store ? 9 : 6, color: color, fillOpacity: 0.8 })
            .bindTooltip(textNode(p.label)).addTo(map);
        });
      });
      if (bounds.length) map.fitBounds(bounds, { padding: [20, 20] });
      else map.setView([36.16, -86.78], 11);
    });
  }

  function enableDrag(root) {
    var list = root.querySelector("#stops[data-draggable='1']");
    if (!list) return;
    var dragged = null;
    list.addEventListener("dragstart", function (e) { dragged = e.target.closest(".stop"); e.dataTransfer.effectAllowed = "move"; });
    list.addEventListener("dragover", function (e) {
      e.preventDefault();
      var over = e.target.closest(".stop");
      if (!dragged || !over || over === dragged) return;
      var rect = over.getBoundingClientRect();
      var after = e.clientY > rect.top + rect.height / 2;
      list.insertBefore(dragged, after ? over.nextSibling : over);
    });
    list.addEventListener("drop", function (e) {
      e.preventDefault();
      dragged = null;
      htmx.trigger("#reorder-form", "reorder");
    });
  }

  function init(root) { drawMaps(); enableDrag(root || document); }

  // The store switcher: each option carries its store's URL.
  document.addEventListener("change", function (e) {
    var select = e.target;
    if (select.id !== "store-select") return;
    var option = select.options[select.selectedIndex];
    if (option && option.dataset.url) location.assign(option.dataset.url);
  });

  // A poll must not wipe what the associate is doing (ticked orders, a code being typed): an
  // element with data-poll-hold="<CSS selector>" skips its own request while the selector
  // matches something. (Instead of an hx-trigger filter, which htmx would have to eval.)
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail && e.detail.elt;
    var hold = elt && elt.dataset ? elt.dataset.pollHold : "";
    if (hold && document.querySelector(hold)) { e.preventDefault(); return; }
    if (elt) clearError(elt);
  });

  // A refused htmx action answers 4xx with its message as plain text (dashboard.page.htmx_error)
  // and htmx swaps nothing: show the message next to the control that was used (its stop row or
  // its form), as text. Anything else (a 404 page, a 500, no network) gets the page's own words.
  function errorAnchor(elt) { return elt.closest("li, form") || elt; }

  function clearError(elt) {
    var old = errorAnchor(elt).querySelector(":scope > .htmx-error");
    if (old) old.remove();
  }

  function showError(elt, text) {
    clearError(elt);
    var p = document.createElement("p");
    p.className = "htmx-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    errorAnchor(elt).appendChild(p);
  }

  function pageText(name) {
    var meta = document.querySelector("meta[name='" + name + "']");
    return meta ? meta.content : "";
  }

  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    var type = (xhr.getResponseHeader("Content-Type") || "").split(";")[0];
    var text = type === "text/plain" && xhr.responseText ? xhr.responseText : pageText("spark-htmx-error");
    showError(e.detail.elt, text);
  });
  document.addEventListener("htmx:sendError", function (e) { showError(e.detail.elt, pageText("spark-htmx-offline")); });

  // Revoke, remove, cancel: ask first. The form carries confirmed="" and the server asks on a
  // page of its own while it is empty (dashboard.page.confirm_first), so without this script
  // nothing happens unasked either; with it the question is a dialog and the answer is posted.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.dataset ? form.dataset.confirm : "";
    if (!question) return;
    if (!window.confirm(question)) { e.preventDefault(); return; }
    var flag = form.querySelector("input[name='confirmed']");
    if (flag) flag.value = "1";
  });

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // After settle, not after swap: while settling, htmx puts back the attributes of the swapped-in
  // elements that kept their id (#map), which would strip the classes and inline position Leaflet
  // adds, leaving the map's panes spilling over the page. One listener only (htmx events bubble to
  // document), so the drag handlers and the map are set up once per swap.
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target); });
})();
