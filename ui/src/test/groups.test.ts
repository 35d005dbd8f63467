// Group Sessions in the window against a mocked api/: a round streams every speaker's reply
// under its own name, the member controls call the backend and show the group it returns, and
// the gallery starts a group from the cards chosen. The real path (real model, real webview)
// is tests/e2e's group check.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';
import type { CharacterSummary, Group, Message, StreamEvent } from '../api/types';

const conv = vi.hoisted(() => ({
  listMessages: vi.fn(), recentMessages: vi.fn(), sendMessage: vi.fn(), stopReply: vi.fn(),
}));
const groups = vi.hoisted(() => ({
  startGroup: vi.fn(), getGroup: vi.fn(), setMemberPresent: vi.fn(), setMemberMuted: vi.fn(),
  setGroupStrategy: vi.fn(), replyAs: vi.fn(), letThemTalk: vi.fn(),
}));
vi.mock('../api/conversation', () => conv);
vi.mock('../api/groups', () => groups);
vi.mock('../api/characters', () => ({}));

import { ChatState } from '../lib/chat.svelte';
import GroupBar from '../components/GroupBar.svelte';
import ChatPanel from '../components/ChatPanel.svelte';
import Gallery from '../components/Gallery.svelte';

const msg = (id: number, role: 'user' | 'character', content: string, speaker: string | null = null): Message =>
  ({ id, sessionId: 7, role, content, status: 'complete', createdAt: 0, swipes: [], swipe: 0, speaker }) as Message;
const who = (id: string, name: string): CharacterSummary => ({
  id, name, category: 'celebrity', tagline: '', avatarUrl: null, initials: name.slice(0, 2), lastChatAt: null, tags: [],
  favourite: false, createdAt: 0, updatedAt: 0, deletedAt: null,
});
const ada = who('ada', 'Ada Lovelace');
const sherlock = who('sherlock', 'Sherlock Holmes');
const leo = who('leo', 'Leonardo da Vinci');
const group = (over: Partial<Record<string, { present?: boolean; muted?: boolean }>> = {}): Group => ({
  sessionId: 7, name: 'Evening', strategy: 'natural',
  members: [ada, sherlock, leo].map((c) => ({
    characterId: c.id, character: c, present: over[c.id]?.present ?? true, muted: over[c.id]?.muted ?? false, inTrash: false,
  })),
});

beforeEach(() => vi.resetAllMocks());
afterEach(() => cleanup());

describe('a group round', () => {
  it('streams each speaker into their own reply, then shows what was kept', async () => {
    conv.recentMessages.mockResolvedValue([]);
    const chat = new ChatState(7);
    await chat.load();
    let during: (string | null)[] = [];
    conv.sendMessage.mockImplementation(async (_s: number, text: string, on: (e: StreamEvent) => void) => {
      on({ event: 'said', data: { user: msg(1, 'user', text) } });
      on({ event: 'speaking', data: { reply: msg(2, 'character', ''), speaker: 'ada' } });
      on({ event: 'text', data: { text: 'Numbers.' } });
      on({ event: 'speaking', data: { reply: msg(3, 'character', ''), speaker: 'sherlock' } });
      on({ event: 'text', data: { text: 'Elementary.' } });
      during = chat.messages.map((m) => m.speaker);
      return msg(3, 'character', 'Elementary.', 'sherlock');
    });
    const kept = [msg(1, 'user', 'Hello all'), msg(2, 'character', 'Numbers.', 'ada'), msg(3, 'character', 'Elementary.', 'sherlock')];
    conv.recentMessages.mockResolvedValue(kept);
    expect(await chat.send('Hello all')).toBe(true);
    expect(during).toEqual([null, 'ada', 'sherlock']);
    expect(chat.messages.map((m) => m.content)).toEqual(['Hello all', 'Numbers.', 'Elementary.']);
  });

  it('keeps the message and says so when nobody can answer', async () => {
    conv.recentMessages.mockResolvedValue([]);
    const chat = new ChatState(7);
    await chat.load();
    conv.sendMessage.mockImplementation(async (_s: number, text: string, on: (e: StreamEvent) => void) => {
      on({ event: 'said', data: { user: msg(1, 'user', text) } });
      throw { code: 'no_speaker', message: 'nobody in this group can answer' };
    });
    conv.recentMessages.mockResolvedValue([msg(1, 'user', 'Anyone?')]);
    // Accepted: the box empties, the message stays, and the error says why there is no reply.
    expect(await chat.send('Anyone?')).toBe(true);
    expect(chat.messages.map((m) => m.content)).toEqual(['Anyone?']);
    expect(chat.error?.code).toBe('no_speaker');
  });

  it('names every reply after its speaker', async () => {
    conv.recentMessages.mockResolvedValue([msg(1, 'character', 'Hello.', 'ada'), msg(2, 'character', 'Indeed.', 'sherlock')]);
    const chat = new ChatState(7);
    await chat.load();
    const cast = { ada, sherlock, leo };
    const detail = { ...ada, profileProse: '' } as never;
    const { findAllByTestId } = render(ChatPanel, { chat, character: detail, disabledReason: null, cast });
    const names = (await findAllByTestId('speaker')).map((e) => e.textContent?.trim());
    expect(names).toEqual(['AdAda Lovelace', 'ShSherlock Holmes']);
  });
});

describe('the group bar', () => {
  it('asks a member to reply, mutes, removes, brings back and invites', async () => {
    conv.recentMessages.mockResolvedValue([]);
    const chat = new ChatState(7);
    await chat.load();
    groups.replyAs.mockResolvedValue([]);
    groups.setMemberMuted.mockResolvedValue(group({ leo: { muted: true } }));
    groups.setMemberPresent.mockResolvedValue(group({ sherlock: { present: false } }));
    const onchange = vi.fn();
    const extra = who('curie', 'Marie Curie');
    const { container, getByTestId } = render(GroupBar, {
      group: group(), chat, characters: [ada, sherlock, leo, extra], disabled: null, onchange,
    });
    const member = (id: string) => container.querySelector(`[data-testid=member][data-id=${id}]`)!;
    const open = async (id: string) => fireEvent.click(member(id).querySelector('button')!);

    await open('sherlock');
    await fireEvent.click(member('sherlock').querySelector('[data-action=reply-as]')!);
    expect(groups.replyAs).toHaveBeenCalledWith(7, 'sherlock', expect.any(Function));

    await open('leo');
    await fireEvent.click(member('leo').querySelector('[data-action=mute]')!);
    expect(groups.setMemberMuted).toHaveBeenCalledWith(7, 'leo', true);
    await waitFor(() => expect(onchange).toHaveBeenCalledWith(group({ leo: { muted: true } })));

    await open('sherlock');
    await fireEvent.click(member('sherlock').querySelector('[data-action=leave]')!);
    expect(groups.setMemberPresent).toHaveBeenCalledWith(7, 'sherlock', false);

    // Only Characters not in the room can be invited.
    const invite = getByTestId('invite') as HTMLSelectElement;
    expect([...invite.options].map((o) => o.value)).toEqual(['', 'curie']);
    invite.value = 'curie';
    await fireEvent.change(invite);
    expect(groups.setMemberPresent).toHaveBeenCalledWith(7, 'curie', true);
  });

  it('shows who left, and offers to bring them back rather than to mute them', async () => {
    const chat = new ChatState(7);
    const { container } = render(GroupBar, {
      group: group({ sherlock: { present: false } }), chat, characters: [], disabled: null, onchange: vi.fn(),
    });
    const sherlockEl = container.querySelector('[data-testid=member][data-id=sherlock]')!;
    expect(sherlockEl.getAttribute('data-state')).toBe('left');
    await fireEvent.click(sherlockEl.querySelector('button')!);
    expect(sherlockEl.querySelector('[data-action=join]')).not.toBeNull();
    expect(sherlockEl.querySelector('[data-action=mute]')).toBeNull();
  });

  it('cannot ask anyone to speak without a model', async () => {
    const chat = new ChatState(7);
    const { container, getByTestId } = render(GroupBar, {
      group: group(), chat, characters: [], disabled: 'The model is loading', onchange: vi.fn(),
    });
    expect((getByTestId('let-them-talk') as HTMLButtonElement).disabled).toBe(true);
    const ada = container.querySelector('[data-testid=member][data-id=ada]')!;
    await fireEvent.click(ada.querySelector('button')!);
    expect((ada.querySelector('[data-action=reply-as]') as HTMLButtonElement).disabled).toBe(true);
  });
});

describe('the gallery', () => {
  it('starts a group of the cards chosen, the first chosen hosting', async () => {
    const session = { id: 7, characterId: 'sherlock', members: ['sherlock', 'ada'] };
    groups.startGroup.mockResolvedValue(session);
    const onopen = vi.fn();
    const ongroup = vi.fn();
    const { container, getByTestId } = render(Gallery, {
      characters: [ada, sherlock, leo], onopen, onimported: vi.fn(), ongroup,
    });
    await fireEvent.click(getByTestId('new-group'));
    const card = (id: string) => container.querySelector(`[data-testid=character-card][data-id=${id}]`)!;
    await fireEvent.click(card('sherlock'));
    expect((getByTestId('start-group') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(card('ada'));
    expect(onopen).not.toHaveBeenCalled();
    expect(getByTestId('group-tray').textContent).toContain('Sherlock Holmes, Ada Lovelace');
    await fireEvent.click(getByTestId('start-group'));
    expect(groups.startGroup).toHaveBeenCalledWith(['sherlock', 'ada'], 'chit_chat');
    await waitFor(() => expect(ongroup).toHaveBeenCalledWith(session));
  });
});
