/**
 * A migration shared by both stores: room names become case-insensitive (roomKey in the
 * protocol package). Rooms whose stored name is not lower case are renamed to it, keeping their
 * seqs; rooms that were told apart only by case (`Design` and `design`) are merged into one, their
 * messages renumbered 1, 2, 3… in the order they were sent (a client that followed one of them
 * finds its seq past the merged room's and reloads history). Dedupe entries follow their
 * messages. Names matched ROOM_PATTERN (ASCII) before, so lower() of SQL is the whole fold.
 */

/** The statements of a migration, run in one transaction by the store. `?` placeholders. */
export interface Sql {
  all<R>(sql: string, params?: unknown[]): Promise<R[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
}

export async function foldRoomNames(db: Sql): Promise<void> {
  const groups = await db.all<{ k: string; n: number }>(
    'SELECT lower(name) AS k, count(*) AS n FROM rooms GROUP BY lower(name) HAVING count(*) > 1 OR max(CASE WHEN name <> lower(name) THEN 1 ELSE 0 END) = 1',
  );
  for (const { k, n } of groups) {
    const names = (await db.all<{ name: string }>('SELECT name FROM rooms WHERE lower(name) = ? ORDER BY name', [k])).map((r) => r.name);
    if (Number(n) === 1) {
      const [from] = names as [string];
      for (const table of ['messages', 'dedupe']) await db.run(`UPDATE ${table} SET room = ? WHERE room = ?`, [k, from]);
      await db.run('UPDATE rooms SET name = ? WHERE name = ?', [k, from]);
      continue;
    }
    const inList = names.map(() => '?').join(', ');
    await db.run('DROP TABLE IF EXISTS parley_fold');
    await db.run(
      `CREATE TEMPORARY TABLE parley_fold AS SELECT room, seq, sender, body, sent, at, ROW_NUMBER() OVER (ORDER BY at, room, seq) AS nseq FROM messages WHERE room IN (${inList})`,
      names,
    );
    // A dedupe entry whose message was pruned points nowhere in the merged room: it goes.
    await db.run(`DELETE FROM dedupe WHERE room IN (${inList}) AND NOT EXISTS (SELECT 1 FROM parley_fold f WHERE f.room = dedupe.room AND f.seq = dedupe.seq)`, names);
    await db.run(`UPDATE dedupe SET seq = (SELECT f.nseq FROM parley_fold f WHERE f.room = dedupe.room AND f.seq = dedupe.seq), room = ? WHERE room IN (${inList})`, [k, ...names]);
    await db.run(`DELETE FROM messages WHERE room IN (${inList})`, names);
    await db.run('INSERT INTO messages (room, seq, sender, body, sent, at) SELECT CAST(? AS TEXT), nseq, sender, body, sent, at FROM parley_fold ORDER BY nseq', [k]);
    const [{ last }] = (await db.all<{ last: number | null }>('SELECT max(nseq) AS last FROM parley_fold')) as [{ last: number | null }];
    await db.run(`DELETE FROM rooms WHERE name IN (${inList})`, names);
    await db.run('INSERT INTO rooms (name, last_seq) VALUES (?, ?)', [k, Number(last ?? 0)]);
    await db.run('DROP TABLE parley_fold');
  }
}
