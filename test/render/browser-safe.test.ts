import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The dashboard imports src/render/spec*.ts in the browser: they and everything they import must not touch Node. */
test('spec builders and their imports use nothing from Node or DuckDB', () => {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    assert.doesNotMatch(src, /from ['"](node:|fs|path|os|@duckdb|vega['"]|@resvg)/, file);
    assert.doesNotMatch(src, /import\(['"](node:|@duckdb)/, file);
    for (const m of src.matchAll(/from ['"](\.[^'"]+)\.js['"]/g)) visit(resolve(dirname(file), m[1] + '.ts'));
  };
  for (const f of ['spec.ts', 'spec-data.ts', 'spec-marks.ts', 'spec-palette.ts', 'spec-layout.ts', 'spec-load.ts', 'spec-coactivation.ts', 'spec-depth.ts']) visit(join(root, 'src/render', f));
  assert.ok(seen.size >= 6, [...seen].join(' '));
});
