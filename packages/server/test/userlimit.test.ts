/** The per-user message rate limit counts all of a user's connections together. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, sleep, startTestServer, ticket, user } from '@parley/testing/helpers';

test('userRateLimitPerSec applies across a user’s connections', async () => {
  const s = await startTestServer({ userRateLimitPerSec: 3 });
  try {
    const a = await user(s);
    const tab2 = await connect(s, await ticket(s, a.token));
    await sleep(1000 - (Date.now() % 1000) + 30); // one one-second window for all ten
    for (let i = 0; i < 5; i++) {
      a.client.send({ type: 'send_message', payload: { message: `a${i}` }, ref: `a${i}` });
      tab2.send({ type: 'send_message', payload: { message: `b${i}` }, ref: `b${i}` });
    }
    await sleep(300);
    const acked = a.client.all('ack').length + tab2.all('ack').length;
    const refused = [...a.client.all('error'), ...tab2.all('error')].filter((e) => e.code === 'rate_limited');
    assert.equal(acked, 3, 'three for the user in this second, not three per connection');
    assert.equal(refused.length, 7);
    assert.match(refused[0]?.message ?? '', /per second/);
    // A retry of a stored message is acked with its seq even while the user is over the limit.
    const storedAck = a.client.all('ack')[0] ?? tab2.all('ack')[0];
    assert.ok(storedAck);
    const owner = a.client.all('ack').length > 0 ? a.client : tab2;
    await sleep(1000 - (Date.now() % 1000) + 30);
    for (let i = 0; i < 3; i++) owner.send({ type: 'send_message', payload: { message: 'filler' } });
    owner.send({ type: 'send_message', payload: { message: 'retry' }, ref: storedAck.ref });
    const again = await owner.next('ack', (p) => p.ref === storedAck.ref && p !== storedAck);
    assert.equal(again.seq, storedAck.seq);
    a.client.close();
    tab2.close();
  } finally {
    await s.stop();
  }
});
