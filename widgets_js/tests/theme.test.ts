// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { onThemeChange, THEME_SETTLE_MS } from "../src/theme";

describe("theme changes", () => {
  afterEach(() => vi.useRealTimers());

  it("calls back at the flip and again until the theme's CSS has landed, and stops", async () => {
    vi.useFakeTimers();
    const seen: number[] = [];
    const stop = onThemeChange(() => seen.push(Date.now()));
    const start = Date.now();
    document.body.dataset.jpThemeName = "JupyterLab Dark";
    await Promise.resolve(); // mutation observers run as microtasks
    vi.advanceTimersByTime(2000);
    expect(seen.map((t) => t - start)).toEqual(THEME_SETTLE_MS);
    stop();
    document.body.dataset.jpThemeName = "JupyterLab Light";
    await Promise.resolve();
    vi.advanceTimersByTime(2000);
    expect(seen).toHaveLength(THEME_SETTLE_MS.length);
  });
});
