import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { InputError } from './errors.js';

/**
 * Inputs are regular files (SPEC §6): a FIFO, a device such as /dev/zero, or a folder is an
 * error, found by fstat on the opened descriptor (O_NONBLOCK, so opening a FIFO does not wait
 * for a writer), before a byte is read. The size is checked against `maxBytes` before the
 * buffer is allocated.
 */
export function readInputFile(path: string, maxBytes: number, what = 'file'): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw fsInputError(path, e, what);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new InputError(`${path}: is a folder, expected a ${what}`);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file (a device, FIFO or socket); only regular files are read`);
    if (st.size > maxBytes) throw new InputError(`${path}: ${st.size} bytes is more than the ${maxBytes} this ${what} may have`);
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== st.size) throw new InputError(`${path}: changed while being read (${off} of ${st.size} bytes)`);
    return buf;
  } catch (e) {
    throw e instanceof InputError ? e : fsInputError(path, e, what);
  } finally {
    closeSync(fd);
  }
}

export function readInputText(path: string, maxBytes: number, what = 'file'): string {
  const b = readInputFile(path, maxBytes, what);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw new InputError(`${path}: not valid UTF-8 text`);
  }
}

/** Check without reading that `path` is a regular file (for inputs read as streams). */
export function checkInputFile(path: string, what = 'file'): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw fsInputError(path, e, what);
  }
  if (st.isDirectory()) throw new InputError(`${path}: is a folder, expected a ${what}`);
  if (!st.isFile()) throw new InputError(`${path}: not a regular file (a device, FIFO or socket); only regular files are read`);
}

/** A Node fs error (ENOENT, EACCES, EISDIR, ...) on an input as one line naming the file. */
export function fsInputError(path: string, e: unknown, what = 'file'): InputError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const why: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EISDIR: `is a folder, expected a ${what}`,
    ENOTDIR: 'a part of the path is not a folder',
    ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'name too long',
    EMFILE: 'too many open files',
  };
  return new InputError(`${path}: ${why[code ?? ''] ?? `cannot read (${code ?? (e as Error)?.message ?? e})`}`);
}
