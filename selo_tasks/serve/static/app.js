// The page of `selo serve`: a scene as Leaflet tiles (L.CRS.Simple, one map unit = one
// scene pixel, lat = -row, lng = col), a sentence box with history, the SeLo overlay with
// opacity, legend, centres and regions, a second map right of a divider, and downloads.
// A collection adds the hit list of a sentence over every scene and, for georeferenced
// scenes, a Web-Mercator view (Leaflet's default CRS, lat/lng = latitude/longitude) where
// they are drawn where they lie; a hit opens in its scene's view (#q=SENTENCE&hit=RANK).
// Test and benchmark hooks: window.selo.timings (ms from submit to the overlay's tiles
// loaded), body[data-overlay] and body[data-compare] (the ids of the maps whose tiles are on
// screen left and right of the divider), body[data-features], body[data-status],
// body[data-view] (pixel or mercator), body[data-searched] (searches answered) and
// body[data-hit] (the rank of the hit opened, once its map is asked for).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, scene: null, map: null, a: null, b: null, layerA: null, layerB: null,
    features: null, groups: {}, opacity: 0.5, swipe: 0.5, records: new Map(), poll: null,
    view: "pixel", search: null, searches: 0, hit: null, hitLayer: null,
  };
  window.selo = { state, timings: [] };

  async function api(url, options) {
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  const setText = (id, text) => { $(id).textContent = text || ""; };
  const fmt = (v, n = 3) => (typeof v === "number" ? v.toFixed(n) : "");

  // --- coordinates ---------------------------------------------------------------------------

  function crsToPixel(x, y) {  // inverse of the scene's affine transform: (col, row)
    const [a, b, c, d, e, f] = state.scene.transform;
    const det = a * e - b * d;
    return [(e * (x - c) - b * (y - f)) / det, (-d * (x - c) + a * (y - f)) / det];
  }

  function pixelToCrs(col, row) {
    const [a, b, c, d, e, f] = state.scene.transform;
    return [a * col + b * row + c, d * col + e * row + f];
  }

  const toLatLng = (coords) => {
    const [col, row] = crsToPixel(coords[0], coords[1]);
    return L.latLng(-row, col);
  };

  const onMercator = () => state.view === "mercator";
  const lonLatBounds = ([w, s, e, n]) => L.latLngBounds([[s, w], [n, e]]);

  // --- the map -------------------------------------------------------------------------------

  function tileOptions(pane) {
    const s = state.scene;
    if (onMercator()) {  // the scene's tiles end at its native zoom; Leaflet enlarges beyond
      return {
        tileSize: 256, minZoom: 0, maxZoom: state.info.mercator.zoom + 3, maxNativeZoom:
        s.mercator.zoom, noWrap: true, pane, keepBuffer: 1, bounds: lonLatBounds(s.mercator.lonlat),
      };
    }
    return {
      tileSize: 256, zoomOffset: s.zmax, minZoom: -s.zmax, maxZoom: 3, minNativeZoom: -s.zmax,
      maxNativeZoom: 0, noWrap: true, pane, keepBuffer: 1,
      bounds: L.latLngBounds([[-s.height, 0], [0, s.width]]),
    };
  }

  function buildMap() {
    const s = state.scene;
    if (state.map) state.map.remove();
    state.view = "pixel";
    document.body.dataset.view = "pixel";
    const bounds = L.latLngBounds([[-s.height, 0], [0, s.width]]);
    const map = L.map("map", {
      crs: L.CRS.Simple, minZoom: -s.zmax, maxZoom: 3, zoomSnap: 1, attributionControl: false,
      maxBounds: bounds.pad(0.5), fadeAnimation: false,  // a tile loaded is a tile shown
    });
    state.map = map;
    map.createPane("overlayA").style.zIndex = 350;
    map.createPane("overlayB").style.zIndex = 351;
    if (s.has_pixels) L.tileLayer(s.tiles, tileOptions("tilePane")).addTo(map);
    map.fitBounds(bounds);
    map.on("move zoom resize", updateClip);
    map.on("mousemove", (e) => showCursor(e.latlng));
    map.on("mouseout", () => setText("cursor", ""));
    state.a = state.b = state.layerA = state.layerB = state.features = state.hitLayer = null;
    state.groups = {};
    updateClip();
  }

  function buildMercator() {  // every georeferenced scene where it lies; no basemap
    const m = state.info.mercator;
    if (state.map) state.map.remove();
    state.view = "mercator";
    document.body.dataset.view = "mercator";
    const bounds = lonLatBounds(m.lonlat);
    const map = L.map("map", {
      minZoom: 0, maxZoom: m.zoom + 3, zoomSnap: 1, attributionControl: false,
      fadeAnimation: false, worldCopyJump: false,
    });
    state.map = map;
    map.createPane("overlayA").style.zIndex = 350;
    map.createPane("overlayB").style.zIndex = 351;
    L.tileLayer(m.tiles, {
      tileSize: 256, minZoom: 0, maxZoom: m.zoom + 3, maxNativeZoom: m.zoom, noWrap: true,
      keepBuffer: 1, bounds,
    }).addTo(map);
    // the scenes' outlines, and a dot each where they are too small to see; a click shows one
    const placed = state.info.scenes.filter((s) => s.mercator);
    const visit = (s) => map.flyToBounds(lonLatBounds(s.mercator.lonlat), { maxZoom: s.mercator.zoom });
    L.layerGroup(placed.map((s) => L.geoJSON(s.mercator.footprint, {
      style: { color: "#f0c674", weight: 1, fillOpacity: 0 },
    }).bindTooltip(s.name).on("click", () => visit(s)))).addTo(map);
    const dots = new Map(placed.map((s) => {
      const [w, so, e, n] = s.mercator.lonlat;
      return [s, L.circleMarker([(so + n) / 2, (w + e) / 2], {
        radius: 4, color: "#f0c674", weight: 1, fillOpacity: 0.6,
      }).bindTooltip(s.name).on("click", () => visit(s))];
    }));
    const showDots = () => {  // a scene under 8 screen pixels across (its native zoom: 1:1)
      for (const [s, dot] of dots) {
        const tiny = map.getZoom() < s.mercator.zoom - Math.log2(Math.max(s.width, s.height) / 8);
        if (tiny) dot.addTo(map); else map.removeLayer(dot);
      }
    };
    map.on("zoomend", showDots);
    map.fitBounds(bounds, { maxZoom: m.zoom });
    showDots();
    map.on("move zoom resize", updateClip);
    map.on("mousemove", (e) => showCursor(e.latlng));
    map.on("mouseout", () => setText("cursor", ""));
    state.a = state.b = state.layerA = state.layerB = state.features = state.hitLayer = null;
    state.groups = {};
    $("centres").innerHTML = "";
    updateClip();
  }

  function showCursor(latlng) {
    if (onMercator()) {
      $("cursor").innerText = `${latlng.lat.toFixed(6)}, ${latlng.lng.toFixed(6)} (lat, lon)`;
      return;
    }
    const s = state.scene;
    const row = -latlng.lat, col = latlng.lng;
    if (row < 0 || col < 0 || row >= s.height || col >= s.width) { setText("cursor", ""); return; }
    let text = `row ${Math.floor(row)}, col ${Math.floor(col)}`;
    if (s.crs) {
      const [x, y] = pixelToCrs(col, row);
      text += `\n${x.toFixed(2)}, ${y.toFixed(2)} (${s.crs})`;
    }
    $("cursor").innerText = text;
  }

  function overlayLayer(record, pane) {
    const url = onMercator() ? record.mercator_tiles : record.tiles;
    const layer = L.tileLayer(url, tileOptions(pane));
    layer.setOpacity(state.opacity);
    return layer;
  }

  function updateClip() {
    const map = state.map;
    if (!map) return;
    const paneA = map.getPane("overlayA"), paneB = map.getPane("overlayB");
    const divider = $("divider");
    if (!state.layerB) {
      paneA.style.clip = paneB.style.clip = "";
      divider.hidden = true;
      return;
    }
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(map.getSize());
    const x = nw.x + (se.x - nw.x) * state.swipe;
    paneA.style.clip = `rect(${nw.y}px, ${x}px, ${se.y}px, ${nw.x}px)`;
    paneB.style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${x}px)`;
    divider.style.left = `${state.swipe * 100}%`;
    divider.hidden = false;
  }

  // --- maps on screen ------------------------------------------------------------------------

  function showA(record, t0) {
    state.a = record;
    if (state.layerA) state.map.removeLayer(state.layerA);
    const layer = overlayLayer(record, "overlayA");
    state.layerA = layer;
    layer.once("load", () => {
      if (state.layerA !== layer) return;
      window.selo.timings.push({
        id: record.id, sentence: record.sentence, ms: performance.now() - t0,
        cached: Boolean(record.cached),
      });
      document.body.dataset.overlay = record.id;
      loadFeatures(record);  // after the tiles: its computation does not slow them down
    });
    delete document.body.dataset.overlay;
    delete document.body.dataset.features;
    for (const group of Object.values(state.groups)) state.map.removeLayer(group);
    state.groups = {};
    $("centres").innerHTML = "";
    layer.addTo(state.map);
    updateClip();
    const tif = $("dl-tif"), geojson = $("dl-geojson");
    tif.href = record.geotiff;
    tif.download = `selo_map-${record.file_stem}.tif`;
    geojson.href = `${record.geojson}?download=1`;
    geojson.download = `regions-${record.file_stem}.geojson`;
    tif.classList.remove("disabled");
    geojson.classList.remove("disabled");
    let about = `A: “${record.sentence}”`;
    if (record.seconds !== undefined) about += ` (${fmt(record.seconds, 2)} s)`;
    if (state.b) about += `\nB: “${state.b.sentence}”`;
    $("current").innerText = about;
    showMetrics(record);
    renderHistory();
  }

  function showB(record) {
    if (state.layerB) state.map.removeLayer(state.layerB);
    state.b = record;
    delete document.body.dataset.compare;
    state.layerB = record ? overlayLayer(record, "overlayB") : null;
    if (record) {
      const layer = state.layerB;
      layer.once("load", () => {
        if (state.layerB === layer) document.body.dataset.compare = record.id;
      });
      layer.addTo(state.map);
    }
    $("swipe").disabled = $("flip").disabled = !record;
    $("compare").value = record ? record.id : "";
    updateClip();
    if (state.a) {
      let about = `A: “${state.a.sentence}”`;
      if (record) about += `\nB: “${record.sentence}”`;
      $("current").innerText = about;
    }
    renderHistory();
  }

  function showMetrics(record) {
    const table = $("metrics");
    const m = record.metrics;
    table.hidden = !m;
    if (!m) return;
    table.innerHTML = "";
    for (const i of state.info.run.indicators) {  // the indicator table, from the server
      const row = table.insertRow();
      row.insertCell().textContent = i.heading;
      row.insertCell().textContent = fmt(m[i.name], i.digits);
    }
  }

  async function loadFeatures(record) {
    const mercator = onMercator();
    let data;
    try {
      data = await api(mercator ? `${record.geojson}?lonlat=1` : record.geojson);
    } catch (e) { setText("error", e.message); return; }
    if (state.a !== record || onMercator() !== mercator) return;
    for (const group of Object.values(state.groups)) state.map.removeLayer(group);
    const groups = { centres: L.layerGroup(), regions: L.layerGroup(), annotations: L.layerGroup() };
    const list = $("centres");
    list.innerHTML = "";
    for (const feature of data.features) {
      const p = feature.properties;
      if (p.kind === "centre") {
        const [lon, lat] = feature.geometry.coordinates;
        const where = mercator ? L.latLng(lat, lon) : L.latLng(-(p.row + 0.5), p.col + 0.5);
        const icon = L.divIcon({ className: "centre-icon", html: String(p.rank) });
        L.marker(where, { icon, title: `centre ${p.rank}: P ${fmt(p.score, 2)}` })
          .addTo(groups.centres);
        const li = document.createElement("li");
        li.innerHTML = `row ${p.row}, col ${p.col} <span class="secs">P ${fmt(p.score, 2)}</span>`;
        li.onclick = () => state.map.panTo(where);
        list.appendChild(li);
      } else {
        const annotation = p.kind === "annotation";
        const style = annotation
          ? { color: "#39ff14", weight: 2, dashArray: "6 4", fill: false }
          : { color: "#ffffff", weight: 1.5, fillColor: "#ffffff", fillOpacity: 0.08 };
        const layer = mercator
          ? L.geoJSON(feature, { style })
          : L.geoJSON(feature, { coordsToLatLng: toLatLng, style });
        if (!annotation) layer.bindTooltip(`max P ${fmt(p.max / 255, 2)}, ${p.area_px} px`);
        layer.addTo(annotation ? groups.annotations : groups.regions);
      }
    }
    state.groups = groups;
    if ($("show-centres").checked) groups.centres.addTo(state.map);
    if ($("show-regions").checked) groups.regions.addTo(state.map);
    if ($("show-annotations").checked) groups.annotations.addTo(state.map);
    document.body.dataset.features = record.id;
  }

  // --- sentences and history -----------------------------------------------------------------

  async function ask(sentence, t0 = performance.now()) {
    setText("error", "");
    setText("warning", "");
    $("go").disabled = true;
    try {
      const record = await api(`/api/scenes/${state.scene.id}/maps`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sentence }),
      });
      state.records.set(record.id, record);
      if (record.warning) setText("warning", record.warning);
      if (state.b && state.b.id === record.id) showB(null);
      showA(record, t0);
    } catch (e) {
      setText("error", e.message);
    } finally {
      $("go").disabled = state.scene.status !== "ready";
    }
  }

  // --- a collection: its hits, and a hit opened where it is ----------------------------------

  async function searchAll(sentence, openRank = 0) {
    setText("error", "");
    setText("warning", "");
    $("go").disabled = true;
    try {
      const top = Math.max(20, openRank);
      const result = await api("/api/search", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sentence, top }),
      });
      state.search = result;
      clearHit();
      renderHits();
      if (result.warning) setText("warning", result.warning);
      state.searches += 1;
      document.body.dataset.searched = String(state.searches);
      if (openRank) {
        const hit = result.hits.find((h) => h.rank === openRank);
        if (hit) await openHit(hit);
        else setText("error", `no hit ${openRank} for “${sentence}” (${result.hits.length} found)`);
      } else if (state.scene) {
        await ask(sentence);  // the scene on screen follows the sentence
      }
    } catch (e) {
      setText("error", e.message);
    } finally {
      $("go").disabled = false;
    }
  }

  function renderHits() {
    const result = state.search;
    const list = $("hits");
    list.innerHTML = "";
    $("hits-box").hidden = !result;
    if (!result) return;
    setText("hits-about", `${result.hits.length} over ${result.scenes} scenes, ${fmt(result.seconds, 2)} s`);
    for (const h of result.hits) {
      const li = document.createElement("li");
      li.value = h.rank;
      li.dataset.rank = h.rank;
      const name = document.createElement("span");
      name.textContent = h.scene_name;
      li.appendChild(name);
      li.insertAdjacentHTML("beforeend", ` <span class="secs">${fmt(h.score, 4)}${h.geometry ? "" : " · pixels"}</span>`);
      if (state.hit && state.hit.rank === h.rank) li.classList.add("active");
      li.onclick = () => openHit(h);
      list.appendChild(li);
    }
  }

  function clearHit() {
    if (state.hitLayer && state.map) state.map.removeLayer(state.hitLayer);
    state.hit = state.hitLayer = null;
    delete document.body.dataset.hit;
  }

  async function useScene(s) {  // the scene whose maps the Web-Mercator view shows
    clearTimeout(state.poll);
    if (state.layerB) showB(null);
    if (state.layerA) state.map.removeLayer(state.layerA);
    for (const group of Object.values(state.groups)) state.map.removeLayer(group);
    state.a = state.layerA = null;
    state.groups = {};
    $("centres").innerHTML = "";
    state.scene = s;
    state.records = new Map();
    setText("scene-info", `map of ${state.info.mercator.scenes} scenes; maps of ${s.name}`);
    await refreshScene();
  }

  async function openHit(hit) {
    const t0 = performance.now();
    const sentence = state.search.sentence;
    setText("error", "");
    clearHit();
    const s = state.info.scenes.find((x) => x.id === hit.scene);
    if (hit.geometry && state.info.mercator) {
      const fresh = !onMercator();
      if (fresh) buildMercator();
      if (fresh || !state.scene || state.scene.id !== s.id) await useScene(s);
      $("scene").value = "";
    } else if (onMercator() || !state.scene || state.scene.id !== s.id) {
      $("scene").value = s.id;
      await selectScene(s.id);
    }
    state.hit = hit;
    const style = { color: "#ffeb3b", weight: 3, dashArray: "8 6", fill: false, interactive: false };
    state.hitLayer = onMercator()
      ? L.geoJSON(hit.geometry, { style })
      : L.geoJSON(hit.polygon_px, { style, coordsToLatLng: (c) => L.latLng(-c[1], c[0]) });
    state.hitLayer.addTo(state.map);
    renderHits();
    history.replaceState(null, "", `#q=${encodeURIComponent(sentence)}&hit=${hit.rank}`);
    await flyTo(state.hitLayer.getBounds(), onMercator() ? s.mercator.zoom : 0);
    await ask(sentence, t0);
    document.body.dataset.hit = String(hit.rank);
  }

  function flyTo(bounds, maxZoom) {
    return new Promise((resolve) => {
      state.map.once("moveend", resolve);
      state.map.flyToBounds(bounds, { padding: [60, 60], maxZoom, duration: 0.6 });
    });
  }

  async function showMercator() {
    clearTimeout(state.poll);
    clearHit();
    state.scene = null;
    state.records = new Map();
    buildMercator();
    renderHistory();
    renderHits();
    setText("scene-info", `${state.info.mercator.scenes} georeferenced scenes where they lie (Web Mercator)`);
    $("status").hidden = true;
    $("sentence").disabled = $("go").disabled = false;
    document.body.dataset.status = "ready";
  }

  async function fromHash() {  // #q=SENTENCE&hit=RANK: a hit of `selo search`
    const params = new URLSearchParams(location.hash.slice(1));
    const q = params.get("q");
    if (!q || state.info.mode !== "collection") return;
    $("sentence").value = q;
    await searchAll(q, Math.max(0, Math.floor(Number(params.get("hit")) || 0)));
  }

  async function openMap(id) {  // a history entry or a run folder's case
    const t0 = performance.now();
    setText("error", "");
    if (state.info.mode !== "run") { await ask(state.records.get(id).sentence); return; }
    try {
      const record = await api(`/api/scenes/${state.scene.id}/maps/${id}`);
      state.records.set(id, { ...state.records.get(id), ...record });
      showA(state.records.get(id), t0);
    } catch (e) { setText("error", e.message); }
  }

  function renderHistory() {
    const list = $("history");
    list.innerHTML = "";
    const records = [...state.records.values()];
    if (state.info.mode !== "run") records.reverse();  // newest sentence first; cases in order
    for (const r of records) {
      const li = document.createElement("li");
      li.dataset.id = r.id;
      let text = r.sentence;
      if (r.case !== undefined) text = `case ${r.case}: ${r.sentence}`;
      li.textContent = text;
      const lead = state.info.run && state.info.run.summary;
      if (r.metrics && lead && r.metrics[lead.name] !== undefined) {
        const value = fmt(r.metrics[lead.name], lead.digits);
        li.insertAdjacentHTML("beforeend", ` <span class="secs">${lead.label} ${value}</span>`);
      } else if (r.seconds !== undefined) {
        li.insertAdjacentHTML("beforeend", ` <span class="secs">${fmt(r.seconds, 2)} s</span>`);
      }
      if (state.a && state.a.id === r.id) li.classList.add("active");
      if (state.b && state.b.id === r.id) li.classList.add("compare");
      li.onclick = () => openMap(r.id);
      list.appendChild(li);
    }
    const compare = $("compare");
    const chosen = state.b ? state.b.id : "";
    compare.innerHTML = '<option value="">—</option>';
    for (const r of records) {
      if (state.a && r.id === state.a.id) continue;
      const option = new Option(r.case !== undefined ? `case ${r.case}: ${r.sentence}` : r.sentence, r.id);
      compare.add(option);
    }
    compare.value = chosen;
  }

  // --- scenes and progress -------------------------------------------------------------------

  async function selectScene(id) {
    clearTimeout(state.poll);
    state.hit = null;
    delete document.body.dataset.hit;
    state.scene = state.info.scenes.find((s) => s.id === id);
    state.records = new Map();
    buildMap();
    const s = state.scene;
    let info = `${s.width} × ${s.height} px`;
    info += s.crs ? `, ${s.crs}` : ", no CRS: pixel coordinates";
    setText("scene-info", info);
    await refreshScene();
  }

  async function refreshScene() {
    const s = await api(`/api/scenes/${state.scene.id}`);
    Object.assign(state.scene, s);
    for (const m of s.maps) state.records.set(m.id, { ...state.records.get(m.id), ...m });
    renderHistory();
    const ready = s.status === "ready";
    $("status").hidden = ready;
    $("sentence").disabled = $("go").disabled = !ready || state.info.mode === "run";
    if (s.status === "error") {
      setText("status-text", `cannot embed this scene: ${s.error}`);
    } else if (!ready) {
      const p = s.progress;
      setText("status-text", p.total ? `${p.what}: ${p.done} / ${p.total} batches` : `${s.status}…`);
      $("status-bar").max = p.total || 1;
      $("status-bar").value = p.done || 0;
      state.poll = setTimeout(refreshScene, 400);
    } else if (state.info.mode !== "run") {
      $("sentence").focus();
    }
    document.body.dataset.status = s.status;
  }

  // --- wiring --------------------------------------------------------------------------------

  async function main() {
    const info = await api("/api/info");
    state.info = info;
    const select = $("scene");
    if (info.mercator) select.add(new Option(`map: ${info.mercator.scenes} georeferenced scenes`, ""));
    for (const s of info.scenes) select.add(new Option(`${s.name}`, s.id));
    select.onchange = () => (select.value ? selectScene(select.value) : showMercator());
    $("scene-box").querySelector("label").hidden = select.hidden = select.options.length < 2;
    $("sentence").maxLength = info.max_sentence_chars;
    if (info.mode === "run") {
      $("ask-box").hidden = true;
      setText("list-title", "Cases");
      $("annotations-toggle").hidden = false;
      const mean = info.run.mean;
      let text = `run folder ${info.run.folder}`;
      const lead = info.run.summary;
      if (mean) text += ` · mean ${lead.label} ${fmt(mean[lead.name], lead.digits)}`;
      setText("about", text);
    } else {
      let about = `${info.encoder} · method ${info.method.name}`;
      if (info.mode === "collection") {
        about = `${info.scenes.length} scenes · ${about}`;
        if (info.skipped) about += ` · ${info.skipped} left out`;
        $("go").textContent = "Search";
      }
      setText("about", about);
    }
    $("ask").onsubmit = (e) => {
      e.preventDefault();
      const sentence = $("sentence").value.trim();
      if (!sentence) { setText("error", "type a sentence first"); return; }
      if (info.mode === "collection") searchAll(sentence); else ask(sentence);
    };
    $("opacity").oninput = () => {
      state.opacity = Number($("opacity").value);
      setText("opacity-value", state.opacity.toFixed(2));
      for (const layer of [state.layerA, state.layerB]) if (layer) layer.setOpacity(state.opacity);
    };
    $("opacity").oninput();
    $("swipe").oninput = () => { state.swipe = Number($("swipe").value); updateClip(); };
    $("compare").onchange = async () => {
      const id = $("compare").value;
      if (!id) { showB(null); return; }
      try {
        const record = await api(`/api/scenes/${state.scene.id}/maps/${id}`);
        showB({ ...state.records.get(id), ...record });
      } catch (e) { setText("error", e.message); }
    };
    $("flip").onclick = () => {
      const a = state.a, b = state.b;
      if (!a || !b) return;
      showB(null);
      showA(b, performance.now());
      showB(a);
    };
    for (const [box, group] of [["show-centres", "centres"], ["show-regions", "regions"],
      ["show-annotations", "annotations"]]) {
      $(box).onchange = () => {
        const layer = state.groups[group];
        if (!layer) return;
        if ($(box).checked) layer.addTo(state.map); else state.map.removeLayer(layer);
      };
    }
    if (info.mercator) await showMercator(); else await selectScene(info.scenes[0].id);
    window.addEventListener("hashchange", () => fromHash().catch((e) => setText("error", e.message)));
    await fromHash();
  }

  main().catch((e) => setText("error", e.message));
})();
