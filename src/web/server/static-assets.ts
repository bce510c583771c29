import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built UI (Vite output): dist/web under the package root (this file is dist/src/web/server/static-assets.js). */
export const UI_DIR = fileURLToPath(new URL('../../../web', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
  '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.map': 'application/json',
};

/**
 * The UI's files, listed once at start: a request is served only when its path is one of them,
 * so nothing outside the build folder can ever be named.
 */
export class StaticAssets {
  private readonly files = new Map<string, string>(); // url path -> file on disk

  constructor(readonly root: string = UI_DIR) {
    if (!existsSync(root)) return;
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const full = join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else this.files.set('/' + relative(root, full).split(sep).join('/'), full);
      }
    };
    walk(root);
  }

  get built(): boolean {
    return this.files.has('/index.html');
  }

  /** Bytes and content type of a URL path, or null (-> 404). */
  get(urlPath: string): { body: Uint8Array<ArrayBuffer>; type: string; immutable: boolean } | null {
    const path = urlPath === '/' ? '/index.html' : urlPath;
    const file = this.files.get(path);
    if (!file) return null;
    return { body: new Uint8Array(readFileSync(file)), type: TYPES[extname(file)] ?? 'application/octet-stream', immutable: path.startsWith('/assets/') };
  }
}

/**
 * True when a raw request target tries to leave its folder: `..` or `.` segments (also
 * percent-encoded, even twice), backslashes, NUL, empty segments (`//x`), a drive letter or an
 * encoded slash. Such requests get 404 before any routing.
 */
export function isTraversal(rawTarget: string): boolean {
  const path = rawTarget.split('?')[0].split('#')[0];
  if (!path.startsWith('/')) return true; // absolute-form or garbage target
  let decoded = path;
  for (let i = 0; i < 3; i++) {
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return true;
    }
    if (next === decoded) break;
    decoded = next;
  }
  if (decoded !== path && /%2f|%5c/i.test(path)) return true; // encoded separators
  if (/[\\\0]/.test(decoded)) return true;
  const segs = decoded.split('/').slice(1);
  return segs.some((s, i) => s === '..' || s === '.' || (s === '' && i < segs.length - 1) || /^[a-zA-Z]:$/.test(s));
}
