// The projection view: each depth's 2-D layout of the same points as a WebGL scatter, a depth
// scrubber that moves the points from one layout to the next, hover, zoom/pan and lasso selection.
// Draws only: the layouts arrive computed, as one float32 [depth, N, 2] buffer.
import type { RenderProps } from "@anywidget/types";
import { decode, type ArrayPayload } from "./codecs";
import {
  CATEGORICAL,
  luminance,
  parseColor,
  pointColors,
  rampCss,
  type ColorKind,
  type RGB,
} from "./scatter/colors";
import {
  cameraFrom,
  cameraValues,
  clipTransform,
  EDGE,
  frame,
  HOME,
  nearest,
  normalise,
  panBy,
  sameCamera,
  selectInPolygon,
  toScreen,
  toWorld,
  zoomAt,
  type Camera,
  type Viewport,
} from "./scatter/geometry";
import { DetailBudget, SETTLE_MS } from "./scatter/detail";
import { PointRenderer } from "./scatter/renderer";
import { Transition } from "./scatter/transition";
import { onThemeChange } from "./theme";
import "./projection_view.css";

type Payload = ArrayPayload | Record<string, never>;

export interface ProjectionViewModel {
  coords: Payload;
  depths: number[];
  depth: number;
  n_depths: number;
  color: Payload;
  color_kind: ColorKind;
  color_title: string;
  legend: string[];
  label_codes: Payload;
  label_names: string[];
  texts: string[];
  selection: number[];
  /** Zoom and pan, ``[zoom, panX, panY]`` (geometry.ts' Camera); views linked in Python share it. */
  camera: number[];
  title: string;
  transition_ms: number;
}

/** How long JS waits for the slider to settle before telling Python. */
export const DEBOUNCE_MS = 50;
/** A hovered point is the nearest one within this many CSS pixels of the pointer. */
export const HOVER_RADIUS_PX = 8;
/** performance.measure name: a depth switch until the frame after the one that drew it. */
export const MEASURE = "explorer-projection-depth-switch";
/** performance.measure name: a depth switch until the first frame's draw calls were issued. */
export const DRAWN = "explorer-projection-depth-drawn";
/** How long play shows each depth, beyond its transition. */
export const PLAY_HOLD_MS = 500;
const LEGEND_MAX = 20;

/** Every depth's layout in world units, each depth framed on its own (geometry.ts' `frame`): the
 * bulk of its points fills the view, and far outliers are pinned to the edge (`edge`: 255). */
export interface Layouts {
  count: number;
  n: number;
  world: Float32Array;
  /** [depth, N]: 255 where a point is pinned to its depth's frame edge. */
  edge: Uint8Array;
  /** Points pinned per depth. */
  pinned: number[];
}

export function isPayload(value: unknown): value is ArrayPayload {
  return typeof value === "object" && value !== null && "view" in value && "dtype" in value;
}

/** The [depth, N, 2] float32 coordinates, checked, each depth framed in the unit square. */
export function decodeLayouts(payload: Payload): Layouts | null {
  if (!isPayload(payload)) return null;
  const array = decode(payload);
  const [count, n, k] = array.shape;
  if (array.dtype !== "float32" || array.shape.length !== 3 || k !== 2) {
    throw new Error(`coords must be float32 [depth, N, 2], got ${array.dtype} [${array.shape.join(", ")}]`);
  }
  const xy = array.data as Float32Array;
  const world = new Float32Array(xy.length);
  const edge = new Uint8Array(count * n);
  const pinned: number[] = [];
  for (let d = 0; d < count; d++) {
    const one = xy.subarray(d * 2 * n, (d + 1) * 2 * n);
    const flags = edge.subarray(d * n, (d + 1) * n);
    world.set(normalise(one, frame(one), flags), d * 2 * n);
    pinned.push(flags.reduce((sum, f) => sum + (f ? 1 : 0), 0));
  }
  return { count, n, world, edge, pinned };
}

export function layoutAt(layouts: Layouts, index: number): Float32Array {
  const size = 2 * layouts.n;
  return layouts.world.subarray(index * size, (index + 1) * size);
}

/** Which points of depth index `index` are pinned to the frame's edge (255). */
export function edgeAt(layouts: Layouts, index: number): Uint8Array {
  return layouts.edge.subarray(index * layouts.n, (index + 1) * layouts.n);
}

/** Per-point values (category codes or a metric) as float32, or null when absent. */
export function decodeValues(payload: Payload, n: number): Float32Array | null {
  if (!isPayload(payload)) return null;
  const { data } = decode(payload);
  if (data.length !== n) throw new Error(`${data.length} values for ${n} points`);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

/** Point diameter in CSS pixels: large for a few hundred points, small for a million. */
export function pointSize(n: number): number {
  return Math.min(8, Math.max(1.5, 7 * (1000 / Math.max(1, n)) ** 0.25));
}

/** Point opacity: dense clouds are drawn lighter so that overlaps show. */
export function pointAlpha(n: number): number {
  return Math.min(0.9, Math.max(0.35, 0.9 - 0.15 * Math.log10(Math.max(1, n) / 2000)));
}

/** The depth index after a step of `delta`, clamped, or wrapped round when `wrap`. */
export function stepIndex(index: number, delta: number, count: number, wrap = false): number {
  if (count <= 0) return 0;
  const next = index + delta;
  if (wrap) return ((next % count) + count) % count;
  return Math.min(count - 1, Math.max(0, next));
}

const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className: string, text: string, label: string): HTMLButtonElement {
  const node = h("button", `explorer-pv-button ${className}`, text);
  node.type = "button";
  node.title = label;
  node.setAttribute("aria-label", label);
  return node;
}

function cssVar(el: Element, name: string, fallback: string): string {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

export function render({ model, el }: Pick<RenderProps<ProjectionViewModel>, "model" | "el">) {
  const root = h("div", "explorer-pv");
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "projection view: arrow keys change depth");
  const title = h("div", "explorer-pv-title");

  const play = button("explorer-pv-play", "▶", "play through depths");
  const prev = button("explorer-pv-prev", "‹", "previous depth");
  const next = button("explorer-pv-next", "›", "next depth");
  const slider = h("input", "explorer-pv-slider");
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.setAttribute("aria-label", "depth");
  const depthLabel = h("span", "explorer-pv-depth");
  const position = h("span", "explorer-pv-position");
  const controls = h("div", "explorer-pv-controls");
  controls.append(play, prev, slider, next, depthLabel, position);

  const lasso = button("explorer-pv-lasso", "lasso", "lasso: drag to select (or shift + drag)");
  lasso.setAttribute("aria-pressed", "false");
  const reset = button("explorer-pv-reset", "reset view", "reset zoom and pan (or double-click)");
  const clear = button("explorer-pv-clear", "clear", "clear the selection (Esc)");
  const count = h("span", "explorer-pv-count");
  const note = h("span", "explorer-pv-note");
  const tools = h("div", "explorer-pv-tools");
  tools.append(lasso, reset, clear, count, note);

  const plot = h("div", "explorer-pv-plot");
  const glCanvas = h("canvas", "explorer-pv-gl");
  glCanvas.setAttribute("role", "img");
  glCanvas.setAttribute("aria-label", "2-D projection of the points at this depth");
  const overlay = h("canvas", "explorer-pv-overlay");
  const tooltip = h("div", "explorer-pv-tooltip");
  tooltip.hidden = true;
  const message = h("div", "explorer-pv-message");
  message.hidden = true;
  plot.append(glCanvas, overlay, tooltip, message);
  const legend = h("div", "explorer-pv-legend");
  root.append(title, controls, plot, tools, legend);
  el.append(root);

  let renderer: PointRenderer | null = null;
  try {
    renderer = new PointRenderer(glCanvas);
    root.dataset.renderer = "webgl2";
  } catch (error) {
    root.dataset.renderer = "none";
    message.textContent = `Cannot draw: ${(error as Error).message}`;
    message.hidden = false;
  }

  let layouts: Layouts | null = null;
  let transition = new Transition(new Float32Array());
  let edgeFrom: Uint8Array = new Uint8Array(); // points pinned to the frame's edge where the transition starts
  let edgeTo: Uint8Array = new Uint8Array(); // ... and where it ends
  let shown = -1; // index into depths of the layout drawn (runs ahead of the model while debouncing)
  let camera: Camera = cameraFrom(model.get("camera"));
  let steered = false; // the user moved the camera since it was last sent to the model
  let selected = new Uint8Array();
  let nSelected = 0;
  let labelCodes: Float32Array | null = null;
  let hover = -1;
  let background: RGB = [255, 255, 255];
  let drag: { mode: "pan" | "lasso"; x: number; y: number; path: number[] } | null = null;
  let raf = 0;
  let hoverRaf = 0;
  let pending: ReturnType<typeof setTimeout> | undefined;
  let playing: ReturnType<typeof setTimeout> | undefined;
  let lassoMode = false;
  let alive = true;
  let unsized = 0; // frames in a row the plot had no size
  let lastMotion = Number.NEGATIVE_INFINITY; // time of the last zoom or pan event
  let motionSinceDraw = false; // a zoom or pan since the last frame (frames may be slower than SETTLE_MS)
  const detail = new DetailBudget();

  // For tests and tools: where every point is drawn now, flat [x0, y0, ...] in CSS pixels of the plot.
  Object.defineProperty(root, "explorerScreenPositions", {
    value: (): number[] => {
      const v = viewport();
      const xy = transition.positions(performance.now());
      const out: number[] = [];
      for (let i = 0; i + 1 < xy.length; i += 2) out.push(...toScreen(camera, v, xy[i], xy[i + 1]));
      return out;
    },
  });

  const depths = () => model.get("depths");
  const viewport = (): Viewport => ({ width: plot.clientWidth || 600, height: plot.clientHeight || 400 });
  const n = () => layouts?.n ?? 0;

  function fail(error: unknown): void {
    message.textContent = `Cannot draw: ${(error as Error).message}`;
    message.hidden = false;
    console.error("explorer projection view:", error);
  }

  // ---- drawing -------------------------------------------------------------------------------
  function requestDraw(): void {
    if (!raf && alive) raf = requestAnimationFrame(frame);
  }

  /** The camera moved (zoom or pan): draw, at reduced detail while frames are slow. */
  function moved(): void {
    lastMotion = performance.now();
    motionSinceDraw = true;
    requestDraw();
  }

  /** The user zoomed, panned or reset the view: draw, and send the camera on the next frame. */
  function steer(next: Camera, motion = true): void {
    camera = next;
    steered = true;
    if (motion) moved();
    else requestDraw();
  }

  function frame(): void {
    raf = 0;
    if (steered) {
      // once a frame at most: views linked to this one follow in the browser (ipywidgets jslink)
      steered = false;
      model.set("camera", cameraValues(camera));
      model.save_changes();
    }
    // Decide on the next frame from the time this one drew at, so the last one drawn is at t = 1.
    if (draw()) requestDraw();
  }

  /** Draw now; true when another frame is needed (a transition runs, or the plot has no size). */
  function draw(): boolean {
    const now = performance.now();
    if (!plot.clientWidth || !plot.clientHeight) {
      // Not laid out (hidden, or JupyterLab swapping themes): try again for a while; the resize
      // observer catches it after that.
      unsized = unsized < 120 ? unsized + 1 : unsized;
      return unsized < 120;
    }
    unsized = 0;
    const v = viewport();
    const ratio = window.devicePixelRatio || 1;
    // moving (a transition, or a zoom/pan just now): slow frames draw a random subset
    const moving = transition.running(now) || motionSinceDraw || now - lastMotion < SETTLE_MS;
    motionSinceDraw = false;
    if (renderer && layouts) {
      renderer.resize(v.width, v.height, ratio);
      const { scale, offset } = clipTransform(camera, v);
      if (!moving) detail.rest();
      const limit = moving ? detail.frame(now, layouts.n) : layouts.n;
      root.dataset.pointsDrawn = String(limit);
      renderer.draw({
        t: transition.t(now),
        scale,
        offset,
        size: pointSize(layouts.n) * ratio * Math.min(3, Math.sqrt(camera.zoom)),
        anySelected: nSelected > 0,
        background,
        limit,
      });
    }
    drawOverlay(v, ratio);
    root.dataset.drawn = `${v.width}x${v.height}@${ratio}`;
    root.dataset.zoom = camera.zoom.toFixed(4);
    return moving; // until the frame after the motion, which draws every point
  }

  function drawOverlay(v = viewport(), ratio = window.devicePixelRatio || 1): void {
    const w = Math.round(v.width * ratio);
    const hgt = Math.round(v.height * ratio);
    if (overlay.width !== w) overlay.width = w;
    if (overlay.height !== hgt) overlay.height = hgt;
    const ctx = overlay.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, v.width, v.height);
    const accent = cssVar(root, "--jp-brand-color1", "#1976d2");
    const ink = cssVar(root, "--jp-ui-font-color0", "#000");
    if (layouts && shown >= 0 && layouts.pinned[shown] > 0) {
      // the frame's edge, where this depth's far outliers are drawn (as rings)
      const [x0, y0] = toScreen(camera, v, -EDGE, EDGE);
      const [x1, y1] = toScreen(camera, v, EDGE, -EDGE);
      ctx.setLineDash([2, 4]);
      ctx.lineWidth = 1;
      ctx.strokeStyle = cssVar(root, "--jp-ui-font-color3", "#9e9e9e");
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
    }
    if (drag?.mode === "lasso" && drag.path.length >= 4) {
      ctx.beginPath();
      ctx.moveTo(drag.path[0], drag.path[1]);
      for (let i = 2; i < drag.path.length; i += 2) ctx.lineTo(drag.path[i], drag.path[i + 1]);
      ctx.closePath();
      ctx.fillStyle = `color-mix(in srgb, ${accent} 12%, transparent)`;
      ctx.fill();
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = accent;
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (hover >= 0 && layouts && hover < layouts.n) {
      const xy = transition.to;
      const [sx, sy] = toScreen(camera, v, xy[2 * hover], xy[2 * hover + 1]);
      ctx.beginPath();
      ctx.arc(sx, sy, pointSize(layouts.n) / 2 + 4, 0, 2 * Math.PI);
      ctx.lineWidth = 2;
      ctx.strokeStyle = ink;
      ctx.stroke();
    }
  }

  // ---- depth -----------------------------------------------------------------------------------
  function showLabels(): void {
    const list = depths();
    const last = Math.max(0, list.length - 1);
    slider.max = String(last);
    slider.value = String(Math.max(0, shown));
    slider.disabled = list.length <= 1;
    depthLabel.textContent = shown >= 0 && list.length ? `depth ${list[shown]}` : "no depths";
    position.textContent = list.length ? `${shown + 1} of ${list.length}` : "";
    prev.disabled = shown <= 0;
    next.disabled = shown >= last;
    root.dataset.depth = shown >= 0 && list.length ? String(list[shown]) : "";
    root.dataset.depthIndex = String(shown);
    const pinned = layouts && shown >= 0 ? layouts.pinned[shown] : 0;
    root.dataset.pinned = String(pinned);
    note.textContent = pinned
      ? `${pinned.toLocaleString()} point${pinned === 1 ? "" : "s"} beyond the frame: rings on its edge`
      : "";
    note.title = pinned
      ? "The frame fits the bulk of the points at this depth; far outliers are drawn as rings on its edge, in their direction"
      : "";
  }

  /** Draw depth index `index`: points move there over transition_ms (0 or `animate` false: at once). */
  function show(index: number, animate = true): void {
    if (!layouts || layouts.count === 0) return;
    const target = stepIndex(index, 0, layouts.count);
    if (target === shown) return;
    const started = performance.now();
    shown = target;
    showLabels();
    // the flags of the side the points are nearer to now, towards the new depth's
    edgeFrom = transition.t(started) < 0.5 ? edgeFrom : edgeTo;
    edgeTo = edgeAt(layouts, target);
    transition.retarget(layoutAt(layouts, target), started, animate ? model.get("transition_ms") : 0);
    renderer?.setPositions(transition.from, transition.to);
    renderer?.setEdges(edgeFrom, edgeTo);
    requestDraw();
    measureNextPaint(started);
  }

  function measureNextPaint(started: number): void {
    // The frame that draws the new positions runs in the next animation frame (its draw calls are
    // issued by the end of that callback: DRAWN); the one after it starts once that frame has
    // been handed to the compositor (MEASURE).
    requestAnimationFrame(() => {
      record(DRAWN, started, "drawnMs");
      requestAnimationFrame(() => record(MEASURE, started, "switchMs"));
    });
  }

  function record(name: string, started: number, key: string): void {
    const ms = performance.now() - started;
    try {
      performance.measure(name, { start: started, end: started + ms });
    } catch {
      /* no User Timing level 3 (jsdom): the data attribute still has it */
    }
    root.dataset[key] = ms.toFixed(2);
  }

  function choose(index: number): void {
    const list = depths();
    if (!list.length) return;
    show(index);
    clearTimeout(pending);
    pending = setTimeout(() => {
      pending = undefined;
      model.set("depth", list[shown]);
      model.save_changes();
    }, DEBOUNCE_MS);
  }

  function step(delta: number): void {
    choose(stepIndex(shown, delta, depths().length));
  }

  function setPlaying(on: boolean): void {
    clearTimeout(playing);
    playing = undefined;
    play.textContent = on ? "❚❚" : "▶";
    play.setAttribute("aria-pressed", String(on));
    root.dataset.playing = String(on);
    if (!on) return;
    const tick = () => {
      choose(stepIndex(shown, 1, depths().length, true));
      playing = setTimeout(tick, model.get("transition_ms") + PLAY_HOLD_MS);
    };
    playing = setTimeout(tick, PLAY_HOLD_MS);
  }

  // ---- colours, selection, legend --------------------------------------------------------------
  function recolor(): void {
    if (!layouts) return;
    background = parseColor(cssVar(root, "--jp-layout-color0", "#ffffff"), [255, 255, 255]);
    const dark = luminance(background) < 0.5;
    const neutral = parseColor(cssVar(root, "--jp-brand-color1", "#1976d2"));
    const kind = model.get("color_kind");
    let values: Float32Array | null = null;
    try {
      values = kind === "none" ? null : decodeValues(model.get("color"), layouts.n);
    } catch (error) {
      fail(error);
    }
    renderer?.setColors(
      pointColors(layouts.n, { kind: values ? kind : "none", values, neutral, dark, alpha: pointAlpha(layouts.n) }),
    );
    drawLegend(kind, dark);
    requestDraw();
  }

  function drawLegend(kind: ColorKind, dark: boolean): void {
    const names = model.get("legend");
    const heading = model.get("color_title");
    legend.replaceChildren();
    if (heading) legend.append(h("span", "explorer-pv-legend-title", heading));
    if (kind === "category") {
      names.slice(0, LEGEND_MAX).forEach((name, code) => {
        const item = h("span", "explorer-pv-legend-item");
        const swatch = h("span", "explorer-pv-swatch");
        swatch.style.background = CATEGORICAL[code % CATEGORICAL.length];
        item.append(swatch, document.createTextNode(name));
        legend.append(item);
      });
      if (names.length > LEGEND_MAX) legend.append(h("span", "explorer-pv-legend-more", `+${names.length - LEGEND_MAX} more`));
    } else if (kind === "continuous") {
      const bar = h("span", "explorer-pv-ramp");
      bar.style.background = rampCss(dark);
      legend.append(h("span", "", names[0] ?? ""), bar, h("span", "", names[1] ?? ""));
    }
  }

  function applySelection(indices: number[]): void {
    selected = new Uint8Array(n());
    nSelected = 0;
    for (const i of indices) {
      if (Number.isInteger(i) && i >= 0 && i < selected.length && !selected[i]) {
        selected[i] = 255;
        nSelected++;
      }
    }
    renderer?.setSelected(selected);
    count.textContent = nSelected ? `${nSelected.toLocaleString()} selected` : "";
    clear.disabled = nSelected === 0;
    root.dataset.selected = String(nSelected);
    requestDraw();
  }

  function select(indices: number[]): void {
    applySelection(indices);
    model.set("selection", indices);
    model.save_changes();
  }

  // ---- data from Python ------------------------------------------------------------------------
  function rebuild(): void {
    message.hidden = true;
    try {
      layouts = decodeLayouts(model.get("coords"));
      labelCodes = decodeValues(model.get("label_codes"), layouts?.n ?? 0);
    } catch (error) {
      layouts = null;
      fail(error);
    }
    title.textContent = model.get("title");
    const index = Math.max(0, depths().indexOf(model.get("depth")));
    shown = -1;
    transition = new Transition(layouts ? layoutAt(layouts, index) : new Float32Array());
    if (layouts) {
      shown = Math.min(index, layouts.count - 1);
      edgeFrom = edgeTo = edgeAt(layouts, shown);
      renderer?.setPositions(transition.from, transition.to);
      renderer?.setEdges(edgeFrom, edgeTo);
    }
    showLabels();
    recolor();
    applySelection(model.get("selection"));
    requestDraw();
  }

  const onDepth = () => {
    clearTimeout(pending);
    pending = undefined;
    const index = depths().indexOf(model.get("depth"));
    if (index >= 0) show(index);
  };
  const onSelection = () => applySelection(model.get("selection"));
  const onLabels = () => {
    try {
      labelCodes = decodeValues(model.get("label_codes"), n());
    } catch (error) {
      fail(error);
    }
  };

  // ---- pointer and keyboard --------------------------------------------------------------------
  function local(event: MouseEvent): [number, number] {
    const box = plot.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  function updateHover(x: number, y: number, event: MouseEvent): void {
    if (!layouts) return;
    const v = viewport();
    const [wx, wy] = toWorld(camera, v, x, y);
    const [rx] = toWorld(camera, v, x + HOVER_RADIUS_PX, y);
    const found = nearest(transition.positions(performance.now()), wx, wy, Math.abs(rx - wx));
    if (found !== hover) {
      hover = found;
      root.dataset.hover = String(found);
      drawOverlay();
    }
    if (found < 0) {
      tooltip.hidden = true;
      return;
    }
    const labelName = labelCodes ? model.get("label_names")[labelCodes[found]] : undefined;
    const text = model.get("texts")[found];
    tooltip.replaceChildren(h("div", "explorer-pv-tooltip-head", `#${found}${labelName !== undefined ? ` · ${labelName}` : ""}`));
    if (text) tooltip.append(h("div", "explorer-pv-tooltip-text", text));
    if (edgeTo[found]) tooltip.append(h("div", "explorer-pv-tooltip-note", "beyond the frame: drawn on its edge"));
    tooltip.hidden = false;
    const box = plot.getBoundingClientRect();
    const left = Math.min(event.clientX - box.left + 12, v.width - tooltip.offsetWidth - 4);
    const top = y + 12 + tooltip.offsetHeight > v.height ? y - tooltip.offsetHeight - 8 : y + 12;
    tooltip.style.left = `${Math.max(4, left)}px`;
    tooltip.style.top = `${Math.max(4, top)}px`;
  }

  function finishLasso(path: number[]): void {
    if (!layouts) return;
    const v = viewport();
    let size = 0;
    for (let i = 2; i < path.length; i += 2) size += Math.hypot(path[i] - path[i - 2], path[i + 1] - path[i - 1]);
    if (path.length < 6 || size < 6) {
      if (nSelected) select([]); // a click with the lasso clears the selection
      return;
    }
    const polygon: number[] = [];
    for (let i = 0; i < path.length; i += 2) polygon.push(...toWorld(camera, v, path[i], path[i + 1]));
    select(selectInPolygon(transition.positions(performance.now()), polygon));
  }

  const onPointerDown = (event: PointerEvent) => {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    root.focus({ preventScroll: true });
    const [x, y] = local(event);
    drag = { mode: event.shiftKey || lassoMode ? "lasso" : "pan", x, y, path: [x, y] };
    plot.setPointerCapture?.(event.pointerId);
    plot.classList.toggle("is-panning", drag.mode === "pan");
    tooltip.hidden = true;
    hover = -1;
  };
  const onPointerMove = (event: PointerEvent) => {
    const [x, y] = local(event);
    if (drag?.mode === "pan") {
      const next = panBy(camera, viewport(), x - drag.x, y - drag.y);
      drag.x = x;
      drag.y = y;
      steer(next);
    } else if (drag?.mode === "lasso") {
      const p = drag.path;
      if (Math.hypot(x - p[p.length - 2], y - p[p.length - 1]) >= 2) p.push(x, y);
      drawOverlay();
    } else if (!hoverRaf) {
      hoverRaf = requestAnimationFrame(() => {
        hoverRaf = 0;
        updateHover(x, y, event);
      });
    }
  };
  const onPointerUp = (event: PointerEvent) => {
    if (!drag) return;
    const finished = drag;
    drag = null;
    plot.classList.remove("is-panning");
    plot.releasePointerCapture?.(event.pointerId);
    if (finished.mode === "lasso") {
      const [x, y] = local(event);
      finished.path.push(x, y);
      finishLasso(finished.path);
    }
    drawOverlay();
  };
  const onPointerLeave = () => {
    if (drag) return;
    hover = -1;
    tooltip.hidden = true;
    drawOverlay();
  };
  const onWheel = (event: WheelEvent) => {
    event.preventDefault();
    const [x, y] = local(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    steer(zoomAt(camera, viewport(), x, y, Math.exp(-delta * 0.0015)));
  };
  const resetView = () => steer(HOME, false);
  const onCamera = () => {
    // set from Python or by a linked view: follow it (without sending it back)
    const next = cameraFrom(model.get("camera"));
    if (sameCamera(next, camera)) return;
    camera = next;
    moved();
  };
  const toggleLasso = () => {
    lassoMode = !lassoMode;
    lasso.setAttribute("aria-pressed", String(lassoMode));
    plot.classList.toggle("is-lasso", lassoMode);
  };
  const onKeydown = (event: KeyboardEvent) => {
    // JupyterLab binds arrows (and more) to notebook commands in command mode: keep our keys here.
    if (event.target === slider) {
      if (SLIDER_KEYS.has(event.key)) event.stopPropagation();
      return;
    }
    const onButton = event.target instanceof HTMLButtonElement;
    if (event.key === "ArrowLeft" || event.key === "ArrowDown") step(-1);
    else if (event.key === "ArrowRight" || event.key === "ArrowUp") step(1);
    else if (event.key === "Home") choose(0);
    else if (event.key === "End") choose(depths().length - 1);
    else if (event.key === " " && !onButton) setPlaying(playing === undefined);
    else if (event.key === "Escape") select([]);
    else if (event.key === "l" || event.key === "L") toggleLasso();
    else return;
    event.preventDefault();
    event.stopPropagation();
  };

  const onSlider = () => choose(Number(slider.value));
  const onPlay = () => setPlaying(playing === undefined);
  const onPrev = () => step(-1);
  const onNext = () => step(1);
  const onClear = () => select([]);

  const listeners: [EventTarget, string, EventListener, AddEventListenerOptions?][] = [
    [slider, "input", onSlider],
    [play, "click", onPlay],
    [prev, "click", onPrev],
    [next, "click", onNext],
    [lasso, "click", toggleLasso],
    [reset, "click", resetView],
    [clear, "click", onClear],
    [root, "keydown", onKeydown as EventListener],
    [plot, "pointerdown", onPointerDown as EventListener],
    [plot, "pointermove", onPointerMove as EventListener],
    [plot, "pointerup", onPointerUp as EventListener],
    [plot, "pointercancel", onPointerUp as EventListener],
    [plot, "pointerleave", onPointerLeave],
    [plot, "wheel", onWheel as EventListener, { passive: false }],
    [plot, "dblclick", resetView],
  ];
  for (const [target, type, fn, options] of listeners) target.addEventListener(type, fn, options);

  const structural = ["change:coords", "change:depths", "change:n_depths", "change:title"];
  const coloring = ["change:color", "change:color_kind", "change:legend", "change:color_title"];
  model.on("change:depth", onDepth);
  model.on("change:selection", onSelection);
  model.on("change:camera", onCamera);
  model.on("change:label_codes", onLabels);
  for (const name of structural) model.on(name, rebuild);
  for (const name of coloring) model.on(name, recolor);
  const resize = typeof ResizeObserver === "undefined" ? undefined : new ResizeObserver(requestDraw);
  resize?.observe(plot);
  const stopTheme = onThemeChange(recolor);
  rebuild();

  return () => {
    alive = false;
    cancelAnimationFrame(raf);
    cancelAnimationFrame(hoverRaf);
    clearTimeout(pending);
    clearTimeout(playing);
    model.off("change:depth", onDepth);
    model.off("change:selection", onSelection);
    model.off("change:camera", onCamera);
    model.off("change:label_codes", onLabels);
    for (const name of structural) model.off(name, rebuild);
    for (const name of coloring) model.off(name, recolor);
    for (const [target, type, fn] of listeners) target.removeEventListener(type, fn);
    resize?.disconnect();
    stopTheme();
    renderer?.dispose();
    root.remove();
  };
}

export default { render };
