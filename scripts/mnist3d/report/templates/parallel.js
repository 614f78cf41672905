/* Parallel coordinates of each sweep, drawn as SVG in place of its PNG: the same lines (back to
   front: the rest, the ties, the best), and on hover an entry's name, values, accuracy and verdict. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var STROKE = {other: ["#9a9a9a", 1.2], tied: ["#6fae8c", 2], best: ["#2b8a5a", 3.2]};

  function element(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, words, attributes) {
    var node = element("text", Object.assign({x: x, y: y}, attributes || {}), parent);
    node.textContent = words;
    return node;
  }

  function chart(box, data) {
    var fields = data.fields, lines = data.lines;
    var width = Math.max(box.clientWidth || 0, 480), height = 330;
    var left = 110, right = 70, top = 18, bottom = 44;
    var svg = element("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
                              "aria-label": "parallel coordinates: " + lines.length + " entries"}, box);
    var count = fields.length + 1, step = (width - left - right) / Math.max(count - 1, 1);
    var means = lines.map(function (line) { return line.mean; });
    var low = Math.min.apply(null, means), high = Math.max.apply(null, means);
    if (high - low < 1e-9) { low -= 0.01; high += 0.01; }
    function y(share) { return top + (1 - share) * (height - top - bottom); }
    function position(field, value) {
      var values = fields[field].values;
      return values.length > 1 ? values.indexOf(value) / (values.length - 1) : 0.5;
    }
    fields.forEach(function (field, index) {
      var x = left + index * step;
      element("line", {x1: x, x2: x, y1: y(0), y2: y(1), stroke: "#222", "stroke-width": 1}, svg);
      field.values.forEach(function (value) {
        text(svg, x - 6, y(position(index, value)) + 4, value, {"text-anchor": "end", "font-size": 12});
      });
      text(svg, x, height - 14, field.name, {"text-anchor": "middle", "font-size": 12.5, "font-weight": 600});
    });
    var last = left + fields.length * step;
    element("line", {x1: last, x2: last, y1: y(0), y2: y(1), stroke: "#222", "stroke-width": 1}, svg);
    for (var tick = 0; tick <= 4; tick++) {
      text(svg, last + 6, y(tick / 4) + 4, (low + tick / 4 * (high - low)).toFixed(3), {"font-size": 11.5, fill: "#5c6670"});
    }
    text(svg, last, height - 14, "mean test accuracy", {"text-anchor": "middle", "font-size": 12.5, "font-weight": 600});
    var tip = box.querySelector(".parallel-tip");
    lines.forEach(function (line) {
      var points = line.values.map(function (value, index) {
        return (left + index * step).toFixed(1) + "," + y(position(index, value)).toFixed(1);
      });
      points.push(last.toFixed(1) + "," + y((line.mean - low) / (high - low)).toFixed(1));
      var group = element("g", {"class": "line " + line.layer, "data-entry": line.entry}, svg);
      element("polyline", {points: points.join(" "), fill: "none", stroke: STROKE[line.layer][0],
                           "stroke-width": STROKE[line.layer][1], "stroke-linejoin": "round"}, group);
      /* A wide transparent copy to hover: the drawn line is too thin to find with the mouse. */
      element("polyline", {points: points.join(" "), fill: "none", stroke: "transparent", "stroke-width": 10,
                           "pointer-events": "stroke"}, group);
      group.addEventListener("pointerenter", function (event) {
        box.classList.add("hovering");
        group.classList.add("hover");
        svg.appendChild(group);  /* on top while hovered */
        tip.textContent = "";
        var name = document.createElement("strong");
        name.textContent = line.entry;
        tip.appendChild(name);
        fields.forEach(function (field, index) {
          tip.appendChild(document.createElement("br"));
          tip.appendChild(document.createTextNode(field.name + " = " + line.values[index]));
        });
        tip.appendChild(document.createElement("br"));
        tip.appendChild(document.createTextNode("mean test accuracy " + line.text));
        tip.appendChild(document.createElement("br"));
        tip.appendChild(document.createTextNode(line.verdict));
        tip.hidden = false;
        place(event);
      });
      group.addEventListener("pointermove", place);
      group.addEventListener("pointerleave", function () {
        box.classList.remove("hovering");
        group.classList.remove("hover");
        tip.hidden = true;
      });
    });
    function place(event) {
      var frame = box.getBoundingClientRect();
      tip.style.left = Math.min(event.clientX - frame.left + 14, width - 260) + "px";
      tip.style.top = (event.clientY - frame.top + 14) + "px";
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-parallel]"), function (box) {
    var data = JSON.parse(document.getElementById(box.getAttribute("data-parallel")).textContent);
    if (!data.lines.length) return;
    box.hidden = false;
    chart(box, data);
    var fallback = document.getElementById(box.getAttribute("data-fallback"));
    if (fallback) fallback.hidden = true;
  });
})();
