// Level of detail while the view moves: when frames take longer than a 30 fps budget (a software
// WebGL renderer, a weak GPU, a million points), a zoom, pan or depth transition draws a random
// subset of the points, sized from how long the last frames took; the frame after the motion
// settles draws every point.

/** Frame time aimed at while moving (30 fps). */
export const FRAME_BUDGET_MS = 33;
/** Never fewer points than this while moving (and views with fewer are always drawn whole). */
export const MIN_DETAIL_POINTS = 50_000;
/** The view counts as moving until this long after the last zoom or pan event. */
export const SETTLE_MS = 150;
/** Points drawn by moving frames before any has been timed (a guess that grows 25 % a frame). */
export const INITIAL_DETAIL_POINTS = 200_000;

/**
 * A fixed pseudo-random order of 0..n-1 (Fisher-Yates driven by xorshift32): every prefix is a
 * uniform random sample of the points, the same one frame after frame.
 */
export function shuffledIndices(n: number, seed = 0x9e3779b9): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** How many points a frame in motion draws, adapted from the intervals between such frames. */
export class DetailBudget {
  private points = INITIAL_DETAIL_POINTS;
  private drawn = 0;
  private last = -1;

  /** A frame in motion at time ``now`` (ms) for ``n`` points: how many to draw. */
  frame(now: number, n: number): number {
    if (n <= MIN_DETAIL_POINTS) return n;
    if (this.last >= 0 && this.drawn > 0) {
      // the interval since the previous frame is (mostly) what drawing its points cost
      const interval = Math.max(1, now - this.last);
      const fit = (this.drawn * FRAME_BUDGET_MS) / interval;
      this.points = interval > FRAME_BUDGET_MS ? 0.9 * fit : Math.min(fit, 1.25 * this.drawn);
    }
    this.last = now;
    this.drawn = Math.round(Math.min(n, Math.max(MIN_DETAIL_POINTS, this.points)));
    return this.drawn;
  }

  /** The motion ended: the next frame draws everything and is not timed. */
  rest(): void {
    this.last = -1;
  }
}
