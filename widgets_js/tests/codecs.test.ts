import { describe, expect, it } from "vitest";
import { decode, encode, type DType } from "../src/codecs";

describe("codecs", () => {
  const cases: [DType, Float32Array | Uint32Array | Int32Array][] = [
    ["float32", new Float32Array([0.5, -1.25, 3e6, Number.NaN, 7, 8])],
    ["uint32", new Uint32Array([0, 1, 2 ** 32 - 1, 42, 5, 6])],
    ["int32", new Int32Array([-(2 ** 31), -1, 0, 1, 2 ** 31 - 1, 9])],
  ];

  it.each(cases)("round-trips %s through {view, dtype, shape}", (dtype, data) => {
    const payload = encode({ data, dtype, shape: [2, 3] });
    expect(payload.view).toBeInstanceOf(DataView);
    expect(payload.view.byteLength).toBe(24);
    const back = decode(payload);
    expect(back.dtype).toBe(dtype);
    expect(back.shape).toEqual([2, 3]);
    expect(back.data).toBeInstanceOf(data.constructor);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it("reads little-endian bytes as Python's numpy writes them", () => {
    const bytes = new Uint8Array([0, 0, 128, 63, 0, 0, 0, 192]); // 1.0, -2.0 as float32 LE
    const { data } = decode({ view: new DataView(bytes.buffer), dtype: "float32", shape: [2] });
    expect(Array.from(data)).toEqual([1, -2]);
  });

  it("copies a view whose offset is not aligned", () => {
    const bytes = new Uint8Array(9);
    new DataView(bytes.buffer).setFloat32(1, 2.5, true);
    new DataView(bytes.buffer).setFloat32(5, -4, true);
    const view = new DataView(bytes.buffer, 1, 8);
    expect(Array.from(decode({ view, dtype: "float32", shape: [2] }).data)).toEqual([2.5, -4]);
  });

  it("rejects a byte count that does not match the shape", () => {
    const view = new DataView(new ArrayBuffer(12));
    expect(() => decode({ view, dtype: "float32", shape: [2, 2] })).toThrow(/12 bytes/);
    expect(() => encode({ data: new Int32Array(3), dtype: "int32", shape: [2, 2] })).toThrow();
  });

  it("rejects an unknown dtype", () => {
    const view = new DataView(new ArrayBuffer(8));
    expect(() => decode({ view, dtype: "float64" as DType, shape: [1] })).toThrow(/float64/);
  });
});
