import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built UI (Vite output): dist/web under the package root (this file is dist/src/web/server/request-guard.js). */
export const UI_DIR = fileURLToPath(new URL('../../../web', import.meta.url));

export function uiBuilt(root: string): boolean {
  return existsSync(join(root, 'index.html'));
}

/**
 * True when a raw request target could name anything outside the served folder: `..` or `.`
 * segments (also percent-encoded, up to three times), encoded separators, backslashes, NUL, empty
 * segments (`//etc`), drive letters, or a target that is not an origin-form path. Checked on the raw
 * target before routing, so no later decoding step can turn it into a traversal.
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
