// @vitest-environment jsdom
import type { AnyModel } from "@anywidget/types";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encode } from "../src/codecs";
import widget, {
  DEBOUNCE_MS,
  decodeLayouts,
  decodeValues,
  edgeAt,
  layoutAt,
  pointSize,
  stepIndex,
  type ProjectionViewModel,
} from "../src/projection_view";
import { categorical, luminance, parseColor, pointColors, ramp } from "../src/scatter/colors";
import {
  cameraFrom,
  cameraValues,
  HOME,
  MAX_ZOOM,
  EDGE,
  fit,
  frame,
  nearest,
  quantile,
  normalise,
  panBy,
  pointInPolygon,
  selectInPolygon,
  toScreen,
  toWorld,
  zoomAt,
} from "../src/scatter/geometry";
import { easeInOutCubic, interpolate, progress, Transition } from "../src/scatter/transition";
import { FakeModel } from "./fake_model";

/** [depth, N, 2]: point i at depth d sits at (i + 10 d, -i). */
function coords(depths: number, n: number) {
  const data = new Float32Array(depths * n * 2);
  for (let d = 0; d < depths; d++) {
    for (let i = 0; i < n; i++) {
      data[(d * n + i) * 2] = i + 10 * d;
      data[(d * n + i) * 2 + 1] = -i;
    }
  }
  return encode({ data, dtype: "float32", shape: [depths, n, 2] });
}

describe("buffers", () => {
  it("decodes [depth, N, 2] and frames every depth on its own", () => {
    const layouts = decodeLayouts(coords(3, 4))!;
    expect(layouts.count).toBe(3);
    expect(layouts.n).toBe(4);
    expect(layoutAt(layouts, 2)).toHaveLength(8);
    // Each depth fills the square (every point sets the frame: no outliers here), so a depth
    // that only moved right is drawn where the first one was.
    for (let d = 0; d < 3; d++) {
      const xy = layoutAt(layouts, d);
      expect(Math.max(...xy.map(Math.abs))).toBeCloseTo(0.92, 5);
      expect(Array.from(xy)).toEqual(Array.from(layoutAt(layouts, 0)));
    }
    expect(layouts.pinned).toEqual([0, 0, 0]);
    expect(Array.from(layouts.edge)).toEqual(new Array(12).fill(0));
  });

  it("frames a small cloud as large as a big one, and pins far outliers to the edge", () => {
    // depth 0: 1000 points in [-0.01, 0.01]² plus 3 at 100 (far outliers); depth 1: 1003 points
    // in [-50, 50]². The old single fit drew depth 0 as a dot at the centre.
    const n = 1003;
    const data = new Float32Array(2 * 2 * n);
    for (let i = 0; i < n; i++) {
      const u = ((i * 0.618034) % 1) * 2 - 1;
      const v = ((i * 0.414214) % 1) * 2 - 1;
      data.set(i < 1000 ? [0.01 * u, 0.01 * v] : [100, 100 - i], 2 * i);
      data.set([50 * u, 50 * v], 2 * (n + i));
    }
    const layouts = decodeLayouts(encode({ data, dtype: "float32", shape: [2, n, 2] }))!;
    expect(layouts.pinned).toEqual([3, 0]);
    for (let d = 0; d < 2; d++) {
      const xy = layoutAt(layouts, d);
      const edge = edgeAt(layouts, d);
      const xs = Array.from(xy.filter((_, j) => j % 2 === 0 && !edge[j >> 1])).sort((a, b) => a - b);
      // the middle 90 % of the points spans most of the square's side (2 world units)
      const bulk = (xs[Math.floor(0.95 * (xs.length - 1))] - xs[Math.floor(0.05 * (xs.length - 1))]) / 2;
      expect(bulk).toBeGreaterThan(0.75);
      expect(Math.max(...xy.map(Math.abs))).toBeLessThanOrEqual(EDGE + 1e-6);
    }
    // the outliers sit on the frame's edge, flagged, in their direction (up and right)
    const xy0 = layoutAt(layouts, 0);
    const edge0 = edgeAt(layouts, 0);
    for (let i = 1000; i < n; i++) {
      expect(edge0[i]).toBe(255);
      expect(Math.max(Math.abs(xy0[2 * i]), Math.abs(xy0[2 * i + 1]))).toBeCloseTo(EDGE, 5);
      expect(xy0[2 * i]).toBeGreaterThan(0);
    }
    expect(edge0.slice(0, 1000).every((f) => f === 0)).toBe(true);
  });

  it("frames a grid with one far point as projection_export.py does (same numbers)", () => {
    const grid = new Float32Array(2 * 101);
    for (let i = 0; i < 100; i++) grid.set([i % 10, Math.floor(i / 10)], 2 * i);
    grid.set([1000, 5], 200);
    const f = frame(grid);
    expect(f.cx).toBe(4.5);
    expect(f.cy).toBe(4.5);
    expect(f.scale).toBeCloseTo(0.92 / 4.5, 12);
    expect(f.robust).toBe(true);
    const edge = new Uint8Array(101);
    const world = normalise(grid, f, edge);
    expect(edge.reduce((a, b) => a + b, 0)).toBe(255);
    expect(edge[100]).toBe(255);
    expect(world[200]).toBeCloseTo(EDGE, 6);
    expect(world[201]).toBeCloseTo((EDGE * 0.5) / 995.5, 6);
  });

  it("lets every point set the frame when none is far from the bulk", () => {
    // a uniform square with a point a little out: not far from the bulk, so nothing is pinned
    const xy = new Float32Array(2 * 200);
    for (let i = 0; i < 200; i++) xy.set([i / 199, ((i * 37) % 200) / 199], 2 * i);
    xy.set([1.2, 0.5], 0);
    const f = frame(xy);
    expect(f.robust).toBeUndefined();
    expect(f).toEqual(fit(xy));
    const edge = new Uint8Array(200);
    normalise(xy, f, edge);
    expect(edge.every((e) => e === 0)).toBe(true);
    expect(quantile([1, 2, 3, 4, 5], 0.5)).toBe(3);
    expect(quantile([1, 2, 3, 4, 5], 0.98)).toBe(4);
    expect(quantile([1, 2, 3, 4, 5], 0.98, true)).toBe(5);
  });

  it("reads nothing from an empty payload and rejects a wrong shape", () => {
    expect(decodeLayouts({})).toBeNull();
    const flat = encode({ data: new Float32Array(6), dtype: "float32", shape: [3, 2] });
    expect(() => decodeLayouts(flat)).toThrow(/\[depth, N, 2\]/);
  });

  it("decodes per-point values of any dtype as float32 and checks their number", () => {
    const codes = encode({ data: new Uint32Array([0, 2, 1]), dtype: "uint32", shape: [3] });
    expect(Array.from(decodeValues(codes, 3)!)).toEqual([0, 2, 1]);
    expect(decodeValues({}, 3)).toBeNull();
    expect(() => decodeValues(codes, 4)).toThrow(/3 values for 4 points/);
  });
});

describe("transition", () => {
  it("eases from 0 to 1 and is symmetric", () => {
    expect(easeInOutCubic(0)).toBe(0);
    expect(easeInOutCubic(1)).toBe(1);
    expect(easeInOutCubic(0.5)).toBeCloseTo(0.5);
    expect(easeInOutCubic(0.25) + easeInOutCubic(0.75)).toBeCloseTo(1);
  });

  it("clamps progress, and a zero duration is done at once", () => {
    expect(progress(100, 50, 300)).toBe(0);
    expect(progress(100, 250, 300)).toBe(0.5);
    expect(progress(100, 900, 300)).toBe(1);
    expect(progress(100, 100, 0)).toBe(1);
  });

  it("interpolates element-wise and rejects mismatched lengths", () => {
    const from = new Float32Array([0, 10, -4]);
    const to = new Float32Array([2, 20, 4]);
    expect(Array.from(interpolate(from, to, 0.25))).toEqual([0.5, 12.5, -2]);
    expect(Array.from(interpolate(from, to, 0))).toEqual([0, 10, -4]);
    expect(Array.from(interpolate(from, to, 1))).toEqual([2, 20, 4]);
    expect(() => interpolate(from, new Float32Array(2), 0.5)).toThrow();
  });

  it("retargets mid-way from where the points are drawn, so they never jump", () => {
    const a = new Float32Array([0, 0]);
    const b = new Float32Array([10, 0]);
    const c = new Float32Array([10, 10]);
    const t = new Transition(a);
    t.retarget(b, 0, 100);
    expect(t.running(50)).toBe(true);
    const mid = t.positions(50);
    expect(mid[0]).toBeCloseTo(5);
    t.retarget(c, 50, 100);
    expect(Array.from(t.positions(50))).toEqual(Array.from(mid));
    expect(Array.from(t.positions(150))).toEqual([10, 10]);
    expect(t.running(150)).toBe(false);
    t.retarget(a, 200, 0); // instant
    expect(Array.from(t.positions(200))).toEqual([0, 0]);
  });
});

describe("geometry", () => {
  const v = { width: 400, height: 200 };

  it("round-trips screen and world, with zoom and pan", () => {
    let cam = zoomAt(HOME, v, 300, 50, 3);
    cam = panBy(cam, v, 17, -9);
    const [x, y] = toWorld(cam, v, 123, 45);
    const [sx, sy] = toScreen(cam, v, x, y);
    expect(sx).toBeCloseTo(123);
    expect(sy).toBeCloseTo(45);
    // At home the unit square is centred and fits the shorter side.
    expect(toScreen(HOME, v, 0, 0)).toEqual([200, 100]);
    expect(toScreen(HOME, v, 1, 1)).toEqual([300, 0]);
  });

  it("zooms about the pointer", () => {
    const before = toWorld(HOME, v, 310, 40);
    const after = toWorld(zoomAt(HOME, v, 310, 40, 2.5), v, 310, 40);
    expect(after[0]).toBeCloseTo(before[0]);
    expect(after[1]).toBeCloseTo(before[1]);
  });

  it("selects the points inside a lasso", () => {
    const square = [0, 0, 2, 0, 2, 2, 0, 2];
    expect(pointInPolygon(1, 1, square)).toBe(true);
    expect(pointInPolygon(3, 1, square)).toBe(false);
    const xy = new Float32Array([1, 1, 3, 1, 0.5, 1.5, -1, -1, 1.9, 0.1]);
    expect(selectInPolygon(xy, square)).toEqual([0, 2, 4]);
    expect(selectInPolygon(xy, [0, 0, 1, 1])).toEqual([]); // not a polygon
  });

  it("finds the nearest point within a radius", () => {
    const xy = new Float32Array([0, 0, 1, 0, 5, 5]);
    expect(nearest(xy, 0.9, 0.1, 0.5)).toBe(1);
    expect(nearest(xy, 3, 3, 0.5)).toBe(-1);
  });

  it("fits degenerate and non-finite input without NaN", () => {
    expect(fit(new Float32Array([2, 2, 2, 2]))).toEqual({ cx: 2, cy: 2, scale: 1 });
    const out = normalise(new Float32Array([0, 0, 4, 2, Number.NaN, 1]));
    expect(out[2]).toBeCloseTo(0.92);
  });

  it("reads a synced camera, clamping its zoom and refusing malformed ones", () => {
    const cam = { zoom: 3, panX: -0.5, panY: 0.25 };
    expect(cameraFrom(cameraValues(cam))).toEqual(cam);
    expect(cameraFrom([1e9, 0, 0]).zoom).toBe(MAX_ZOOM);
    for (const bad of [undefined, [], [1, 2], [1, Number.NaN, 0], "1,0,0"]) expect(cameraFrom(bad)).toBe(HOME);
  });
});

describe("colours", () => {
  it("parses the CSS colours JupyterLab themes use", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255]);
    expect(parseColor(" #111111 ")).toEqual([17, 17, 17]);
    expect(parseColor("rgb(40, 41, 42)")).toEqual([40, 41, 42]);
    expect(parseColor("nonsense", [1, 2, 3])).toEqual([1, 2, 3]);
  });

  it("keeps the ramp off the background: darkest stops out on dark, palest out on light", () => {
    expect(luminance(ramp(0, true))).toBeGreaterThan(luminance(ramp(0, false)));
    expect(luminance(ramp(1, false))).toBeLessThan(luminance(ramp(1, true)));
  });

  it("colours points by category, by metric, and dims missing values", () => {
    const values = new Float32Array([0, 1, Number.NaN]);
    const rgba = pointColors(3, { kind: "category", values, neutral: [9, 9, 9], dark: false, alpha: 1 });
    expect(Array.from(rgba.slice(0, 3))).toEqual(categorical(0));
    expect(Array.from(rgba.slice(4, 7))).toEqual(categorical(1));
    expect(Array.from(rgba.slice(8, 12))).toEqual([9, 9, 9, 127]);
    const metric = pointColors(2, { kind: "continuous", values: new Float32Array([1, 3]), neutral: [9, 9, 9], dark: true, alpha: 1 });
    expect(Array.from(metric.slice(0, 3))).toEqual(ramp(0, true));
    expect(Array.from(metric.slice(4, 7))).toEqual(ramp(1, true));
  });

  it("sizes points by how many there are", () => {
    expect(pointSize(100)).toBeGreaterThan(pointSize(100_000));
    expect(pointSize(10_000_000)).toBe(1.5);
    expect(stepIndex(0, -1, 4)).toBe(0);
    expect(stepIndex(3, 1, 4)).toBe(3);
    expect(stepIndex(3, 1, 4, true)).toBe(0);
  });
});

describe("projection view", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    // jsdom has neither WebGL nor a 2-D canvas: the view must still run its controls.
    vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(null);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    document.body.replaceChildren();
  });

  function setup(initial: Partial<ProjectionViewModel> = {}) {
    const model = new FakeModel<ProjectionViewModel>({
      coords: coords(4, 5),
      depths: [0, 2, 4, 6],
      depth: 2,
      n_depths: 4,
      color: {},
      color_kind: "none",
      color_title: "",
      legend: [],
      label_codes: {},
      label_names: [],
      texts: [],
      selection: [],
      camera: [1, 0, 0],
      title: "four depths",
      transition_ms: 300,
      ...initial,
    });
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = widget.render({ model: model as unknown as AnyModel<ProjectionViewModel>, el });
    const root = el.querySelector<HTMLElement>(".explorer-pv")!;
    const slider = el.querySelector<HTMLInputElement>("input[type=range]")!;
    return { model, el, root, slider, cleanup };
  }

  it("shows the model's depth and says when it cannot draw", () => {
    const { root, slider, el } = setup();
    expect(root.dataset.renderer).toBe("none");
    expect(el.querySelector(".explorer-pv-message")!.textContent).toMatch(/WebGL2/);
    expect(slider.value).toBe("1");
    expect(slider.max).toBe("3");
    expect(el.querySelector(".explorer-pv-depth")!.textContent).toBe("depth 2");
    expect(el.querySelector(".explorer-pv-position")!.textContent).toBe("2 of 4");
    expect(el.querySelector(".explorer-pv-title")!.textContent).toBe("four depths");
  });

  it("says how many far points are pinned to the frame's edge at the depth shown", () => {
    // depth 0: a 10 x 10 grid and one point far out; depth 1: the grid alone
    const data = new Float32Array(2 * 2 * 101);
    for (let i = 0; i < 100; i++) {
      data.set([i % 10, Math.floor(i / 10)], 2 * i);
      data.set([i % 10, Math.floor(i / 10)], 2 * (101 + i));
    }
    data.set([1000, 5], 200);
    data.set([5, 5], 2 * 101 + 200);
    const payload = encode({ data, dtype: "float32", shape: [2, 101, 2] });
    const { model, root, el } = setup({ coords: payload, depths: [0, 1], depth: 0, n_depths: 2 });
    const note = el.querySelector(".explorer-pv-note")!;
    expect(root.dataset.pinned).toBe("1");
    expect(note.textContent).toBe("1 point beyond the frame: rings on its edge");
    model.set("depth", 1);
    expect(root.dataset.pinned).toBe("0");
    expect(note.textContent).toBe("");
  });

  it("steps with the arrow keys, keeps them from JupyterLab, and tells Python once settled", () => {
    const { model, root } = setup();
    const notebook = vi.fn();
    document.body.addEventListener("keydown", notebook);
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(root.dataset.depth).toBe("6");
    expect(notebook).not.toHaveBeenCalled();
    expect(model.save_changes).not.toHaveBeenCalled();
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.get("depth")).toBe(6);
    expect(model.save_changes).toHaveBeenCalledTimes(1);
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(root.dataset.depth).toBe("6"); // clamped at the last depth
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    expect(root.dataset.depth).toBe("4");
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "q", bubbles: true }));
    expect(notebook).toHaveBeenCalledTimes(1); // other keys still reach the notebook
  });

  it("follows depth and selection set from Python", () => {
    const { model, root, el } = setup();
    model.set("depth", 6);
    expect(root.dataset.depth).toBe("6");
    model.set("selection", [0, 3, 3, 99]);
    expect(root.dataset.selected).toBe("2");
    expect(el.querySelector(".explorer-pv-count")!.textContent).toBe("2 selected");
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(model.get("selection")).toEqual([]);
    expect(root.dataset.selected).toBe("0");
  });

  it("sends its camera once a frame after zoom, follows one set from outside, resets home", () => {
    const { model, el } = setup();
    const plot = el.querySelector<HTMLElement>(".explorer-pv-plot")!;
    for (let i = 0; i < 2; i++) {
      plot.dispatchEvent(new WheelEvent("wheel", { deltaY: -100, bubbles: true, cancelable: true }));
    }
    expect(model.save_changes).not.toHaveBeenCalled();
    vi.advanceTimersByTime(20);
    expect(model.save_changes).toHaveBeenCalledTimes(1);
    expect(model.get("camera")[0]).toBeCloseTo(Math.exp(0.3), 5);
    // a linked view (or Python) moves it: followed, not sent back
    model.set("camera", [2, 0.5, -0.25]);
    vi.advanceTimersByTime(20);
    expect(model.save_changes).toHaveBeenCalledTimes(1);
    el.querySelector<HTMLButtonElement>(".explorer-pv-reset")!.click();
    vi.advanceTimersByTime(20);
    expect(model.get("camera")).toEqual([1, 0, 0]);
    expect(model.save_changes).toHaveBeenCalledTimes(2);
  });

  it("plays through the depths, wrapping round, until paused", () => {
    const { model, root, el } = setup({ depth: 4, transition_ms: 0 });
    const play = el.querySelector<HTMLButtonElement>(".explorer-pv-play")!;
    play.click();
    vi.advanceTimersByTime(500);
    expect(root.dataset.depth).toBe("6");
    vi.advanceTimersByTime(500);
    expect(root.dataset.depth).toBe("0");
    play.click();
    vi.advanceTimersByTime(5000);
    expect(root.dataset.depth).toBe("0");
    expect(model.get("depth")).toBe(0);
  });

  it("draws a legend for categories", () => {
    const color = encode({ data: new Float32Array([0, 1, 1, 0, 2]), dtype: "float32", shape: [5] });
    const { el } = setup({ color, color_kind: "category", legend: ["cat", "dog", "eel"], color_title: "label" });
    const items = [...el.querySelectorAll(".explorer-pv-legend-item")].map((n) => n.textContent);
    expect(items).toEqual(["cat", "dog", "eel"]);
  });

  it("removes its listeners and nodes on cleanup", () => {
    const { model, el, cleanup } = setup();
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });
});
