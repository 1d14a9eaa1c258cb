// The layer table with a depth slider: one row per weight matrix, the rows at the current depth
// highlighted, and a bar chart of parameters per depth. Draws only; all state is in the traits.
import type { RenderProps } from "@anywidget/types";
import { onThemeChange } from "./theme";
import "./layer_browser.css";

export interface LayerRow {
  address: string;
  depth: number;
  role: string;
  name: string;
  shape: string;
  params: number;
}

export interface LayerBrowserModel {
  depth: number;
  n_depths: number;
  layers: LayerRow[];
  depth_labels: string[];
  title: string;
}

/** How long JS waits for the slider to settle before telling Python. */
export const DEBOUNCE_MS = 50;

const COLUMNS: { key: keyof LayerRow; label: string; numeric?: boolean }[] = [
  { key: "address", label: "address" },
  { key: "role", label: "role" },
  { key: "name", label: "parameter" },
  { key: "shape", label: "shape" },
  { key: "params", label: "params", numeric: true },
];

// Keys the range input handles itself. JupyterLab binds the arrows to notebook navigation in
// command mode, so these must not bubble up to it while the slider has focus.
const SLIDER_KEYS = new Set([
  "ArrowLeft",
  "ArrowRight",
  "ArrowUp",
  "ArrowDown",
  "Home",
  "End",
  "PageUp",
  "PageDown",
]);

export function formatCount(n: number): string {
  for (const [unit, scale] of [["B", 1e9], ["M", 1e6], ["k", 1e3]] as const) {
    if (n >= scale) return `${(n / scale).toFixed(1)}${unit}`;
  }
  return String(n);
}

/** Total parameters per depth, for the bar chart. */
export function paramsPerDepth(layers: LayerRow[], nDepths: number): number[] {
  const totals = new Array<number>(nDepths).fill(0);
  for (const row of layers) {
    if (row.depth >= 0 && row.depth < nDepths) totals[row.depth] += row.params;
  }
  return totals;
}

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

function cssVar(el: Element, name: string, fallback: string): string {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

function drawBars(canvas: HTMLCanvasElement, totals: number[], current: number): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no 2-D context (jsdom, or a browser out of canvases): nothing to draw
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 480;
  const height = canvas.clientHeight || 72;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const base = cssVar(canvas, "--jp-layout-color3", "#bdbdbd");
  const accent = cssVar(canvas, "--jp-brand-color1", "#1976d2");
  const ink = cssVar(canvas, "--jp-ui-font-color2", "#616161");
  const labelled = totals.length > 0 && width / totals.length >= 16;
  const plotHeight = labelled ? height - 14 : height;
  const max = Math.max(1, ...totals);
  const slot = width / Math.max(1, totals.length);
  const gap = Math.min(4, slot * 0.2);

  ctx.font = `10px ${cssVar(canvas, "--jp-ui-font-family", "sans-serif")}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  totals.forEach((total, depth) => {
    if (total > 0) {
      const barHeight = Math.max(2, (total / max) * (plotHeight - 2));
      ctx.fillStyle = depth === current ? accent : base;
      ctx.fillRect(depth * slot + gap / 2, plotHeight - barHeight, slot - gap, barHeight);
    }
    if (labelled) {
      ctx.fillStyle = depth === current ? accent : ink;
      ctx.fillText(String(depth), depth * slot + slot / 2, height);
    }
  });
}

export function render({ model, el }: Pick<RenderProps<LayerBrowserModel>, "model" | "el">) {
  const root = h("div", "explorer-lb");
  const title = h("div", "explorer-lb-title");
  const slider = h("input", "explorer-lb-slider");
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.setAttribute("aria-label", "depth");
  const depthLabel = h("span", "explorer-lb-depth");
  const summary = h("span", "explorer-lb-summary");
  const controls = h("div", "explorer-lb-controls");
  controls.append(slider, depthLabel, summary);
  const canvas = h("canvas", "explorer-lb-bars");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "parameters per depth");
  const table = h("table", "explorer-lb-table");
  const tbody = h("tbody");
  const headRow = h("tr");
  for (const col of COLUMNS) headRow.append(h("th", col.numeric ? "is-numeric" : "", col.label));
  table.append(h("thead"), tbody);
  table.tHead!.append(headRow);
  const tableWrap = h("div", "explorer-lb-table-wrap");
  tableWrap.append(table);
  root.append(title, controls, canvas, tableWrap);
  el.append(root);

  // The depth shown, which runs ahead of the model while a slider move is being debounced.
  let shown = model.get("depth");
  let pending: ReturnType<typeof setTimeout> | undefined;
  let totals: number[] = [];

  const nDepths = () => Math.max(1, model.get("n_depths"));
  const redraw = () => drawBars(canvas, totals, shown);

  function show(depth: number): void {
    shown = depth;
    slider.value = String(depth);
    depthLabel.textContent = `depth ${depth} / ${nDepths() - 1}`;
    summary.textContent = model.get("depth_labels")[depth] ?? "";
    for (const row of tbody.rows) row.classList.toggle("is-current", Number(row.dataset.depth) === depth);
    placeCurrent();
    redraw();
  }

  /** Scroll the table so that the first row of the depth shown is in view (once laid out). */
  function placeCurrent(): void {
    const first = tbody.querySelector<HTMLTableRowElement>("tr.is-current");
    if (first && tableWrap.clientHeight) scrollIntoWrap(first);
  }

  function scrollIntoWrap(row: HTMLTableRowElement): void {
    const top = tableWrap.scrollTop + table.tHead!.offsetHeight;
    const bottom = tableWrap.scrollTop + tableWrap.clientHeight;
    if (row.offsetTop < top || row.offsetTop + row.offsetHeight > bottom) {
      tableWrap.scrollTop = row.offsetTop - table.tHead!.offsetHeight;
    }
  }

  function choose(depth: number): void {
    const clamped = Math.min(nDepths() - 1, Math.max(0, Math.round(depth)));
    show(clamped);
    clearTimeout(pending);
    pending = setTimeout(() => {
      pending = undefined;
      model.set("depth", clamped);
      model.save_changes();
    }, DEBOUNCE_MS);
  }

  function rebuild(): void {
    const layers = model.get("layers");
    totals = paramsPerDepth(layers, nDepths());
    slider.max = String(nDepths() - 1);
    title.textContent = model.get("title");
    tbody.replaceChildren(
      ...layers.map((layer) => {
        const row = h("tr");
        row.dataset.depth = String(layer.depth);
        for (const col of COLUMNS) {
          const text = col.numeric ? formatCount(layer.params) : String(layer[col.key]);
          row.append(h("td", col.numeric ? "is-numeric" : "", text));
        }
        return row;
      }),
    );
    show(Math.min(shown, nDepths() - 1));
  }

  const onDepth = () => {
    clearTimeout(pending);
    pending = undefined;
    show(model.get("depth"));
  };
  const onInput = () => choose(Number(slider.value));
  const onKeydown = (event: KeyboardEvent) => {
    if (SLIDER_KEYS.has(event.key)) event.stopPropagation();
  };
  const onRowClick = (event: MouseEvent) => {
    const row = (event.target as Element).closest("tr");
    if (row?.dataset.depth !== undefined) choose(Number(row.dataset.depth));
  };
  const onBarClick = (event: MouseEvent) => {
    const box = canvas.getBoundingClientRect();
    if (box.width > 0) choose(Math.floor(((event.clientX - box.left) / box.width) * nDepths()));
  };

  const structural = ["change:layers", "change:n_depths", "change:depth_labels", "change:title"];
  model.on("change:depth", onDepth);
  for (const name of structural) model.on(name, rebuild);
  slider.addEventListener("input", onInput);
  slider.addEventListener("keydown", onKeydown);
  tbody.addEventListener("click", onRowClick);
  canvas.addEventListener("click", onBarClick);
  // Redraw when the cell is resized or JupyterLab switches between light and dark themes.
  // (and place the current row once the table is laid out: a view shown at a deep depth)
  const resize =
    typeof ResizeObserver === "undefined"
      ? undefined
      : new ResizeObserver((entries) => {
          redraw();
          if (entries.some((entry) => entry.target === tableWrap)) placeCurrent();
        });
  resize?.observe(canvas);
  resize?.observe(tableWrap);
  const stopTheme = onThemeChange(redraw);
  rebuild();

  return () => {
    clearTimeout(pending);
    model.off("change:depth", onDepth);
    for (const name of structural) model.off(name, rebuild);
    resize?.disconnect();
    stopTheme();
    root.remove();
  };
}

export default { render };
