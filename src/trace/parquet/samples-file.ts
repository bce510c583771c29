import { Conv, PType, ParquetFileWriter, type Leaf } from './file-writer.js';
import type { SampleRow } from '../writer.js';

/**
 * samples.parquet (SPEC §2), written as samples arrive: the schema DuckDB gave it (sample INTEGER,
 * text VARCHAR, images BLOB[], source VARCHAR, then domain VARCHAR, tokens VARCHAR[] and
 * image_grids INTEGER[][] when some sample had them), rows in arrival order, an empty list where
 * the sample had one and NULL where it had none. A row group goes to the file when it holds ROWS
 * samples or about BYTES (a sample carries its images), so memory stays flat. Every row group holds
 * all seven columns, since a later sample may fill one; the footer lists the optional ones only if
 * some sample did (the others' chunks, a few bytes of NULL levels, stay unreferenced).
 */

const ROWS = 4096;
const BYTES = 16 << 20;
const OPTIONAL = ['domain', 'tokens', 'image_grids'] as const;
export type OptionalSampleColumn = (typeof OPTIONAL)[number];

export class SamplesFile {
  private readonly file: ParquetFileWriter;
  private rows: SampleRow[] = [];
  private bytes = 0;
  /** the optional columns some sample filled */
  readonly filled = new Set<OptionalSampleColumn>();

  constructor(path: string) {
    const at = (rows: Int32Array) => Array.from(rows, (r) => this.rows[r]);
    const text = (name: string, get: (s: SampleRow) => string | null): Leaf => ({
      name, list: false, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.byteArrays(at(rows).map(get)),
    });
    this.file = new ParquetFileWriter(path, [
      {
        name: 'sample', list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32',
        write: (w, rows) => w.deltaInts(Int32Array.from(at(rows), (s) => s.sample)),
      },
      text('text', (s) => s.text),
      { name: 'images', list: true, type: PType.BYTE_ARRAY, conv: null, logical: null, write: (w, rows) => w.byteArrayLists(at(rows).map((s) => s.images)) },
      text('source', (s) => s.source),
      text('domain', (s) => s.domain ?? null),
      { name: 'tokens', list: true, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.byteArrayLists(at(rows).map((s) => s.tokens ?? null)) },
      {
        name: 'image_grids', list: true, listOfLists: true, type: PType.INT32, conv: Conv.INT_32, logical: 'int32',
        write: (w, rows) => w.intListLists(at(rows).map((s) => s.image_grids ?? null)),
      },
    ], { ownChunkWriter: true });
  }

  add(s: SampleRow): void {
    this.rows.push(s);
    for (const c of OPTIONAL) if (s[c] !== undefined && s[c] !== null) this.filled.add(c);
    this.bytes += 64 + s.text.length + s.images.reduce((t, b) => t + b.length, 0) + (s.tokens?.reduce((t, x) => t + x.length + 16, 0) ?? 0);
    if (this.rows.length >= ROWS || this.bytes >= BYTES) this.flush();
  }

  /** The last row group and the footer; closes the file. */
  finish(): void {
    this.flush();
    this.file.finish((leaf) => !(OPTIONAL as readonly string[]).includes(leaf.name) || this.filled.has(leaf.name as OptionalSampleColumn));
    this.file.close();
  }

  close(): void {
    this.file.close();
  }

  private flush(): void {
    if (this.rows.length === 0) return;
    this.file.rowGroup(Int32Array.from(this.rows.keys()));
    this.rows = [];
    this.bytes = 0;
  }
}
