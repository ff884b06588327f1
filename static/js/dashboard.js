// Staff dashboard: Leaflet maps of batches and drag-and-drop stop ordering.
// Tiles come from SPARK map tile URL in a data attribute when configured; without network
// the markers and lines still show on a blank background.
(function () {
  "use strict";
  var TILE_URL = document.body.dataset.tiles || "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  var COLORS = ["#0b6bcb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#c2255c", "#1098ad", "#5c940d"];

  function drawMaps() {
    if (typeof L === "undefined") return;
    document.querySelectorAll(".map").forEach(function (el) {
      if (el._leaflet_id) { el._leaflet_map && el._leaflet_map.remove(); }
      var map = L.map(el, { scrollWheelZoom: false });
      el._leaflet_map = map;
      L.tileLayer(TILE_URL, { maxZoom: 18, attribution: "© OpenStreetMap" }).addTo(map);
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
            .bindTooltip(p.label || "").addTo(map);
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
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // After settle, not after swap: while settling, htmx puts back the attributes of the swapped-in
  // elements that kept their id (#map), which would strip the classes and inline position Leaflet
  // adds, leaving the map's panes spilling over the page. One listener only (htmx events bubble to
  // document), so the drag handlers and the map are set up once per swap.
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target); });
})();
