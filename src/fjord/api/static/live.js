// The app page follows its deployments without a reload: it polls the server-rendered
// fragment at data-live-url and swaps each [data-live] element by id (forms the user types
// into are outside them; an element whose markup did not change is left alone, so a choice
// made in its selects survives). Every second while a deployment runs, every two seconds
// otherwise (news such as a failure in a cluster shows within about two seconds), every ten
// while the tab is hidden; stops when the session is gone.
"use strict";
(function () {
  const root = document.querySelector("[data-live-url]");
  if (!root) {
    return;
  }
  const url = root.getAttribute("data-live-url");
  let last = "";

  function swap(text) {
    const fresh = new DOMParser().parseFromString(text, "text/html");
    for (const element of fresh.querySelectorAll("[data-live][id]")) {
      const old = document.getElementById(element.id);
      if (old && old.outerHTML !== element.outerHTML) {
        old.replaceWith(document.importNode(element, true));
      }
    }
  }

  function running() {
    const progress = document.getElementById("live-progress");
    return progress !== null && progress.getAttribute("data-running") === "true";
  }

  function schedule() {
    const delay = document.hidden ? 10000 : running() ? 1000 : 2000;
    setTimeout(poll, delay);
  }

  async function poll() {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", redirect: "error" });
    } catch (error) {
      schedule(); // the server restarts or the network blips: try again
      return;
    }
    if (response.status === 401 || response.status === 403 || response.status === 404) {
      return; // signed out or gone: a reload shows why
    }
    if (response.ok) {
      const text = await response.text();
      if (text !== last) {
        last = text;
        swap(text);
      }
    }
    schedule();
  }

  schedule();
})();
