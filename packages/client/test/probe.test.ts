import { test } from 'node:test';
import { account, client, fixture, Recorder, sleep } from './helpers.js';

const { server, track } = fixture();

test('probe', async () => {
  const s = await server();
  const [a, b] = [await account(s), await account(s)];
  const ra = new Recorder();
  const rb = new Recorder();
  const A = track(client(s, { token: a.token, WebSocket: ra.WebSocket }));
  const B = track(client(s, { token: b.token, WebSocket: rb.WebSocket }));
  await A.c.connect();
  await B.c.connect();
  await A.c.join('side');
  await A.c.createRoom('priv', { visibility: 'private', title: 'Private' });
  await A.c.invite('priv', b.name);
  await sleep(100);
  await A.c.send('priv', 'hello');
  await A.c.kick('priv', b.name, 'spam');
  await sleep(100);
  const d = await A.c.openDirect(b.name);
  await sleep(100);
  console.log('DIRECT', d, JSON.stringify([...A.c.rooms.values()]));
  console.log('A history priv', JSON.stringify(await A.c.history('priv')));
  console.log('rooms GET', JSON.stringify(await A.c.listRooms()));
  console.log('members', JSON.stringify(await A.c.members('priv')));
  for (const [n, r] of [['A', ra], ['B', rb]] as const) {
    for (const sock of r.sockets) {
      console.log(n, 'SENT', JSON.stringify(sock.sent));
      for (const f of sock.received) console.log(n, 'RECV', JSON.stringify(f));
    }
  }
});
