import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard UI: built into dist/web (served by src/web/server), relative asset paths, no CDN.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../../../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 3000,
    sourcemap: false,
  },
});
