import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Every module a file imports, following relative imports; bare specifiers are returned as they are. */
function importsOf(file: string, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  if (seen.has(file)) return out;
  seen.add(file);
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith('.')) {
      const ts = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      for (const x of importsOf(ts, seen)) out.add(x);
      out.add(join('src', ts.slice(join(ROOT, 'src').length + 1)));
    } else out.add(spec);
  }
  return out;
}

test('the browser-side data code (shapes, encoding, images, PNG, specs) imports nothing from Node', () => {
  for (const f of ['shapes.ts', 'encode.ts', 'image.ts', 'png.ts', 'spec.ts', 'sample.ts']) {
    const deps = [...importsOf(join(ROOT, 'src', 'data', f))];
    const node = deps.filter((d) => d.startsWith('node:') || ['fs', 'path', 'os', 'worker_threads', 'child_process'].includes(d));
    assert.deepEqual(node, [], `src/data/${f} reaches ${node.join(', ')}`);
    assert.ok(!deps.some((d) => d.includes('src/io/') || d.includes('jsonl') || d.includes('source')), `src/data/${f}: ${deps.join(', ')}`);
  }
  // and the Node-only ones really are found by this check
  assert.ok([...importsOf(join(ROOT, 'src', 'data', 'jsonl.ts'))].includes('node:fs'));
});
