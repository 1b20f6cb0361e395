// The broadcast composer's small conveniences. The page works without them: the server checks
// everything, and the live counters are htmx requests, not this file.
(function () {
  "use strict";

  function byId(id) {
    return document.getElementById(id);
  }

  // "In the time zone" starts as the browser's own zone rather than UTC.
  var zone = byId("at_zone");
  if (zone && !zone.value && window.Intl) {
    try {
      zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (ignored) {
      // An old browser: the field stays empty, which the server reads as UTC.
    }
  }

  // Filling in a date or a time chooses the schedule it belongs to, so a date typed under
  // "At a moment" is not silently ignored because "As soon as I press Send" was still checked.
  function chooses(radioId, fieldIds) {
    var radio = byId(radioId);
    if (!radio) {
      return;
    }
    fieldIds.forEach(function (fieldId) {
      var field = byId(fieldId);
      if (field) {
        field.addEventListener("input", function () {
          if (field.value) {
            radio.checked = true;
          }
        });
      }
    });
  }

  chooses("when-at", ["at", "at_zone"]);
  chooses("when-local", ["local_date", "local_time"]);
})();
