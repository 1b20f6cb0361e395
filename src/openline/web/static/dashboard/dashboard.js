/* The dashboard's own script (no inline scripts: the pages' CSP is script-src 'self').
 *
 * - the reply box's live segment counter: the same count as openline.encoding.count_segments
 *   (GSM-7 or UCS-2, 160/153 or 70/67 units, a character never split between parts); the server's
 *   POST /inbox/count answers the same question when typing pauses;
 * - saved replies: choosing one fills the reply box at once (without this file, "Use" loads the page
 *   again with ?saved=<name>, which fills it);
 * - the conversation list's live update: an EventSource on GET /inbox/events; on the first page a
 *   "newer" event reloads the list in place (htmx), on older pages it shows a link to the newest;
 * - htmx: error answers (409, 422) carry the form with its message, so they are swapped in too, and
 *   the focused field keeps the focus when its form is replaced;
 * - times shown in the reader's own time zone (the server writes UTC).
 *
 * Everything works without this file; it only makes pages quicker to use.
 */
(function () {
  "use strict";

  // GSM 03.38: the basic table (one septet a character) and the extension table (two).
  var GSM_BASIC = "\n\r !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz\u00a1\u00a3\u00a4\u00a5\u00a7\u00bf\u00c4\u00c5\u00c6\u00c7\u00c9\u00d1\u00d6\u00d8\u00dc\u00df\u00e0\u00e4\u00e5\u00e6\u00e8\u00e9\u00ec\u00f1\u00f2\u00f6\u00f8\u00f9\u00fc\u0393\u0394\u0398\u039b\u039e\u03a0\u03a3\u03a6\u03a8\u03a9";
  var GSM_EXTENSION = "\f[\\]^{|}~\u20ac";

  function isGsm(text) {
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      if (GSM_BASIC.indexOf(ch) < 0 && GSM_EXTENSION.indexOf(ch) < 0) {
        return false;
      }
    }
    return true;
  }

  // The characters of a text, as carriers keep them whole: grapheme clusters where the browser knows
  // them, else code points with CR LF kept together.
  function graphemes(text) {
    if (typeof Intl !== "undefined" && Intl.Segmenter) {
      var out = [];
      var segments = new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text);
      var iterator = segments[Symbol.iterator]();
      for (var step = iterator.next(); !step.done; step = iterator.next()) {
        out.push(step.value.segment);
      }
      return out;
    }
    var points = Array.from(text);
    var joined = [];
    for (var k = 0; k < points.length; k++) {
      if (points[k] === "\n" && joined.length && joined[joined.length - 1] === "\r") {
        joined[joined.length - 1] = "\r\n";
      } else {
        joined.push(points[k]);
      }
    }
    return joined;
  }

  // Parts of `size` units for atoms of the given weights, packed greedily; an atom larger than a part
  // goes alone.
  function pack(weights, size) {
    var parts = 0;
    var used = 0;
    for (var i = 0; i < weights.length; i++) {
      var w = weights[i];
      if (used > 0 && used + w > size) {
        parts += 1;
        used = 0;
      }
      used += w;
      if (used >= size) {
        parts += 1;
        used = 0;
      }
    }
    return parts + (used > 0 ? 1 : 0);
  }

  function countSegments(text) {
    if (isGsm(text)) {
      var atoms = [];
      var units = 0;
      for (var i = 0; i < text.length; i++) {
        var ch = text.charAt(i);
        var w = GSM_EXTENSION.indexOf(ch) >= 0 ? 2 : 1;
        units += w;
        if (ch === "\n" && i > 0 && text.charAt(i - 1) === "\r") {
          atoms[atoms.length - 1] += 1; // CR LF stays together
        } else {
          atoms.push(w);
        }
      }
      return { encoding: "GSM-7", units: units, segments: units <= 160 ? 1 : pack(atoms, 153), single: 160, part: 153 };
    }
    var total = text.length; // UTF-16 code units
    var segments = 1;
    if (total > 70) {
      segments = pack(graphemes(text).map(function (g) { return g.length; }), 67);
    }
    return { encoding: "UCS-2", units: total, segments: segments, single: 70, part: 67 };
  }

  function smartEncode(text, map) {
    if (!map) {
      return text;
    }
    var out = "";
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      out += Object.prototype.hasOwnProperty.call(map, ch) ? map[ch] : ch;
    }
    return out;
  }

  // "1 segment · GSM-7 · 12/160", as openline.web.dashboard.inbox.count_label writes it.
  function countLabel(text, map) {
    var count = countSegments(smartEncode(text.trim(), map));
    var capacity = count.segments === 1 ? count.single : count.segments * count.part;
    var word = count.segments === 1 ? "segment" : "segments";
    return count.segments + " " + word + " \u00b7 " + count.encoding + " \u00b7 " + count.units + "/" + capacity;
  }

  if (typeof module !== "undefined" && module.exports) {
    module.exports = { countSegments: countSegments, countLabel: countLabel }; // for the tests (Node)
  }
  if (typeof document === "undefined") {
    return;
  }

  // -- the reply counter ------------------------------------------------------------------------

  function updateCount(field) {
    var target = document.querySelector(field.getAttribute("data-count"));
    if (!target) {
      return;
    }
    var map = null;
    var smart = field.getAttribute("data-smart");
    if (smart) {
      try {
        map = JSON.parse(smart);
      } catch (e) {
        map = null;
      }
    }
    target.textContent = countLabel(field.value, map);
  }

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (field && field.matches && field.matches("textarea[data-count]")) {
      updateCount(field);
    }
  });

  // -- saved replies ----------------------------------------------------------------------------

  // Put the chosen saved reply in the box its select names; nothing is sent. The input event lets the
  // counter (here and on the server) count it like typed text.
  function fillSaved(select) {
    var option = select.options[select.selectedIndex];
    var box = document.querySelector(select.getAttribute("data-fill"));
    if (!option || !option.value || !box || !option.hasAttribute("data-text")) {
      return false;
    }
    box.value = option.getAttribute("data-text");
    box.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field && field.matches && field.matches("select[data-fill]")) {
      fillSaved(field);
    }
  });

  document.addEventListener("submit", function (event) {
    var select = event.target && event.target.querySelector ? event.target.querySelector("select[data-fill]") : null;
    if (select && fillSaved(select)) {
      event.preventDefault(); // filled here: no need to load the page again
      var box = document.querySelector(select.getAttribute("data-fill"));
      if (box) {
        box.focus();
      }
    }
  });

  // -- the live list ----------------------------------------------------------------------------

  var source = null;
  var sourceFor = null;

  function listen() {
    var list = document.querySelector("[data-events]");
    var url = list ? list.getAttribute("data-events") : null;
    if (url === sourceFor) {
      return;
    }
    if (source) {
      source.close();
    }
    source = null;
    sourceFor = url;
    if (!url || typeof EventSource === "undefined") {
      return;
    }
    var since = list.getAttribute("data-since");
    source = new EventSource(since ? url + "&since=" + encodeURIComponent(since) : url);
    source.addEventListener("newer", function () {
      var current = document.querySelector("[data-events]");
      if (!current) {
        return;
      }
      var refresh = current.getAttribute("data-refresh");
      if (refresh && window.htmx) {
        window.htmx.ajax("GET", refresh, { target: "#conversations", swap: "outerHTML" });
        return;
      }
      var notice = current.querySelector("[data-newer]");
      if (notice) {
        notice.hidden = false;
      }
    });
  }

  // -- htmx -------------------------------------------------------------------------------------

  var focused = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 409 || status === 422) {
      event.detail.shouldSwap = true; // the answer is the form again, with what went wrong
      event.detail.isError = false;
    }
    var active = document.activeElement;
    focused = active && active.id ? active.id : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (focused) {
      var again = document.getElementById(focused);
      if (again && document.activeElement !== again) {
        again.focus();
      }
      focused = null;
    }
  });

  // -- local times ------------------------------------------------------------------------------

  function localTimes(root) {
    if (typeof Intl === "undefined" || !Intl.DateTimeFormat) {
      return;
    }
    var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        times[i].title = times[i].textContent;
        times[i].textContent = format.format(when);
      }
    }
  }

  function ready(root) {
    localTimes(root);
    var fields = root.querySelectorAll("textarea[data-count]");
    for (var i = 0; i < fields.length; i++) {
      updateCount(fields[i]);
    }
    listen();
  }

  document.addEventListener("htmx:load", function (event) {
    ready(event.target);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { ready(document); });
  } else {
    ready(document);
  }
})();
