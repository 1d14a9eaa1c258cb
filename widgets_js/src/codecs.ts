// Arrays travel between Python and JS as {view, dtype, shape}: raw little-endian bytes plus
// enough to read them back. One place decodes and encodes them for every view.

export type DType = "float32" | "uint32" | "int32";

export interface ArrayPayload {
  view: DataView;
  dtype: DType;
  shape: number[];
}

export type TypedArray = Float32Array | Uint32Array | Int32Array;

export interface NDArray<T extends TypedArray = TypedArray> {
  data: T;
  dtype: DType;
  shape: number[];
}

type Constructor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray;

const CONSTRUCTORS: Record<DType, Constructor & { BYTES_PER_ELEMENT: number }> = {
  float32: Float32Array,
  uint32: Uint32Array,
  int32: Int32Array,
};

function size(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export function decode(payload: ArrayPayload): NDArray {
  const { view, dtype, shape } = payload;
  const Ctor = CONSTRUCTORS[dtype];
  if (!Ctor) throw new Error(`unsupported dtype ${String(dtype)}`);
  const n = size(shape);
  if (view.byteLength !== n * Ctor.BYTES_PER_ELEMENT) {
    throw new Error(
      `${view.byteLength} bytes do not hold a ${dtype} array of shape [${shape.join(", ")}]`,
    );
  }
  // A typed array needs an aligned offset; buffers sliced out of a message may not be.
  const aligned = view.byteOffset % Ctor.BYTES_PER_ELEMENT === 0;
  const bytes = aligned
    ? view.buffer
    : view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  const data = new Ctor(bytes, aligned ? view.byteOffset : 0, n);
  return { data, dtype, shape: [...shape] };
}

export function encode(array: NDArray): ArrayPayload {
  const { data, dtype, shape } = array;
  if (data.length !== size(shape)) {
    throw new Error(`${data.length} values do not fill shape [${shape.join(", ")}]`);
  }
  return { view: new DataView(data.buffer, data.byteOffset, data.byteLength), dtype, shape: [...shape] };
}
