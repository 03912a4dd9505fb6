/* The report form: show the questions of the chosen category, find the device's
 * location, and (where a map tile server is configured) let the citizen mark the
 * place on a map. Everything also works without this script. */
(() => {
  "use strict";
  const form = document.getElementById("report-form");

  // -- category questions: only the chosen category's are sent ---------------------------
  const select = document.getElementById("service_code");
  function showQuestions() {
    document.querySelectorAll("fieldset.attributes").forEach((set) => {
      const chosen = set.dataset.category === (select && select.value);
      set.hidden = !chosen;
      set.disabled = !chosen;
    });
  }
  if (select) {
    select.addEventListener("change", showQuestions);
    showQuestions();
  }

  // -- location ----------------------------------------------------------------------------
  const lat = document.getElementById("lat");
  const lon = document.getElementById("long");
  let map = null;
  let marker = null;

  function place(latitude, longitude, zoom) {
    if (lat) lat.value = latitude.toFixed(6);
    if (lon) lon.value = longitude.toFixed(6);
    if (map) {
      if (!marker) marker = window.L.marker([latitude, longitude]).addTo(map);
      else marker.setLatLng([latitude, longitude]);
      map.setView([latitude, longitude], zoom || map.getZoom());
    }
  }

  const locate = document.getElementById("locate");
  const status = document.getElementById("locate-status");
  if (locate && form) {
    if (!("geolocation" in navigator)) locate.hidden = true;
    locate.addEventListener("click", () => {
      status.textContent = form.dataset.locating;
      navigator.geolocation.getCurrentPosition(
        (position) => { place(position.coords.latitude, position.coords.longitude, 17); status.textContent = ""; },
        () => { status.textContent = form.dataset.failed; },
        { enableHighAccuracy: true, timeout: 15000 },
      );
    });
  }

  // -- map (only with a configured tile server; the board and the form work offline without it)
  const mapElement = document.getElementById("map");
  function startMap() {
    if (!mapElement || !window.L) return;
    const tiles = (form && form.dataset.tiles) || mapElement.dataset.tiles;
    if (!tiles) return;
    const attribution = (form && form.dataset.attribution) || mapElement.dataset.attribution || "";
    const fixed = mapElement.dataset.lat !== undefined;
    const start = fixed ? [Number(mapElement.dataset.lat), Number(mapElement.dataset.lon)] : [-4.2, 122.4];
    map = window.L.map(mapElement).setView(start, fixed ? 17 : 10);
    window.L.tileLayer(tiles, { maxZoom: 19, attribution }).addTo(map);
    if (fixed) {
      window.L.marker(start).addTo(map);
    } else {
      map.on("click", (event) => place(event.latlng.lat, event.latlng.lng));
      if (lat && lon && lat.value && lon.value) place(Number(lat.value), Number(lon.value), 16);
    }
  }
  if (document.readyState === "complete") startMap();
  else window.addEventListener("load", startMap);
})();
