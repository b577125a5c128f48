import { execFile } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { onProcessEnd } from './cleanup.ts';
import { freePort } from './ports.ts';
import { removeDir, tempDir } from './tmp.ts';

// A real PostgreSQL 15 (Debian `postgresql`) for tests: its own cluster in a temp directory, on a
// free loopback port, trust authentication, fsync off (a test never survives a power cut). initdb
// refuses to run as root, so as root the cluster belongs to the `postgres` user and every server
// binary runs through `runuser`.

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export interface TestPostgres {
  readonly port: number;
  /** The URL of a database of this server (default `postgres`). */
  url(database?: string): string;
  /** A new empty database; returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  dropDatabase(url: string): Promise<void>;
  /** Stops the server, keeping its data: the database is away until resume(). */
  halt(): Promise<void>;
  /** Starts the halted server again, same port and data. */
  resume(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

const asRoot = userInfo().uid === 0;

function serverCommand(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', join(BIN, bin), ...args]] : [join(BIN, bin), args];
}

async function server(bin: string, args: string[]): Promise<void> {
  const [cmd, argv] = serverCommand(bin, args);
  try {
    await run(cmd, argv);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} failed: ${e.stderr?.trim() || e.message}`);
  }
}

let databases = 0;

/** One statement on its own connection: for tests that read what the gateways stored. */
export async function sql<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}

export interface PostgresOptions {
  /**
   * fsync and synchronous commit as a production server has them (benchmarks); tests run
   * without (default), a test never survives a power cut.
   */
  readonly durable?: boolean;
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<TestPostgres> {
  const dir = tempDir('pg-');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const uid = Number(stdout.trim());
    chownSync(dir, uid, uid);
  }
  const data = join(dir, 'data');
  const port = await freePort();
  let pid: number | undefined;
  // An exit hook that needs no child process: the postmaster's pid and SIGQUIT (immediate
  // shutdown), so that a test run that ends without calling stop() leaves no server behind.
  const onExit = () => {
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
  };
  const forget = onProcessEnd(onExit);
  const startServer = async () => {
    await server('pg_ctl', [
      '-D',
      data,
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=200${opts.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off'}`,
      '-l',
      join(dir, 'server.log'),
      '-w',
      'start',
    ]);
    pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  };
  const stopServer = async () => {
    await server('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    pid = undefined;
  };
  try {
    await server('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    await startServer();
  } catch (err) {
    forget();
    onExit();
    removeDir(dir);
    throw err;
  }
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: url() });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return {
    port,
    url,
    async createDatabase(prefix = 'vigil') {
      const name = `${prefix}_${process.pid}_${++databases}`;
      await admin((c) => c.query(`CREATE DATABASE ${name}`));
      return url(name);
    },
    async dropDatabase(dbUrl) {
      const name = new URL(dbUrl).pathname.slice(1);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
    halt: stopServer,
    resume: startServer,
    async stop() {
      forget();
      try {
        if (pid !== undefined) await stopServer();
      } finally {
        pid = undefined;
        removeDir(dir);
      }
    },
  };
}

let shared: Promise<TestPostgres> | undefined;

/**
 * One server for the whole test process (uvu runs every test file in one process), started on
 * first use and stopped when the process exits; each caller makes its own database on it.
 */
export function sharedPostgres(): Promise<TestPostgres> {
  shared ??= startPostgres();
  return shared;
}
