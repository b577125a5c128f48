// Stylesheets imported for their side effect: esbuild bundles them into the dashboard's .css file.
declare module '*.css' {}
