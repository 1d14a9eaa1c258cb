// A small WebGL2 point renderer: round points, each interpolated on the GPU between a "from" and a
// "to" layout, coloured per point, selected points drawn last and larger while the rest are dimmed.
// A frame may draw only a prefix of a fixed random order of the points (level of detail, detail.ts).

import { MIN_DETAIL_POINTS, shuffledIndices } from "./detail";

const VERTEX = `#version 300 es
in vec2 a_from;
in vec2 a_to;
in vec4 a_color;
in float a_selected;
in vec2 a_edge;            // 1 where the point is pinned to the frame's edge: from, to
uniform float u_t;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
uniform float u_pass;      // 0: unselected points, 1: selected ones
uniform float u_dim;       // 1 when a selection exists
uniform vec3 u_background;
out vec4 v_color;
out float v_edge;
void main() {
  bool selected = a_selected > 0.5;
  if (u_dim > 0.5 && selected != (u_pass > 0.5)) {
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: not drawn in this pass
    gl_PointSize = 0.0;
    return;
  }
  vec2 p = mix(a_from, a_to, u_t);
  gl_Position = vec4(p * u_scale + u_offset, 0.0, 1.0);
  v_edge = mix(a_edge.x, a_edge.y, u_t);
  gl_PointSize = u_size * (u_dim > 0.5 && selected ? 1.5 : 1.0) * (v_edge > 0.5 ? 1.6 : 1.0);
  v_color = a_color;
  if (u_dim > 0.5 && !selected) v_color = vec4(mix(a_color.rgb, u_background, 0.7), a_color.a * 0.5);
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec4 v_color;
in float v_edge;
out vec4 color;
void main() {
  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float r = dot(c, c);
  if (r > 1.0) discard;
  if (v_edge > 0.5 && r < 0.3) discard;  // a point pinned to the frame's edge is a ring
  float a = (v_edge > 0.5 ? 1.0 : v_color.a) * (1.0 - smoothstep(0.7, 1.0, r));
  color = vec4(v_color.rgb * a, a);  // premultiplied
}`;

export interface DrawOptions {
  t: number;
  scale: [number, number];
  offset: [number, number];
  /** Point diameter in device pixels. */
  size: number;
  anySelected: boolean;
  background: [number, number, number];
  /** Draw only this many points, a fixed random sample (default: all). */
  limit?: number;
}

function compile(gl: WebGL2RenderingContext, type: number, source: string): WebGLShader {
  const shader = gl.createShader(type)!;
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

export class PointRenderer {
  readonly gl: WebGL2RenderingContext;
  private program: WebGLProgram;
  private vao: WebGLVertexArrayObject;
  private buffers: Record<"from" | "to" | "color" | "selected" | "edge", WebGLBuffer>;
  private uniforms: Record<string, WebGLUniformLocation | null> = {};
  private count = 0;
  private order: WebGLBuffer | null = null; // shuffled indices, for views that may be thinned
  private orderCount = 0;

  /** Throws when the browser has no WebGL2. */
  constructor(readonly canvas: HTMLCanvasElement) {
    const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: true, alpha: true });
    if (!gl) throw new Error("WebGL2 is not available in this browser");
    this.gl = gl;
    const program = gl.createProgram()!;
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`program: ${gl.getProgramInfoLog(program)}`);
    }
    this.program = program;
    for (const name of ["u_t", "u_scale", "u_offset", "u_size", "u_pass", "u_dim", "u_background"]) {
      this.uniforms[name] = gl.getUniformLocation(program, name);
    }
    this.vao = gl.createVertexArray()!;
    gl.bindVertexArray(this.vao);
    const attribute = (name: string, size: number, type: number, normalized: boolean) => {
      const buffer = gl.createBuffer()!;
      const location = gl.getAttribLocation(program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, size, type, normalized, 0, 0);
      return buffer;
    };
    this.buffers = {
      from: attribute("a_from", 2, gl.FLOAT, false),
      to: attribute("a_to", 2, gl.FLOAT, false),
      color: attribute("a_color", 4, gl.UNSIGNED_BYTE, true),
      selected: attribute("a_selected", 1, gl.UNSIGNED_BYTE, true),
      edge: attribute("a_edge", 2, gl.UNSIGNED_BYTE, true),
    };
    gl.bindVertexArray(null);
  }

  private upload(name: keyof PointRenderer["buffers"], data: ArrayBufferView): void {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers[name]);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
  }

  /** Both layouts, flat [x0, y0, x1, y1, ...] in world units, the same number of points. */
  setPositions(from: Float32Array, to: Float32Array): void {
    this.upload("from", from);
    this.upload("to", to);
    this.count = to.length >> 1;
    if (this.count > MIN_DETAIL_POINTS && this.orderCount !== this.count) {
      const gl = this.gl;
      this.order ??= gl.createBuffer();
      gl.bindVertexArray(this.vao); // the element buffer binding is part of the vertex array
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.order);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, shuffledIndices(this.count), gl.STATIC_DRAW);
      gl.bindVertexArray(null);
      this.orderCount = this.count;
    }
  }

  setColors(rgba: Uint8Array): void {
    this.upload("color", rgba);
  }

  /** Per point, 255 where it is pinned to the frame's edge in the layout it comes from / goes to. */
  setEdges(from: Uint8Array, to: Uint8Array): void {
    const pairs = new Uint8Array(2 * to.length);
    for (let i = 0; i < to.length; i++) {
      pairs[2 * i] = from[i] ?? 0;
      pairs[2 * i + 1] = to[i];
    }
    this.upload("edge", pairs);
  }

  /** One byte per point: 255 selected, 0 not. */
  setSelected(flags: Uint8Array): void {
    this.upload("selected", flags);
  }

  /** Match the drawing buffer to the canvas' CSS size times the pixel ratio. */
  resize(width: number, height: number, ratio: number): void {
    const w = Math.max(1, Math.round(width * ratio));
    const h = Math.max(1, Math.round(height * ratio));
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== h) this.canvas.height = h;
  }

  draw(options: DrawOptions): void {
    const gl = this.gl;
    const u = this.uniforms;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.count === 0) return;
    gl.useProgram(this.program);
    gl.bindVertexArray(this.vao);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.uniform1f(u.u_t, options.t);
    gl.uniform2f(u.u_scale, ...options.scale);
    gl.uniform2f(u.u_offset, ...options.offset);
    gl.uniform1f(u.u_size, options.size);
    gl.uniform1f(u.u_dim, options.anySelected ? 1 : 0);
    gl.uniform3f(u.u_background, ...options.background.map((c) => c / 255) as [number, number, number]);
    const limit = Math.min(this.count, options.limit ?? this.count);
    const thinned = limit < this.count && this.orderCount === this.count;
    for (const pass of options.anySelected ? [0, 1] : [0]) {
      gl.uniform1f(u.u_pass, pass);
      if (thinned) gl.drawElements(gl.POINTS, limit, gl.UNSIGNED_INT, 0);
      else gl.drawArrays(gl.POINTS, 0, this.count);
    }
    gl.bindVertexArray(null);
  }

  dispose(): void {
    const gl = this.gl;
    for (const buffer of Object.values(this.buffers)) gl.deleteBuffer(buffer);
    if (this.order) gl.deleteBuffer(this.order);
    gl.deleteVertexArray(this.vao);
    gl.deleteProgram(this.program);
    gl.getExtension("WEBGL_lose_context")?.loseContext();
  }
}
