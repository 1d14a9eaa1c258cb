// From data coordinates to the screen and back: each depth framed on its own, zoom and pan, lasso
// and nearest-point hit tests. Plain arithmetic on typed arrays; nothing here touches the DOM.

/** Centre and scale of a depth's frame: world = (xy - centre) * scale; `robust` when the frame
 * was set by the bulk of the points (far outliers pinned to its edge), not by all of them. */
export interface Fit {
  cx: number;
  cy: number;
  scale: number;
  robust?: boolean;
}

/** Share of the square the points that set the frame fill. */
export const MARGIN = 0.92;
/** Quantiles per axis that bound a depth's bulk (96 % of the points on each axis). */
export const BULK_QUANTILES: [number, number] = [0.02, 0.98];
/** A point is far when it is further from the bulk's centre than this times the bulk's half
 * side, on either axis: far points do not set the frame. */
export const FAR = 2.5;
/** Points beyond this (world units, either axis) are pinned to the frame's edge, and marked. */
export const EDGE = 0.97;
/** The quantiles are read on an evenly strided sample of at most this many points. */
export const QUANTILE_SAMPLE = 20_000;

/** Centre and scale that put every finite point inside [-MARGIN, MARGIN]² (all points set it). */
export function fit(xy: Float32Array): Fit {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i + 1 < xy.length; i += 2) {
    const x = xy[i];
    const y = xy[i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (x0 > x1) return { cx: 0, cy: 0, scale: 1 };
  const half = Math.max(x1 - x0, y1 - y0) / 2;
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale: half > 0 ? MARGIN / half : 1 };
}

/** The value at rank floor(q (m - 1)) of the sorted `values` (q in [0, 1]), or at the rank
 * rounded up with `upper` (so that a few points never cut both ends unevenly). */
export function quantile(sorted: ArrayLike<number>, q: number, upper = false): number {
  const rank = q * (sorted.length - 1);
  return sorted[upper ? Math.ceil(rank) : Math.floor(rank)];
}

/**
 * The frame of one depth, so that the bulk of its points fills the view: the points set it as in
 * {@link fit}, except the far ones (beyond FAR times the half side of the bulk, the box of the
 * BULK_QUANTILES per axis, from its centre), which {@link normalise} then pins to the frame's edge.
 * One scale for both axes; without far points this is {@link fit}. ``projection_export.py``
 * frames the same way.
 */
export function frame(xy: Float32Array): Fit {
  const n = xy.length >> 1;
  const stride = Math.max(1, Math.ceil(n / QUANTILE_SAMPLE));
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i += stride) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (Number.isFinite(x) && Number.isFinite(y)) {
      xs.push(x);
      ys.push(y);
    }
  }
  if (xs.length < 2) return fit(xy);
  xs.sort((a, b) => a - b);
  ys.sort((a, b) => a - b);
  const [lo, hi] = BULK_QUANTILES;
  const [x0, x1] = [quantile(xs, lo), quantile(xs, hi, true)];
  const [y0, y1] = [quantile(ys, lo), quantile(ys, hi, true)];
  const reach = (FAR * Math.max(x1 - x0, y1 - y0)) / 2;
  if (!(reach > 0)) return fit(xy);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const near = new Float32Array(xy.length).fill(Number.NaN);
  let far = 0;
  for (let i = 0; i + 1 < xy.length; i += 2) {
    if (Math.max(Math.abs(xy[i] - cx), Math.abs(xy[i + 1] - cy)) > reach) far++;
    else {
      near[i] = xy[i];
      near[i + 1] = xy[i + 1];
    }
  }
  return far ? { ...fit(near), robust: true } : fit(xy);
}

/** `xy` in world units ([-1, 1]² at zoom 1), as a new array; with `edge`, a point beyond EDGE is
 * pinned to the frame's edge (along the ray from the centre) and flagged 255 in `edge`. */
export function normalise(xy: Float32Array, f: Fit = fit(xy), edge?: Uint8Array): Float32Array {
  const out = new Float32Array(xy.length);
  for (let i = 0; i + 1 < xy.length; i += 2) {
    let x = (xy[i] - f.cx) * f.scale;
    let y = (xy[i + 1] - f.cy) * f.scale;
    const reach = Math.max(Math.abs(x), Math.abs(y));
    if (edge && reach > EDGE) {
      x *= EDGE / reach;
      y *= EDGE / reach;
      edge[i >> 1] = 255;
    }
    out[i] = x;
    out[i + 1] = y;
  }
  return out;
}

/** Zoom and pan: world point w lands at `w * zoom + pan` in view units. */
export interface Camera {
  zoom: number;
  panX: number;
  panY: number;
}

export const HOME: Camera = { zoom: 1, panX: 0, panY: 0 };

/** Zoom limits (world units per view unit). */
export const MIN_ZOOM = 0.2;
export const MAX_ZOOM = 500;

/** A camera from its synced form ``[zoom, panX, panY]``; anything else (or non-finite) is HOME. */
export function cameraFrom(values: unknown): Camera {
  if (!Array.isArray(values) || values.length !== 3 || !values.every((v) => Number.isFinite(v))) {
    return HOME;
  }
  const [zoom, panX, panY] = values as number[];
  return { zoom: Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom)), panX, panY };
}

/** The synced form of a camera, ``[zoom, panX, panY]``. */
export function cameraValues(c: Camera): [number, number, number] {
  return [c.zoom, c.panX, c.panY];
}

export function sameCamera(a: Camera, b: Camera): boolean {
  return a.zoom === b.zoom && a.panX === b.panX && a.panY === b.panY;
}

/** Screen (CSS pixels, origin top left) of a `width` x `height` area; the square fits inside. */
export interface Viewport {
  width: number;
  height: number;
}

function unit(v: Viewport): number {
  return Math.max(1, Math.min(v.width, v.height)) / 2; // pixels per view unit
}

export function toScreen(c: Camera, v: Viewport, x: number, y: number): [number, number] {
  const k = unit(v);
  return [v.width / 2 + (x * c.zoom + c.panX) * k, v.height / 2 - (y * c.zoom + c.panY) * k];
}

export function toWorld(c: Camera, v: Viewport, sx: number, sy: number): [number, number] {
  const k = unit(v);
  return [((sx - v.width / 2) / k - c.panX) / c.zoom, ((v.height / 2 - sy) / k - c.panY) / c.zoom];
}

/** Clip-space scale and offset for the shader: `clip = world * scale + offset`. */
export function clipTransform(c: Camera, v: Viewport): { scale: [number, number]; offset: [number, number] } {
  const k = unit(v);
  const sx = (2 * k) / Math.max(1, v.width);
  const sy = (2 * k) / Math.max(1, v.height);
  return { scale: [c.zoom * sx, c.zoom * sy], offset: [c.panX * sx, c.panY * sy] };
}

/** Zoom by `factor` keeping the world point under (sx, sy) where it is. */
export function zoomAt(c: Camera, v: Viewport, sx: number, sy: number, factor: number): Camera {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, c.zoom * factor));
  const [wx, wy] = toWorld(c, v, sx, sy);
  const k = unit(v);
  const vx = (sx - v.width / 2) / k;
  const vy = (v.height / 2 - sy) / k;
  return { zoom, panX: vx - wx * zoom, panY: vy - wy * zoom };
}

/** Move by a screen-pixel drag. */
export function panBy(c: Camera, v: Viewport, dx: number, dy: number): Camera {
  const k = unit(v);
  return { zoom: c.zoom, panX: c.panX + dx / k, panY: c.panY - dy / k };
}

/** Even-odd rule; `polygon` is flat [x0, y0, x1, y1, ...]. */
export function pointInPolygon(x: number, y: number, polygon: ArrayLike<number>): boolean {
  let inside = false;
  const n = polygon.length >> 1;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = polygon[2 * i];
    const yi = polygon[2 * i + 1];
    const xj = polygon[2 * j];
    const yj = polygon[2 * j + 1];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Indices of the points of `xy` (flat pairs) inside `polygon` (flat pairs, same units), ascending. */
export function selectInPolygon(xy: Float32Array, polygon: ArrayLike<number>): number[] {
  if (polygon.length < 6) return [];
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i + 1 < polygon.length; i += 2) {
    x0 = Math.min(x0, polygon[i]);
    x1 = Math.max(x1, polygon[i]);
    y0 = Math.min(y0, polygon[i + 1]);
    y1 = Math.max(y1, polygon[i + 1]);
  }
  const hits: number[] = [];
  for (let i = 0; 2 * i + 1 < xy.length; i++) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    if (pointInPolygon(x, y, polygon)) hits.push(i);
  }
  return hits;
}

/** The point of `xy` nearest (x, y) within `radius` (same units), or -1. */
export function nearest(xy: Float32Array, x: number, y: number, radius: number): number {
  let best = -1;
  let bestD = radius * radius;
  for (let i = 0; 2 * i + 1 < xy.length; i++) {
    const dx = xy[2 * i] - x;
    const dy = xy[2 * i + 1] - y;
    const d = dx * dx + dy * dy;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}
