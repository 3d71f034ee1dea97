/**
 * The API's JSON-RPC framing and refusal log, without a socket: answers serialised in pieces are
 * the same text as JSON.stringify, notifications are never answered, refusals are counted.
 */
import { strict as assert } from 'node:assert';
import { jsonLinePieces, parseRequest } from '../../src/api/jsonrpc';
import { Refusals } from '../../src/api/refusals';
import type { Log } from '../../src/observe/log';
import { waitFor } from '../helpers/wait';

describe('API framing (jsonrpc.ts)', () => {
  it('serialises an answer in pieces to exactly the text of JSON.stringify', () => {
    const records = Array.from({ length: 1000 }, (_, seq) => ({ seq, time: '2026-12-06T00:00:00Z', note: undefined }));
    const samples: unknown[] = [
      { jsonrpc: '2.0', id: 1, result: { records, warnings: ['a "quoted"\nline'] } },
      {
        jsonrpc: '2.0',
        id: null,
        result: { when: new Date(0), nested: [[1, 2], { x: undefined, y: null }], list: [] },
      },
      { jsonrpc: '2.0', id: 'x', result: [undefined, () => 1, ...Array.from({ length: 200 }, (_, i) => i)] },
    ];
    for (const sample of samples) {
      const pieces = [...jsonLinePieces(sample)];
      assert.equal(pieces.join(''), `${JSON.stringify(sample)}\n`);
      assert.ok(
        pieces.every((piece) => piece.length < 16 * 1024),
        'no piece is the whole of a long answer',
      );
    }
  });

  it('API: a notification (no id) is run and never answered, even when it is wrong (issue 20 #15)', () => {
    const call = parseRequest('{"jsonrpc":"2.0","method":"status"}');
    assert.equal(call.kind, 'call');
    assert.equal(call.kind === 'call' && call.notification, true);
    for (const line of [
      '{"jsonrpc":"2.0","method":"nope"}',
      '{"jsonrpc":"2.0","method":"drift.list","params":{"limit":0}}',
      '{"jsonrpc":"2.0","method":"status","params":[]}',
    ]) {
      assert.deepEqual(parseRequest(line), { kind: 'invalid', response: null }, line);
    }
    // With an id (even null) it is a request and is answered; not a Request object at all is answered too.
    assert.equal(parseRequest('{"jsonrpc":"2.0","id":null,"method":"status"}').kind, 'call');
    assert.notEqual(
      (parseRequest('{"jsonrpc":"2.0","id":null,"method":"nope"}') as { response: unknown }).response,
      null,
    );
    assert.notEqual((parseRequest('{"method":"status"}') as { response: unknown }).response, null);
  });
});

describe('refusals (refusals.ts)', () => {
  it('refusal warnings are logged as a count per interval, never one per refusal (issue 20 #8)', async () => {
    const logged: string[] = [];
    const log = { log: (level: string, message: string) => logged.push(`${level}: ${message}`) } as unknown as Log;
    const refusals = new Refusals(log, 'API: ', 50);
    try {
      for (let i = 0; i < 1000; i++) refusals.note('total', 'refusing connections: too many clients (64 connected)');
      assert.deepEqual(logged, ['warning: API: refusing connections: too many clients (64 connected)']);
      await waitFor(() => logged.length === 2, 'the count at the end of the interval');
      assert.equal(
        logged[1],
        'warning: API: refusing connections: too many clients (64 connected) (999 more like it in the last 0.05 s)',
      );
      await waitFor(() => logged.length === 2 && !refusalsPending(refusals), 'the quiet interval to end');
      refusals.note('total', 'again');
      assert.equal(logged.length, 3, 'after a quiet interval the next refusal is logged at once');
    } finally {
      refusals.close();
    }
  });
});

/** Whether a kind is still counting (its interval has not ended quietly yet). */
function refusalsPending(refusals: Refusals): boolean {
  return (refusals as unknown as { kinds: Map<string, unknown> }).kinds.size > 0;
}
