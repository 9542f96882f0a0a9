/** Postgres for tests: PARLEY_TEST_PG_URL or the local server; a fresh schema per use, dropped after. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.PARLEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const freshSchema = (): string => `parley_t_${process.pid}_${randomBytes(4).toString('hex')}`;

export async function dropSchema(schema: string, url = PG_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
