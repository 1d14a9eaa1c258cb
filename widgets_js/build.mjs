// Builds one ESM bundle per view into ../explorer/static/ (anywidget loads each from a Blob URL,
// so nothing may be split into chunks). `node build.mjs --watch` rebuilds with inline sourcemaps.
import * as esbuild from "esbuild";

const VIEWS = ["layer_browser", "projection_view"];
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: VIEWS.map((view) => ({ in: `src/${view}.ts`, out: view })),
  outdir: "../explorer/static",
  bundle: true,
  format: "esm",
  splitting: false,
  target: "es2020",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  logLevel: "info",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
