// The search panel and the prompt inspector against a mocked api/: what they show, and that
// text from messages stays text.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';

const api = vi.hoisted(() => ({ searchMessages: vi.fn(), promptRecord: vi.fn() }));
vi.mock('../api/conversation', () => api);

import SearchPanel from '../components/SearchPanel.svelte';
import PromptInspector from '../components/PromptInspector.svelte';

afterEach(cleanup);

describe('SearchPanel', () => {
  it('highlights the matched words as text and opens a hit', async () => {
    api.searchMessages.mockResolvedValue([
      { messageId: 7, sessionId: 3, characterId: 'walt', characterName: 'Walt', role: 'user',
        snippet: 'my <b>dog</b> [Biscuit] barks', createdAt: Date.now() },
    ]);
    const onopen = vi.fn();
    const { getByTestId, findByTestId, container } = render(SearchPanel, { onopen, onclose: () => {} });
    await fireEvent.input(getByTestId('search-messages'), { target: { value: 'biscuit' } });
    const hit = await findByTestId('search-hit', {}, { timeout: 1000 });
    expect(api.searchMessages).toHaveBeenCalledWith('biscuit');
    expect(container.querySelector('mark')?.textContent).toBe('Biscuit');
    expect(container.querySelector('b')).toBeNull();
    expect(hit.textContent).toContain('my <b>dog</b>');
    await fireEvent.click(hit);
    expect(onopen).toHaveBeenCalledWith(expect.objectContaining({ sessionId: 3, messageId: 7 }));
  });
});

describe('PromptInspector', () => {
  it('lists sections with tokens, lore with reasons, and what was left out', async () => {
    api.promptRecord.mockResolvedValue({
      sections: [
        { name: 'System prompt', text: 'You are Walt.', tokens: 400 },
        { name: 'Notes', text: 'Keep in mind: x.', tokens: 20 },
      ],
      lore: [{ name: 'Taxi', reason: 'key "cab"' }],
      loreLeftOut: ['Airport'],
      droppedMessages: 24,
      examplesDropped: true,
      tokens: 1500,
      budget: 3840,
    });
    const { findByTestId, getAllByTestId, getByTestId } = render(PromptInspector, { messageId: 9, onclose: () => {} });
    const total = await findByTestId('inspector-total');
    expect(total.textContent).toContain('24 older messages left out');
    expect(total.textContent).toContain('example dialogue left out');
    expect(getAllByTestId('inspector-section').map((s) => s.dataset.name)).toEqual(['System prompt', 'Notes']);
    const lore = getByTestId('inspector-lore').textContent!;
    expect(lore).toContain('Taxi — key "cab"');
    expect(lore).toContain('Airport — matched, left out');
    await fireEvent.click(getAllByTestId('inspector-section')[0].querySelector('button')!);
    await waitFor(() => expect(getAllByTestId('inspector-section')[0].textContent).toContain('You are Walt.'));
  });
});
