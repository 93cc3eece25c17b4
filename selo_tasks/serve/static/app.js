// The page of `selo serve`: a scene as Leaflet tiles (L.CRS.Simple, one map unit = one
// scene pixel, lat = -row, lng = col), a sentence box with history, the SeLo overlay with
// opacity, legend, centres and regions, a second map right of a divider, and downloads.
// Test and benchmark hooks: window.selo.timings (ms from submit to the overlay's tiles
// loaded), body[data-overlay] and body[data-compare] (the ids of the maps whose tiles are on
// screen left and right of the divider), body[data-features], body[data-status].
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, scene: null, map: null, a: null, b: null, layerA: null, layerB: null,
    features: null, groups: {}, opacity: 0.5, swipe: 0.5, records: new Map(), poll: null,
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

  // --- the map -------------------------------------------------------------------------------

  function tileOptions(pane) {
    const s = state.scene;
    return {
      tileSize: 256, zoomOffset: s.zmax, minZoom: -s.zmax, maxZoom: 3, minNativeZoom: -s.zmax,
      maxNativeZoom: 0, noWrap: true, pane, keepBuffer: 1,
      bounds: L.latLngBounds([[-s.height, 0], [0, s.width]]),
    };
  }

  function buildMap() {
    const s = state.scene;
    if (state.map) state.map.remove();
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
    state.a = state.b = state.layerA = state.layerB = state.features = null;
    updateClip();
  }

  function showCursor(latlng) {
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
    const layer = L.tileLayer(record.tiles, tileOptions(pane));
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
    let data;
    try { data = await api(record.geojson); } catch (e) { setText("error", e.message); return; }
    if (state.a !== record) return;
    for (const group of Object.values(state.groups)) state.map.removeLayer(group);
    const groups = { centres: L.layerGroup(), regions: L.layerGroup(), annotations: L.layerGroup() };
    const list = $("centres");
    list.innerHTML = "";
    for (const feature of data.features) {
      const p = feature.properties;
      if (p.kind === "centre") {
        const where = L.latLng(-(p.row + 0.5), p.col + 0.5);
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
        const layer = L.geoJSON(feature, { coordsToLatLng: toLatLng, style });
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

  async function ask(sentence) {
    const t0 = performance.now();
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

  async function openMap(id) {  // a history entry or a run folder's case
    const t0 = performance.now();
    setText("error", "");
    if (state.info.mode === "scenes") { await ask(state.records.get(id).sentence); return; }
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
    if (state.info.mode === "scenes") records.reverse();  // newest sentence first; cases in order
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
    $("sentence").disabled = $("go").disabled = !ready || state.info.mode !== "scenes";
    if (s.status === "error") {
      setText("status-text", `cannot embed this scene: ${s.error}`);
    } else if (!ready) {
      const p = s.progress;
      setText("status-text", p.total ? `${p.what}: ${p.done} / ${p.total} batches` : `${s.status}…`);
      $("status-bar").max = p.total || 1;
      $("status-bar").value = p.done || 0;
      state.poll = setTimeout(refreshScene, 400);
    } else if (state.info.mode === "scenes") {
      $("sentence").focus();
    }
    document.body.dataset.status = s.status;
  }

  // --- wiring --------------------------------------------------------------------------------

  async function main() {
    const info = await api("/api/info");
    state.info = info;
    const select = $("scene");
    for (const s of info.scenes) select.add(new Option(`${s.name}`, s.id));
    select.onchange = () => selectScene(select.value);
    $("scene-box").querySelector("label").hidden = select.hidden = info.scenes.length < 2;
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
      setText("about", `${info.encoder} · method ${info.method.name}`);
    }
    $("ask").onsubmit = (e) => {
      e.preventDefault();
      const sentence = $("sentence").value.trim();
      if (!sentence) { setText("error", "type a sentence first"); return; }
      ask(sentence);
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
    await selectScene(info.scenes[0].id);
  }

  main().catch((e) => setText("error", e.message));
})();
