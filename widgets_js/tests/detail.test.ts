import { describe, expect, it } from "vitest";
import {
  DetailBudget,
  FIRST_FRAME_SHARE,
  FRAME_BUDGET_MS,
  GROWTH,
  INITIAL_DETAIL_POINTS,
  MIN_DETAIL_POINTS,
  ON_TIME,
  shuffledIndices,
} from "../src/scatter/detail";

describe("shuffledIndices", () => {
  it("is a permutation, the same for the same seed", () => {
    const order = shuffledIndices(10_000);
    expect(Array.from(order).sort((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(shuffledIndices(10_000)).toEqual(order);
    expect(shuffledIndices(10_000, 7)).not.toEqual(order);
  });

  it("has prefixes that sample the points evenly", () => {
    const prefix = shuffledIndices(100_000).subarray(0, 10_000);
    const low = prefix.filter((i) => i < 50_000).length;
    expect(Math.abs(low - 5_000)).toBeLessThan(300); // binomial sd 50
  });
});

/** Frames of a motion whose drawing costs ``perPoint`` ms a point, shown on 60 Hz refreshes. */
function simulate(budget: DetailBudget, n: number, perPoint: number, frames: number, start = 0) {
  const refresh = 1000 / 60;
  let t = start;
  const drawn: number[] = [];
  const intervals: number[] = [];
  for (let i = 0; i < frames; i++) {
    const count = budget.frame(t, n);
    drawn.push(count);
    const next = Math.ceil((t + count * perPoint + 1) / refresh) * refresh;
    intervals.push(next - t);
    t = next;
  }
  return { drawn, intervals, end: t };
}

describe("DetailBudget", () => {
  it("draws small views whole", () => {
    const budget = new DetailBudget();
    expect(budget.frame(0, MIN_DETAIL_POINTS)).toBe(MIN_DETAIL_POINTS);
    expect(budget.frame(500, 1_000)).toBe(1_000);
  });

  it("shrinks to the frame budget when frames are slow, within bounds", () => {
    const budget = new DetailBudget();
    const n = 1_000_000;
    const first = budget.frame(0, n); // not yet timed: half the initial guess
    expect(first).toBe(FIRST_FRAME_SHARE * INITIAL_DETAIL_POINTS);
    // drawing them took 100 ms: aim at the budget
    expect(budget.frame(100, n)).toBeCloseTo((0.9 * first * FRAME_BUDGET_MS) / 100, -1);
    // far slower still: never below the floor
    expect(budget.frame(100 + 10_000, n)).toBe(MIN_DETAIL_POINTS);
  });

  it("counts a frame shown on the second refresh as on time and grows slowly, up to every point", () => {
    const budget = new DetailBudget();
    const n = 200_000;
    budget.frame(0, n);
    const slow = budget.frame(1000, n);
    expect(slow).toBe(MIN_DETAIL_POINTS);
    expect(2 * (1000 / 60)).toBeLessThan(ON_TIME * FRAME_BUDGET_MS);
    const grown = budget.frame(1000 + 2 * (1000 / 60), n);
    expect(grown).toBe(Math.round(GROWTH * slow));
    let t = 1040;
    let drawn = grown;
    for (let i = 0; i < 40; i++) drawn = budget.frame((t += 5), n);
    expect(drawn).toBe(n);
  });

  it("settles near 30 fps on a slow renderer, drawing what fits", () => {
    const budget = new DetailBudget();
    const n = 1_000_000;
    const perPoint = 0.0006; // SwiftShader: ~0.6 microseconds a point
    const { drawn, intervals } = simulate(budget, n, perPoint, 200);
    const steady = intervals.slice(50).sort((a, b) => a - b);
    expect(steady[Math.floor(steady.length / 2)]).toBeCloseTo(2000 / 60, 5); // median: 30 fps
    expect(steady.filter((ms) => ms > 40).length / steady.length).toBeLessThan(0.2);
    const late = drawn.slice(50);
    expect(Math.min(...late)).toBeGreaterThan(20_000);
    expect(Math.max(...late)).toBeLessThan(60_000);
  });

  it("halves the first frame of a motion, not the ones after it", () => {
    const budget = new DetailBudget();
    const n = 1_000_000;
    const before = simulate(budget, n, 0.0006, 100);
    const learned = before.drawn[before.drawn.length - 1];
    budget.rest();
    const first = budget.frame(before.end + 60_000, n); // the pause is not a frame interval
    expect(first).toBeLessThan(0.6 * learned * GROWTH);
    expect(first).toBeGreaterThanOrEqual(MIN_DETAIL_POINTS);
    // the quick first frame does not lower what the next ones draw
    expect(budget.frame(before.end + 60_000 + 1000 / 60, n)).toBeGreaterThan(1.5 * first);
  });
});
