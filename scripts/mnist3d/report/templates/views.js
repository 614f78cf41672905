/* Rotatable 3D views of digits: each [data-views] block becomes a canvas that a drag turns, the wheel
   zooms and a double click resets, with a button per digit. The digits come from the views file of
   the figure above it (mnist3d.plots.views, JSON in the page); that figure stays for readers
   without scripts. A small canvas point cloud rather than plotly: the same turning and zooming for
   a few kB, where plotly's library alone would add 4.8 MB to every report. Each event redraws at
   once, so what the reader (or a test) sees after an event is already drawn. */
(function () {
  "use strict";
  var EDGE = 16, HALF = (EDGE - 1) / 2;
  var AZIMUTH = -22, ELEVATION = 14;  /* degrees: the static figure's view (mnist3d.plots.digits) */
  var DISTANCE = 70;  /* of the eye from the centre, in cells: a little perspective for depth */
  /* YlGnBu from 0.25 to 1, as the static figure's colour map: denser cells darker. */
  var RAMP = [[199, 233, 180], [127, 205, 187], [65, 182, 196], [29, 145, 192], [34, 94, 168], [37, 52, 148], [8, 29, 88]];

  function decode(text) {
    var raw = atob(text), points = [];
    for (var index = 0; index < raw.length; index++) {
      var value = raw.charCodeAt(index);  /* flat index x + 16y + 256z */
      if (value) {
        points.push([index % EDGE - HALF, Math.floor(index / EDGE) % EDGE - HALF, Math.floor(index / (EDGE * EDGE)) - HALF, value / 255]);
      }
    }
    return points;
  }

  function colour(density, shade, alpha) {
    var t = (0.35 + 0.6 * density - 0.25) / 0.75 * (RAMP.length - 1);
    var low = Math.min(Math.floor(t), RAMP.length - 2), share = t - low, rgb = [];
    for (var channel = 0; channel < 3; channel++) {
      rgb.push(Math.round((RAMP[low][channel] * (1 - share) + RAMP[low + 1][channel] * share) * shade));
    }
    return "rgba(" + rgb.join(",") + "," + alpha.toFixed(3) + ")";
  }

  function Viewer(root, data) {
    var canvas = root.querySelector("canvas"), caption = root.querySelector(".viewer-caption");
    var picker = root.querySelector(".viewer-picker"), context = canvas.getContext("2d");
    var views = data.views.map(function (view) { return {label: view.label, group: view.group, points: decode(view.cells)}; });
    var state = {view: 0, azimuth: AZIMUTH, elevation: ELEVATION, zoom: 1}, drag = null;
    var ratio = window.devicePixelRatio || 1, size = canvas.width;
    canvas.width = canvas.height = Math.round(size * ratio);
    canvas.style.width = canvas.style.height = size + "px";

    function project(point, trig) {
      /* Turn about the vertical (z) axis, then tilt: right, up and towards the eye. */
      var right = -point[0] * trig.sa + point[1] * trig.ca, toward = point[0] * trig.ca + point[1] * trig.sa;
      var up = point[2] * trig.ce - toward * trig.se, depth = toward * trig.ce + point[2] * trig.se;
      var scale = trig.scale * DISTANCE / (DISTANCE - depth);
      return {x: trig.cx + right * scale, y: trig.cy - up * scale, depth: depth, scale: scale};
    }

    function draw() {
      var a = state.azimuth * Math.PI / 180, e = state.elevation * Math.PI / 180, pixels = canvas.width;
      var trig = {sa: Math.sin(a), ca: Math.cos(a), se: Math.sin(e), ce: Math.cos(e),
                  cx: pixels / 2, cy: pixels / 2, scale: pixels / (EDGE * 1.75) * state.zoom};
      context.clearRect(0, 0, pixels, pixels);
      context.fillStyle = "#f6f7f8";
      context.fillRect(0, 0, pixels, pixels);
      /* The grid's box, for orientation. */
      context.strokeStyle = "#c9ced3";
      context.lineWidth = ratio;
      var corner = EDGE / 2, corners = [];
      for (var c = 0; c < 8; c++) {
        corners.push(project([(c & 1 ? 1 : -1) * corner, (c & 2 ? 1 : -1) * corner, (c & 4 ? 1 : -1) * corner], trig));
      }
      [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7], [0, 4], [1, 5], [2, 6], [3, 7]].forEach(function (edge) {
        context.beginPath();
        context.moveTo(corners[edge[0]].x, corners[edge[0]].y);
        context.lineTo(corners[edge[1]].x, corners[edge[1]].y);
        context.stroke();
      });
      var points = views[state.view].points.map(function (point) {
        var shown = project(point, trig);
        shown.density = point[3];
        return shown;
      });
      points.sort(function (p, q) { return p.depth - q.depth; });  /* far cells first */
      context.strokeStyle = "rgba(26, 38, 77, 0.3)";
      context.lineWidth = 0.5 * ratio;
      points.forEach(function (point) {
        var near = Math.max(0, Math.min(1, (point.depth + EDGE) / (2 * EDGE)));
        var side = point.scale * 1.02;
        context.fillStyle = colour(point.density, 0.7 + 0.3 * near, 0.45 + 0.5 * point.density);
        context.fillRect(point.x - side / 2, point.y - side / 2, side, side);
        context.strokeRect(point.x - side / 2, point.y - side / 2, side, side);  /* cell edges, as the figure's */
      });
      canvas.setAttribute("data-view", [state.view, state.azimuth.toFixed(1), state.elevation.toFixed(1), state.zoom.toFixed(2)].join(" "));
    }

    function show(index) {
      state.view = index;
      caption.textContent = (views[index].group ? views[index].group + ": " : "") + views[index].label.replace(/\n/g, ", ");
      Array.prototype.forEach.call(picker.querySelectorAll("button"), function (button, at) {
        button.setAttribute("aria-pressed", at === index ? "true" : "false");
      });
      draw();
    }

    function reset() {
      state.azimuth = AZIMUTH;
      state.elevation = ELEVATION;
      state.zoom = 1;
      draw();
    }

    function turn(dx, dy) {
      state.azimuth = (state.azimuth - dx * 0.5 + 540) % 360 - 180;
      state.elevation = Math.max(-89, Math.min(89, state.elevation + dy * 0.5));
      draw();
    }

    function zoom(factor) {
      state.zoom = Math.max(0.4, Math.min(6, state.zoom * factor));
      draw();
    }

    var group = null;
    views.forEach(function (view, index) {
      if (view.group && view.group !== group) {
        group = view.group;
        var heading = document.createElement("div");
        heading.className = "viewer-group";
        heading.textContent = group;
        picker.appendChild(heading);
      }
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = view.label.split("\n")[0];
      button.title = view.label.replace(/\n/g, ", ");
      button.addEventListener("click", function () { show(index); });
      picker.appendChild(button);
    });
    /* Listened to on the window while dragging, so a drag that leaves the canvas keeps turning it. */
    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      drag = {x: event.clientX, y: event.clientY};
    });
    window.addEventListener("pointermove", function (event) {
      if (!drag) return;
      turn(event.clientX - drag.x, event.clientY - drag.y);
      drag = {x: event.clientX, y: event.clientY};
    });
    window.addEventListener("pointerup", function () { drag = null; });
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      zoom(Math.exp(-event.deltaY * 0.0015));
    }, {passive: false});
    canvas.addEventListener("dblclick", reset);
    canvas.addEventListener("keydown", function (event) {
      var keys = {ArrowLeft: [-10, 0], ArrowRight: [10, 0], ArrowUp: [0, -10], ArrowDown: [0, 10]};
      if (keys[event.key]) turn(keys[event.key][0], keys[event.key][1]);
      else if (event.key === "+" || event.key === "=") zoom(1.2);
      else if (event.key === "-") zoom(1 / 1.2);
      else if (event.key === "0") reset();
      else return;
      event.preventDefault();
    });
    root.hidden = false;
    show(0);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-views]"), function (root) {
    var data = JSON.parse(document.getElementById(root.getAttribute("data-views")).textContent);
    if (data.views && data.views.length) Viewer(root, data);
  });
})();
