import { describe, expect, it } from "vitest";
import {
  DetailBudget,
  FRAME_BUDGET_MS,
  INITIAL_DETAIL_POINTS,
  MIN_DETAIL_POINTS,
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

describe("DetailBudget", () => {
  it("draws small views whole", () => {
    const budget = new DetailBudget();
    expect(budget.frame(0, MIN_DETAIL_POINTS)).toBe(MIN_DETAIL_POINTS);
    expect(budget.frame(500, 1_000)).toBe(1_000);
  });

  it("shrinks to the frame budget when frames are slow, within bounds", () => {
    const budget = new DetailBudget();
    const n = 1_000_000;
    expect(budget.frame(0, n)).toBe(INITIAL_DETAIL_POINTS); // not yet timed: a guess
    // drawing them took 100 ms: aim at 33 ms
    const next = budget.frame(100, n);
    expect(next).toBeCloseTo((0.9 * INITIAL_DETAIL_POINTS * FRAME_BUDGET_MS) / 100, -2);
    // far slower still: never below the floor
    expect(budget.frame(100 + 10_000, n)).toBe(MIN_DETAIL_POINTS);
  });

  it("grows back at most 25 % a frame when frames are fast, up to every point", () => {
    const budget = new DetailBudget();
    const n = 200_000;
    budget.frame(0, n);
    const slow = budget.frame(1000, n);
    expect(slow).toBe(MIN_DETAIL_POINTS);
    const grown = budget.frame(1010, n);
    expect(grown).toBe(Math.round(1.25 * slow));
    let t = 1010;
    let drawn = grown;
    for (let i = 0; i < 20; i++) drawn = budget.frame((t += 5), n);
    expect(drawn).toBe(n);
  });

  it("does not time the first frame after a rest", () => {
    const budget = new DetailBudget();
    const n = 1_000_000;
    budget.frame(0, n);
    const small = budget.frame(1000, n);
    budget.rest();
    expect(budget.frame(60_000, n)).toBe(small); // the pause is not a frame interval
  });
});
