// Package page: switch pricing option and currency in place.
// Without this script the page does the same through ?price= and the currency form.
(function () {
  "use strict";
  var dataElement = document.getElementById("package-data");
  var form = document.querySelector("[data-order-form]");
  if (!dataElement || !form) {
    return;
  }
  var data = JSON.parse(dataElement.textContent);
  var currency = data.currency;
  var pricesById = {};
  data.prices.forEach(function (price) {
    pricesById[String(price.id)] = price;
  });
  var variantsBox = form.querySelector("[data-variants]");
  var orderButton = form.querySelector("[data-order-button]");
  var reasonElement = form.querySelector("[data-order-reason]");

  function selectedPrice() {
    var checked = form.querySelector('input[name="price"]:checked');
    return checked ? pricesById[checked.value] : null;
  }

  function chosenOptions() {
    var chosen = {};
    variantsBox.querySelectorAll("select, input").forEach(function (field) {
      var code = field.name.replace(/^variant_/, "");
      chosen[code] = chosen[code] || [];
      if (field.tagName === "SELECT") {
        chosen[code].push(field.value);
      } else if (field.checked) {
        chosen[code].push(field.value);
      }
    });
    return chosen;
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function renderPrices() {
    data.prices.forEach(function (price) {
      var row = form.querySelector('[data-price-option="' + price.id + '"]');
      var info = price.currencies[currency];
      if (!row || !info) {
        return;
      }
      row.querySelector("[data-price-text]").textContent = info.price;
      row.querySelector("[data-price-fees]").textContent = info.fees;
      row.querySelector('input[name="price"]').disabled = !info.available;
    });
    document.querySelectorAll("[data-currency-code]").forEach(function (node) {
      node.textContent = currency;
    });
    document.querySelectorAll("[data-scaling-price]").forEach(function (node) {
      var prices = data.scaling[node.getAttribute("data-scaling-price")];
      if (prices && prices[currency]) {
        node.textContent = prices[currency];
      }
    });
  }

  // Only options with a variant price named like the chosen pricing option,
  // in this currency, are offered: the same rule the server applies.
  function renderVariants() {
    var price = selectedPrice();
    var previous = chosenOptions();
    variantsBox.textContent = "";
    if (!price) {
      return;
    }
    data.variants.forEach(function (variant) {
      var choices = variant.options.filter(function (option) {
        return option.labels[price.name] && option.labels[price.name][currency];
      });
      if (!choices.length) {
        return;
      }
      var wanted = previous[variant.code] || [];
      var fieldName = "variant_" + variant.code;
      var box;
      if (variant.type === "select") {
        box = element("div", { class: "field", "data-variant": variant.code });
        var id = "variant-" + variant.code;
        box.appendChild(element("label", { for: id }, variant.name));
        var select = element("select", { id: id, name: fieldName });
        choices.forEach(function (option) {
          var label = option.name + " (" + option.labels[price.name][currency] + ")";
          var node = element("option", { value: String(option.id) }, label);
          if (wanted.indexOf(String(option.id)) !== -1) {
            node.selected = true;
          }
          select.appendChild(node);
        });
        box.appendChild(select);
      } else {
        box = element("fieldset", { class: "field", "data-variant": variant.code });
        box.appendChild(element("legend", {}, variant.name));
        var type = variant.type === data.checkbox ? "checkbox" : "radio";
        var anyChecked = false;
        choices.forEach(function (option) {
          var choiceId = "variant-" + variant.code + "-" + option.id;
          var row = element("div", { class: "choice" });
          var input = element("input", {
            type: type,
            id: choiceId,
            name: fieldName,
            value: String(option.id),
          });
          if (wanted.indexOf(String(option.id)) !== -1) {
            input.checked = true;
            anyChecked = true;
          }
          var label = element("label", { for: choiceId }, option.name + " ");
          label.appendChild(
            element("span", { class: "muted" }, "(" + option.labels[price.name][currency] + ")")
          );
          row.appendChild(input);
          row.appendChild(label);
          box.appendChild(row);
        });
        if (type === "radio" && !anyChecked) {
          box.querySelector("input").checked = true;
        }
      }
      variantsBox.appendChild(box);
    });
  }

  function renderOrderButton() {
    var price = selectedPrice();
    var info = price ? price.currencies[currency] : null;
    var orderable = info ? info.orderable : false;
    var reason = info ? info.reason : data.fallback_reason;
    // Stock is not in the (cached) script data: the server marks a sold-out button.
    var soldOut = orderButton.getAttribute("data-sold-out");
    if (orderable && soldOut !== null) {
      orderable = false;
      reason = soldOut;
    }
    orderButton.disabled = !orderable;
    reasonElement.textContent = orderable ? "" : reason;
    if (orderable) {
      orderButton.removeAttribute("aria-describedby");
    } else {
      orderButton.setAttribute("aria-describedby", reasonElement.id);
    }
  }

  function render() {
    renderPrices();
    renderVariants();
    renderOrderButton();
  }

  form.addEventListener("change", function (event) {
    if (event.target.name !== "price") {
      return;
    }
    render();
    // Keep the address shareable and reload-safe: the server reads the same parameter.
    var url = new URL(window.location.href);
    url.searchParams.set("price", event.target.value);
    window.history.replaceState(null, "", url);
  });

  var currencyForm = document.querySelector("[data-currency-form]");
  if (currencyForm) {
    currencyForm.addEventListener("submit", function (event) {
      var code = currencyForm.elements.currency.value;
      if (!data.prices.length || !data.prices[0].currencies[code]) {
        return; // nothing to show in place: let the form post as usual
      }
      event.preventDefault();
      fetch(currencyForm.action, {
        method: "POST",
        body: new FormData(currencyForm),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("currency not saved");
          }
          currency = code;
          render();
          document.documentElement.dataset.currency = code;
        })
        .catch(function () {
          currencyForm.submit();
        });
    });
  }
})();
