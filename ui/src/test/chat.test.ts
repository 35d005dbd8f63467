// ChatState against a mocked api/ module: the words do not matter here, the bookkeeping does.
// The real path (real model, real webview) is covered by tests/e2e.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Message, StreamEvent } from '../api/types';

const api = vi.hoisted(() => ({
  listMessages: vi.fn(),
  recentMessages: vi.fn(),
  editMessage: vi.fn(),
  deleteMessage: vi.fn(),
  undoDelete: vi.fn(),
  regenerateReply: vi.fn(),
  continueReply: vi.fn(),
  selectSwipe: vi.fn(),
  sendMessage: vi.fn(),
  stopReply: vi.fn(),
}));
vi.mock('../api/conversation', () => api);
vi.mock('../api/ipc', () => ({ BackendError: class extends Error {} }));

import { ChatState } from '../lib/chat.svelte';

const msg = (id: number, role: 'user' | 'character', content: string, status = 'complete'): Message =>
  ({ id, sessionId: 1, role, content, status, createdAt: 0, swipes: [], swipe: 0, speaker: null }) as Message;

beforeEach(() => vi.resetAllMocks());

describe('ChatState', () => {
  it('streams a reply into the message list', async () => {
    api.recentMessages.mockResolvedValue([msg(1, 'character', 'Hello!')]);
    let seenDuring: string[] = [];
    api.sendMessage.mockImplementation(async (_sid: number, text: string, on: (e: StreamEvent) => void) => {
      on({ event: 'started', data: { user: msg(2, 'user', text), reply: msg(3, 'character', '', 'streaming'), dropped: 0 } });
      on({ event: 'text', data: { text: 'Good ' } });
      on({ event: 'text', data: { text: 'day.' } });
      seenDuring = chat.messages.map((m) => m.content);
      const done = msg(3, 'character', 'Good day.');
      on({ event: 'finished', data: { reply: done, stats: null } });
      return done;
    });
    const chat = new ChatState(1);
    await chat.load();
    expect(await chat.send('Hi')).toBe(true);
    expect(seenDuring).toEqual(['Hello!', 'Hi', 'Good day.']);
    expect(chat.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['character', 'Hello!', 'complete'],
      ['user', 'Hi', 'complete'],
      ['character', 'Good day.', 'complete'],
    ]);
    expect(chat.streaming).toBe(false);
  });

  it('does not send empty text', async () => {
    const chat = new ChatState(1);
    expect(await chat.send('   ')).toBe(false);
    expect(api.sendMessage).not.toHaveBeenCalled();
  });

  it('reports a refused message and says it was not sent', async () => {
    api.sendMessage.mockRejectedValue(Object.assign(new Error('too long'), { code: 'message_too_long' }));
    const chat = new ChatState(1);
    expect(await chat.send('x'.repeat(100_000))).toBe(false);
    expect(chat.error?.message).toBe('too long');
    expect(chat.messages).toEqual([]);
  });

  it('reloads what the backend kept when a reply fails midway', async () => {
    api.sendMessage.mockImplementation(async (_s: number, _t: string, on: (e: StreamEvent) => void) => {
      on({ event: 'started', data: { user: msg(2, 'user', 'Hi'), reply: msg(3, 'character', '', 'streaming'), dropped: 0 } });
      throw Object.assign(new Error('engine died'), { code: 'reply_failed' });
    });
    api.recentMessages.mockResolvedValue([msg(2, 'user', 'Hi'), msg(3, 'character', 'Par', 'interrupted')]);
    const chat = new ChatState(1);
    expect(await chat.send('Hi')).toBe(true);
    expect(chat.error?.message).toBe('engine died');
    expect(chat.messages[1].status).toBe('interrupted');
  });
});

describe('ChatState paging and edits', () => {
  it('opens at the newest page, loads the rest on request, and edits and deletes in place', async () => {
    const page = Array.from({ length: ChatState.PAGE }, (_, i) => msg(i + 2, i % 2 ? 'character' : 'user', `m${i}`));
    api.recentMessages.mockResolvedValue(page);
    api.listMessages.mockResolvedValue([msg(1, 'character', 'Hello!'), ...page]);
    const chat = new ChatState(1);
    await chat.load();
    expect(api.recentMessages).toHaveBeenCalledWith(1, ChatState.PAGE);
    expect(chat.hasEarlier).toBe(true);
    await chat.load(true);
    expect(chat.hasEarlier).toBe(false);
    expect(chat.messages[0].content).toBe('Hello!');
    api.editMessage.mockResolvedValue(undefined);
    expect(await chat.edit(2, '  edited ')).toBe(true);
    expect(chat.messages[1].content).toBe('edited');
    api.deleteMessage.mockResolvedValue(77);
    await chat.remove(2);
    expect(chat.messages.find((m) => m.id === 2)).toBeUndefined();
    // The delete can be undone: the message is asked back by its undo id and the list reloads.
    expect(chat.undo?.undoId).toBe(77);
    api.undoDelete.mockResolvedValue(undefined);
    const reloads = api.recentMessages.mock.calls.length;
    await chat.undoRemove();
    expect(api.undoDelete).toHaveBeenCalledWith(77);
    expect(api.recentMessages.mock.calls.length).toBe(reloads + 1);
    expect(chat.undo).toBeNull();
    // A refusal (a reply is being written into it) keeps the text and says why.
    api.editMessage.mockRejectedValue({ code: 'internal', message: 'busy' });
    expect(await chat.edit(3, 'x')).toBe(false);
    expect(chat.messages.find((m) => m.id === 3)?.content).toBe('m1');
    expect(chat.error).not.toBeNull();
  });
});

describe('ChatState rewrites', () => {
  it('streams a regenerated reply into the same message and switches versions', async () => {
    api.recentMessages.mockResolvedValue([msg(1, 'user', 'Hi'), msg(2, 'character', 'First.')]);
    const chat = new ChatState(1);
    await chat.load();
    api.regenerateReply.mockImplementation(async (_id: number, on: (e: StreamEvent) => void) => {
      on({ event: 'rewriting', data: { reply: msg(2, 'character', '', 'streaming') } });
      on({ event: 'text', data: { text: 'Second.' } });
      const done = { ...msg(2, 'character', 'Second.'), swipes: ['First.', 'Second.'], swipe: 1 };
      on({ event: 'finished', data: { reply: done, stats: null } });
      return done;
    });
    await chat.rewrite(2, 'again');
    expect(chat.messages.map((m) => m.content)).toEqual(['Hi', 'Second.']);
    expect(chat.messages[1].swipes).toEqual(['First.', 'Second.']);
    expect(chat.streaming).toBe(false);
    api.selectSwipe.mockResolvedValue({ ...msg(2, 'character', 'First.'), swipes: ['First.', 'Second.'], swipe: 0 });
    await chat.selectSwipe(2, 0);
    expect(chat.messages[1].content).toBe('First.');
  });
});
