// JupyterLab switches theme by flipping attributes on <body> and then loading the theme's CSS:
// colours read at the flip are still the old theme's. Call back at the flip and a few times after,
// until the new variables have landed (the chart views' shim in charts.py does the same).

/** When to look again after a theme flip, in ms. */
export const THEME_SETTLE_MS = [0, 50, 200, 600, 1500];

/** Call `callback` after every theme change, until its CSS is in; returns a function that stops. */
export function onThemeChange(callback: () => void): () => void {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const observer = new MutationObserver(() => {
    for (const ms of THEME_SETTLE_MS) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        callback();
      }, ms);
      timers.add(timer);
    }
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  return () => {
    observer.disconnect();
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };
}
