// Progressive enhancements shared by every store page. Each page works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // The currency switcher applies as soon as a currency is picked.
  document.querySelectorAll("[data-auto-submit]").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (form.requestSubmit) {
        form.requestSubmit(); // fires "submit", so a page script may handle it in place
      } else {
        form.submit();
      }
    });
  });
})();
