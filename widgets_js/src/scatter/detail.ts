// Level of detail while the view moves: when frames take longer than a 30 fps budget (a software
// WebGL renderer, a weak GPU, a million points), a zoom, pan or depth transition draws a random
// subset of the points, sized from how long the last frames took; the frame after the motion
// settles draws every point. The first frame of a motion, the one that answers the key press or
// the wheel, draws half of that: it is on screen one display refresh sooner.

/** Frame interval aimed at while moving (30 fps). */
export const FRAME_BUDGET_MS = 1000 / 30;
/**
 * Intervals up to this times the budget count as on time: frames are shown on display refreshes
 * (16.7 ms apart at 60 Hz), so a frame that just fits lands at 33.3 ms, and jitter adds a little.
 */
export const ON_TIME = 1.2;
/** Never fewer points than this while moving (and views with fewer are always drawn whole). */
export const MIN_DETAIL_POINTS = 20_000;
/** The view counts as moving until this long after the last zoom or pan event. */
export const SETTLE_MS = 150;
/** Points drawn by moving frames before any has been timed (a guess, corrected by the first). */
export const INITIAL_DETAIL_POINTS = 200_000;
/** Growth a frame while frames are on time: probes upward slowly, backs off at once. */
export const GROWTH = 1.1;
/** The first frame of a motion draws this share of the budget (it answers the input). */
export const FIRST_FRAME_SHARE = 0.5;

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

/**
 * How many points a frame in motion draws, adapted from the intervals between such frames.
 *
 * ``points`` is what a frame can draw in the budget: a late frame (interval over ``ON_TIME``
 * budgets) sets it from the points that frame drew, scaled by budget / interval, less 10 %; a
 * frame on time that drew the whole budget raises it by ``GROWTH``. Frames at 33 ms and at 50 ms
 * alternate otherwise, since a frame slightly over budget waits for the next refresh.
 */
export class DetailBudget {
  private points = INITIAL_DETAIL_POINTS;
  private drawn = 0;
  private last = -1;

  /** A frame in motion at time ``now`` (ms) for ``n`` points: how many to draw. */
  frame(now: number, n: number): number {
    if (n <= MIN_DETAIL_POINTS) return n;
    const first = this.last < 0;
    if (!first && this.drawn > 0) {
      // the interval since the previous frame is (mostly) what drawing its points cost
      const interval = Math.max(1, now - this.last);
      if (interval > ON_TIME * FRAME_BUDGET_MS) {
        this.points = (0.9 * this.drawn * FRAME_BUDGET_MS) / interval;
      } else if (this.drawn + 1 >= this.points) {
        this.points = GROWTH * this.drawn;
      }
    }
    this.last = now;
    const aim = first ? FIRST_FRAME_SHARE * this.points : this.points;
    this.points = Math.min(this.points, n);
    this.drawn = Math.round(Math.min(n, Math.max(MIN_DETAIL_POINTS, aim)));
    return this.drawn;
  }

  /** The motion ended: the next frame draws everything and is not timed. */
  rest(): void {
    this.last = -1;
  }
}
