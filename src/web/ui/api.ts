/** Fetching the API from the page. The response types are the server's own (src/web/api-types.ts). */
export * from '../api-types.js';

/** A failed API call: the server's reason, shown in the page as is. */
export class ApiFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path);
  if (!res.ok) {
    let reason = res.statusText;
    try {
      reason = ((await res.json()) as { error?: string }).error ?? reason;
    } catch { /* not JSON */ }
    throw new ApiFailure(res.status, `${res.status}: ${reason}`);
  }
  return (await res.json()) as T;
}

export async function getBytes(path: string): Promise<Uint8Array> {
  const res = await fetch(path);
  if (!res.ok) throw new ApiFailure(res.status, `${path}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Query string of the analysed grouping: `by=...&groups=...`. */
export function groupQuery(by: string, groups: readonly string[]): string {
  return `by=${encodeURIComponent(by)}&groups=${encodeURIComponent(groups.join(','))}`;
}
