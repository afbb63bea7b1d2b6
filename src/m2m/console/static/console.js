// Small helpers for the console; every page works without them.
"use strict";

// Live request progress: poll the small JSON endpoint until the request has finished, then
// reload once so the per-device results and callback attempts are shown.
function followProgress(section) {
  const url = section.dataset.progressUrl;
  const set = (id, value) => {
    const element = document.getElementById(id);
    if (element && value !== undefined) element.textContent = String(value);
  };
  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const progress = await response.json();
        set("done-count", progress.done);
        set("success-count", progress.succeeded);
        set("failure-count", progress.failed);
        const bar = document.getElementById("progress-bar");
        if (bar && progress.done !== undefined) bar.value = progress.done;
        if (progress.finished) {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // The server may be restarting: try again at the next tick.
    }
    window.setTimeout(poll, 700);
  }
  window.setTimeout(poll, 300);
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("progress");
  if (section && section.dataset.finished === "false") followProgress(section);

  for (const box of document.querySelectorAll("[data-select-all]")) {
    box.addEventListener("change", () => {
      for (const item of box.closest("form").querySelectorAll('input[name="sim"]')) item.checked = box.checked;
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const secret = button.parentElement.querySelector("[data-secret]");
      try {
        await navigator.clipboard.writeText(secret.textContent);
        button.textContent = "Copied";
      } catch (error) {
        window.getSelection().selectAllChildren(secret);
      }
    });
  }
});
