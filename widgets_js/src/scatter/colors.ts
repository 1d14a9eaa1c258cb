// Per-point colours: a categorical palette that reads on JupyterLab's light and dark backgrounds,
// a continuous ramp, and parsing of the theme's CSS colours. Output is RGBA bytes, one per point.

export type RGB = [number, number, number];

/** Tableau 10 then the lighter halves of Tableau 20: mid-luminance hues, legible on both themes. */
export const CATEGORICAL: readonly string[] = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63",
  "#86bcb6", "#d37295", "#fabfd2", "#d4a6c8", "#79706e",
];

/** Viridis at 9 stops. */
const VIRIDIS: readonly string[] = [
  "#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c",
  "#28ae80", "#5ec962", "#addc30", "#fde725",
];

export function parseColor(css: string, fallback: RGB = [25, 118, 210]): RGB {
  const text = css.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(text);
  if (m) return [...m[1]].map((c) => parseInt(c + c, 16)) as RGB;
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(text);
  if (m) return [0, 2, 4].map((i) => parseInt(m![1].slice(i, i + 2), 16)) as RGB;
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/i.exec(text);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])].map((v) => Math.round(v)) as RGB;
  return fallback;
}

/** Relative luminance in [0, 1] (sRGB weights, no gamma: good enough to tell dark from light). */
export function luminance([r, g, b]: RGB): number {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

export function categorical(code: number): RGB {
  const n = CATEGORICAL.length;
  return parseColor(CATEGORICAL[((Math.floor(code) % n) + n) % n]);
}

/**
 * The ramp at `t` in [0, 1]. On a dark background the darkest stops are skipped, on a light one
 * the palest, so every value stays visible.
 */
export function ramp(t: number, dark: boolean): RGB {
  const lo = dark ? 0.2 : 0;
  const hi = dark ? 1 : 0.85;
  const u = lo + (hi - lo) * Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const x = u * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const a = parseColor(VIRIDIS[i]);
  const b = parseColor(VIRIDIS[i + 1]);
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as RGB;
}

export type ColorKind = "none" | "category" | "continuous";

export interface ColorSpec {
  kind: ColorKind;
  /** Category codes or metric values, one per point (ignored for "none"). */
  values: Float32Array | null;
  /** Colour of every point when there are no values. */
  neutral: RGB;
  dark: boolean;
  /** Opacity of a point, 0..1. */
  alpha: number;
}

/** The finite range of `values`. */
export function extent(values: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo > hi ? [0, 0] : [lo, hi];
}

/** RGBA bytes for `n` points. Missing values (NaN) get the neutral colour at half opacity. */
export function pointColors(n: number, spec: ColorSpec): Uint8Array {
  const out = new Uint8Array(4 * n);
  const a = Math.round(255 * spec.alpha);
  const values = spec.kind === "none" ? null : spec.values;
  const [lo, hi] = values && spec.kind === "continuous" ? extent(values) : [0, 0];
  const cache = new Map<number, RGB>();
  for (let i = 0; i < n; i++) {
    const v = values ? values[i] : Number.NaN;
    let rgb = spec.neutral;
    let alpha = a;
    if (values && !Number.isFinite(v)) alpha = a >> 1;
    else if (values && spec.kind === "category") {
      rgb = cache.get(v) ?? categorical(v);
      cache.set(v, rgb);
    } else if (values) rgb = ramp(hi > lo ? (v - lo) / (hi - lo) : 0.5, spec.dark);
    out[4 * i] = rgb[0];
    out[4 * i + 1] = rgb[1];
    out[4 * i + 2] = rgb[2];
    out[4 * i + 3] = alpha;
  }
  return out;
}

/** CSS for a legend's gradient. */
export function rampCss(dark: boolean): string {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `rgb(${ramp(t, dark).join(",")})`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}
