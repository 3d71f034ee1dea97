import { strict as assert } from 'node:assert';
import { chooseLogSink, CONTAINER_MARK_FILES, inContainer, type LogSink } from '../../src/observe/log';

describe('log target auto: journal or stderr', () => {
  type Case = [
    label: string,
    stderrIsJournal: boolean,
    terminal: boolean,
    container: boolean,
    socket: boolean,
    sink: LogSink,
  ];
  const cases: Case[] = [
    ['under systemd, stderr connected to the journal', true, false, false, true, 'journal'],
    ['under systemd, but the journal socket is gone', true, false, false, false, 'console'],
    ['in a container with the host journal socket mounted', false, false, true, true, 'journal'],
    ['in a container without the journal socket', false, false, true, false, 'console'],
    ['at a terminal in a container with the journal socket mounted', false, true, true, true, 'console'],
    ['from a terminal on a host with a journal', false, true, false, true, 'console'],
    ['from a pipe on a host with a journal, outside any container', false, false, false, true, 'console'],
    ['from a terminal on a host without a journal', false, true, false, false, 'console'],
  ];
  for (const [label, stderrIsJournal, stderrIsTerminal, container, journalSocketExists, sink] of cases) {
    it(`${label}: ${sink}`, () => {
      assert.equal(
        chooseLogSink('auto', { stderrIsJournal, stderrIsTerminal, inContainer: container, journalSocketExists }),
        sink,
      );
    });
  }

  it('journal and console are obeyed whatever the surroundings', () => {
    const facts = { stderrIsJournal: false, stderrIsTerminal: false, inContainer: false, journalSocketExists: false };
    assert.equal(chooseLogSink('journal', facts), 'journal');
    assert.equal(
      chooseLogSink('console', {
        stderrIsJournal: true,
        stderrIsTerminal: false,
        inContainer: true,
        journalSocketExists: true,
      }),
      'console',
    );
  });

  it('knows a container by $container or by a runtime mark file, as systemd does', () => {
    const none = (): boolean => false;
    assert.equal(inContainer({}, none), false);
    assert.equal(inContainer({ container: '' }, none), false);
    assert.equal(inContainer({ container: 'oci' }, none), true);
    for (const mark of CONTAINER_MARK_FILES) {
      assert.equal(
        inContainer({}, (file) => file === mark),
        true,
        mark,
      );
    }
  });
});
