"use strict";
// The package page: turns its sections into tabs and shows the option fields
// of the chosen provider instance's plugin. Without this script every
// section stays visible, one after the other, and the form works the same.
(function () {
  function setUpTabs(root) {
    const tablist = root.querySelector("[role=tablist]");
    const tabs = Array.from(tablist.querySelectorAll("[role=tab]"));
    const panels = tabs.map((tab) => document.getElementById(tab.getAttribute("aria-controls")));

    function select(tab) {
      tabs.forEach((other, index) => {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        panels[index].hidden = !selected;
      });
      // Reloading the page (or sharing its address) reopens the same tab.
      history.replaceState(null, "", "#" + tab.dataset.tab);
    }

    tablist.addEventListener("click", (event) => {
      const tab = event.target.closest("[role=tab]");
      if (tab) {
        select(tab);
      }
    });
    // Arrow keys, Home and End move between tabs; Enter and Space open the
    // focused one (the tabs are buttons, so those keys click them).
    tablist.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(event.target.closest("[role=tab]"));
      const moves = {ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1};
      if (index === -1 || !(event.key in moves)) {
        return;
      }
      event.preventDefault();
      tabs[(moves[event.key] + tabs.length) % tabs.length].focus();
    });

    panels.forEach((panel, index) => {
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", tabs[index].id);
    });
    root.classList.add("is-enhanced");
    tablist.hidden = false;

    // A tab holding a validation error opens first, then the one in the address.
    const withError = tabs.find((tab) => tab.hasAttribute("data-has-errors"));
    const fromAddress = tabs.find((tab) => "#" + tab.dataset.tab === window.location.hash);
    select(withError || fromAddress || tabs[0]);
  }

  function setUpPluginOptions() {
    const select = document.getElementById("id_provider_instance");
    const map = document.getElementById("provider-instance-plugins");
    if (!select || !map) {
      return;
    }
    const pluginOf = JSON.parse(map.textContent);
    const sections = document.querySelectorAll("[data-plugin-options]");
    function showChosenPlugin() {
      const key = pluginOf[select.value] || "";
      sections.forEach((section) => {
        section.hidden = section.dataset.pluginOptions !== key;
      });
    }
    select.addEventListener("change", showChosenPlugin);
    showChosenPlugin();
  }

  document.querySelectorAll("[data-package-tabs]").forEach(setUpTabs);
  setUpPluginOptions();
})();
