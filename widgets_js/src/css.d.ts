// esbuild bundles a view's stylesheet into explorer/static/<view>.css next to its script.
declare module "*.css";
