// @vitest-environment jsdom
import type { AnyModel } from "@anywidget/types";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import widget, {
  DEBOUNCE_MS,
  formatCount,
  paramsPerDepth,
  type LayerBrowserModel,
  type LayerRow,
} from "../src/layer_browser";
import { FakeModel } from "./fake_model";

function row(depth: number, role: string, params: number): LayerRow {
  return { address: `blocks.${depth}.${role}`, depth, role, name: `p${depth}`, shape: "4×4", params };
}

const LAYERS = [row(0, "embed", 4000), row(1, "mlp.up", 64), row(1, "mlp.down", 64), row(2, "head", 40)];

function setup(depth = 0) {
  const model = new FakeModel<LayerBrowserModel>({
    depth,
    n_depths: 4,
    layers: LAYERS,
    depth_labels: ["blocks.0 — embed", "blocks.1 — 2 matrices", "blocks.2 — head", "blocks.3 — none"],
    title: "tiny",
  });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model: model as unknown as AnyModel<LayerBrowserModel>, el });
  const slider = el.querySelector<HTMLInputElement>("input[type=range]")!;
  const currentAddresses = () =>
    [...el.querySelectorAll("tbody tr.is-current")].map((tr) => tr.firstElementChild!.textContent);
  return { model, el, cleanup, slider, currentAddresses };
}

/** A 2-D context that records the colour and x of every bar it fills. */
function recordingContext() {
  const bars: { x: number; style: string }[] = [];
  const ctx = {
    fillStyle: "",
    font: "",
    textAlign: "",
    textBaseline: "",
    setTransform: vi.fn(),
    clearRect: vi.fn(() => bars.splice(0)),
    fillText: vi.fn(),
    fillRect: vi.fn((x: number) => bars.push({ x, style: ctx.fillStyle })),
  };
  return { ctx, bars };
}

describe("layer browser", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    // jsdom has no canvas: getContext gives null, which the view must tolerate.
    vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(null);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    document.body.replaceChildren();
  });

  it("renders a slider over the depths and one table row per layer", () => {
    const { el, slider } = setup(1);
    expect(slider.min).toBe("0");
    expect(slider.max).toBe("3");
    expect(slider.value).toBe("1");
    expect(el.querySelectorAll("tbody tr")).toHaveLength(4);
    expect(el.querySelector("canvas")).not.toBeNull();
    expect(el.querySelector(".explorer-lb-title")!.textContent).toBe("tiny");
    expect(el.querySelector(".explorer-lb-summary")!.textContent).toBe("blocks.1 — 2 matrices");
  });

  it("highlights the rows at the current depth", () => {
    const { currentAddresses } = setup(1);
    expect(currentAddresses()).toEqual(["blocks.1.mlp.up", "blocks.1.mlp.down"]);
  });

  it("moves the highlight when Python changes depth", () => {
    const { model, el, slider, currentAddresses } = setup(0);
    model.set("depth", 2);
    expect(currentAddresses()).toEqual(["blocks.2.head"]);
    expect(slider.value).toBe("2");
    expect(el.querySelector(".explorer-lb-depth")!.textContent).toBe("depth 2 / 3");
    expect(model.save_changes).not.toHaveBeenCalled();
  });

  it("tells Python about slider moves once, after they settle", () => {
    const { model, slider, currentAddresses } = setup(0);
    for (const value of ["1", "2"]) {
      slider.value = value;
      slider.dispatchEvent(new Event("input"));
    }
    expect(currentAddresses()).toEqual(["blocks.2.head"]);
    vi.advanceTimersByTime(DEBOUNCE_MS - 1);
    expect(model.get("depth")).toBe(0);
    expect(model.save_changes).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(model.get("depth")).toBe(2);
    expect(model.save_changes).toHaveBeenCalledTimes(1);
  });

  it("keeps the slider's keys from JupyterLab's shortcuts, and only those", () => {
    const { el, slider } = setup(0);
    const seen: string[] = [];
    el.addEventListener("keydown", (event) => seen.push(event.key));
    for (const key of ["ArrowRight", "PageDown", "Enter", "Escape"]) {
      slider.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
    }
    expect(seen).toEqual(["Enter", "Escape"]);
  });

  it("sets depth from a click on a table row", () => {
    const { model, el } = setup(0);
    el.querySelectorAll<HTMLElement>("tbody tr td")[6].click(); // a cell of the second row
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.get("depth")).toBe(1);
    expect(model.save_changes).toHaveBeenCalledTimes(1);
  });

  it("draws one bar per depth with the current one in the accent colour", () => {
    const { ctx, bars } = recordingContext();
    vi.mocked(HTMLCanvasElement.prototype.getContext).mockReturnValue(
      ctx as unknown as CanvasRenderingContext2D,
    );
    const { model } = setup(0);
    model.set("depth", 2);
    expect(bars).toHaveLength(3); // depth 3 holds no parameters: no bar
    expect(bars.map((bar) => bar.style === "#1976d2")).toEqual([false, false, true]);
  });

  it("sets depth from a click on a bar", () => {
    const { model, el } = setup(0);
    const canvas = el.querySelector("canvas")!;
    vi.spyOn(canvas, "getBoundingClientRect").mockReturnValue(new DOMRect(10, 0, 400, 72));
    canvas.dispatchEvent(new MouseEvent("click", { clientX: 10 + 310 }));
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.get("depth")).toBe(3);
  });

  it("rebuilds the table when the layers change", () => {
    const { model, el, currentAddresses } = setup(2);
    model.set("layers", [row(2, "conv", 9)]);
    expect(el.querySelectorAll("tbody tr")).toHaveLength(1);
    expect(currentAddresses()).toEqual(["blocks.2.conv"]);
  });

  it("cleans up its listeners, timer and DOM", () => {
    const { model, el, cleanup, slider } = setup(0);
    slider.value = "3";
    slider.dispatchEvent(new Event("input"));
    cleanup();
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.listenerCount()).toBe(0);
    expect(model.save_changes).not.toHaveBeenCalled();
    expect(el.children).toHaveLength(0);
  });
});

describe("helpers", () => {
  it("sums parameters per depth, including empty depths", () => {
    expect(paramsPerDepth(LAYERS, 4)).toEqual([4000, 128, 40, 0]);
  });

  it("formats counts compactly", () => {
    expect([formatCount(999), formatCount(1800000), formatCount(2.5e9)]).toEqual([
      "999",
      "1.8M",
      "2.5B",
    ]);
  });
});
