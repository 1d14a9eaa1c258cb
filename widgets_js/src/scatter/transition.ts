// Moving points from one depth's layout to the next: timing and interpolation, no drawing.

/** Smooth start and stop; 0 -> 0, 1 -> 1. */
export function easeInOutCubic(t: number): number {
  return t < 0.5 ? 4 * t * t * t : 1 - (-2 * t + 2) ** 3 / 2;
}

/** How far a transition that started at `start` and lasts `duration` ms is at `now`, in [0, 1]. */
export function progress(start: number, now: number, duration: number): number {
  if (!(duration > 0)) return 1;
  return Math.min(1, Math.max(0, (now - start) / duration));
}

/** `from + (to - from) * t` element-wise, written into `out` (allocated when not given). */
export function interpolate(
  from: Float32Array,
  to: Float32Array,
  t: number,
  out: Float32Array = new Float32Array(to.length),
): Float32Array {
  if (from.length !== to.length || out.length !== to.length) {
    throw new Error(`cannot interpolate ${from.length} values towards ${to.length}`);
  }
  if (t >= 1) {
    out.set(to);
    return out;
  }
  if (t <= 0) {
    out.set(from);
    return out;
  }
  for (let i = 0; i < to.length; i++) out[i] = from[i] + (to[i] - from[i]) * t;
  return out;
}

/**
 * Where the points are while a transition runs. A new target mid-way starts from where the points
 * are drawn now, so they never jump.
 */
export class Transition {
  from: Float32Array;
  to: Float32Array;
  start = 0;
  duration = 0;

  constructor(initial: Float32Array) {
    this.from = initial;
    this.to = initial;
  }

  /** The eased fraction done at `now`. */
  t(now: number): number {
    return easeInOutCubic(progress(this.start, now, this.duration));
  }

  running(now: number): boolean {
    return progress(this.start, now, this.duration) < 1;
  }

  /** The positions drawn at `now`. */
  positions(now: number): Float32Array {
    return this.running(now) ? interpolate(this.from, this.to, this.t(now)) : this.to;
  }

  /** Head for `to`, starting at `now` from the positions drawn at that moment. */
  retarget(to: Float32Array, now: number, duration: number): void {
    this.from = this.positions(now);
    this.to = to;
    this.start = now;
    this.duration = duration;
  }
}
