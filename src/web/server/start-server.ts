import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { InputError } from '../../util/errors.js';
import { createApp } from './app.js';
import { UI_DIR, uiBuilt } from './request-guard.js';
import { TraceQueries } from './trace-queries.js';
import { openDuck } from '../../analysis/db.js';
import { openTrace } from './trace-source.js';

export interface ServeOptions {
  trace: string;
  compare?: string[];
  /** 0 = any free port; undefined = DEFAULT_PORT, or the next free one above it. */
  port?: number;
  host: string; // default 127.0.0.1
  allowRemote: boolean; // needed for any address other than loopback
  uiDir?: string; // built UI (default dist/web)
  by?: string; // SPEC §3 --by: the grouping the page starts with
}

/** The dashboard's usual address, so a bookmark keeps working; when taken, the next free port above it. */
export const DEFAULT_PORT = 8642;
const DEFAULT_PORT_TRIES = 20;

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** 127.0.0.0/8, ::1 and localhost: the addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h === '::ffff:127.0.0.1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Serving a trace to the network exposes its text and images to anyone who can reach the port,
 * so a non-loopback --host is refused unless --allow-remote says so explicitly.
 */
export function checkHost(host: string, allowRemote: boolean): void {
  if (!host) throw new InputError('--host: empty address');
  if (!isLoopback(host) && !allowRemote) {
    throw new InputError(`--host ${host}: refusing to serve beyond this machine (not a loopback address); add --allow-remote to expose the trace to the network`);
  }
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  checkHost(o.host, o.allowRemote);
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535)) throw new InputError(`--port: must be an integer 0-65535, got ${o.port}`);
  const db = await openDuck();
  try {
    const traces = [await openTrace(db.conn, o.trace, 'A')];
    for (const [i, c] of (o.compare ?? []).entries()) traces.push(await openTrace(db.conn, c, String.fromCharCode(66 + i)));
    const queries = traces.map((t) => new TraceQueries(db.conn, t));
    // Count every layer now: it checks every row (a corrupt trace fails here, not in the page) and the first figure need not wait.
    for (const q of queries) await q.init();
    if (o.by !== undefined) queries[0].startWith(o.by);
    const uiDir = o.uiDir ?? UI_DIR;
    if (!uiBuilt(uiDir)) process.stderr.write(`moescope: warning: the dashboard UI is not built (${uiDir}); run \`npm run build\`\n`);
    const allowedHosts = isLoopback(o.host) ? new Set<string>() : null;
    const app = createApp({ traces: queries, uiDir, allowedHosts });
    const server = createAdaptorServer({ fetch: app.fetch }) as Server;
    const listen = (port: number) => new Promise<void>((res, rej) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') rej(new InputError(`--port ${port}: already in use`));
        else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') rej(new InputError(`--host ${o.host}: not an address of this machine`));
        else if (e.code === 'EACCES') rej(new InputError(`--port ${port}: permission denied`));
        else rej(e);
      });
      server.listen(port, o.host.replace(/^\[|\]$/g, ''), () => res());
    });
    if (o.port !== undefined) await listen(o.port);
    else {
      for (let port = DEFAULT_PORT; ; port++) {
        try {
          await listen(port);
          break;
        } catch (e) {
          if (!(e instanceof InputError && /already in use|permission denied/.test(e.message)) || port >= DEFAULT_PORT + DEFAULT_PORT_TRIES - 1) {
            if (e instanceof InputError && /already in use/.test(e.message)) throw new InputError(`--port: ports ${DEFAULT_PORT}-${port} are all in use; choose one with --port (0 = any free port)`);
            throw e;
          }
        }
      }
    }
    const port = (server.address() as AddressInfo).port;
    const shownHost = o.host.includes(':') && !o.host.startsWith('[') ? `[${o.host}]` : o.host;
    if (allowedHosts) for (const h of ['127.0.0.1', 'localhost', '[::1]', shownHost.toLowerCase()]) allowedHosts.add(`${h}:${port}`);
    return {
      url: `http://${shownHost}:${port}/`,
      port,
      close: () => new Promise<void>((res) => {
        server.close(() => {
          db.close();
          res();
        });
        server.closeAllConnections?.();
      }),
    };
  } catch (e) {
    db.close();
    throw e;
  }
}
