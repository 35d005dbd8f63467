import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render } from '@testing-library/svelte';
import Gallery from '../components/Gallery.svelte';
import { importCards } from '../api/characters';

vi.mock('../api/characters', () => ({
  importCards: vi.fn(),
  searchCharacters: vi.fn(async () => []),
  setFavourite: vi.fn(async () => {}),
  trashCharacter: vi.fn(async () => {}),
  restoreCharacter: vi.fn(async () => {}),
  duplicateCharacter: vi.fn(async () => {}),
  listTrash: vi.fn(async () => []),
  emptyTrash: vi.fn(async () => 0),
}));
import { restoreCharacter, searchCharacters, trashCharacter } from '../api/characters';
import type { CharacterSummary } from '../api/types';

afterEach(cleanup);

const c = (id: string, name: string, category: CharacterSummary['category'], tagline = ''): CharacterSummary => ({
  id, name, category, tagline, avatarUrl: null, initials: name.slice(0, 2).toUpperCase(), lastChatAt: null,
  tags: [], favourite: false, createdAt: 0, updatedAt: 0, deletedAt: null,
});

const characters = [
  c('ada', 'Ada Lovelace', 'celebrity', 'Mathematician'),
  c('walt', 'Walt Okafor', 'daily_life', 'Night-shift taxi driver'),
  c('holmes', 'Sherlock Holmes', 'fictional', 'Consulting detective'),
];

const names = (container: HTMLElement) =>
  Array.from(container.querySelectorAll('[data-testid=character-card] .name')).map((n) => n.textContent);

/** Picks an option the way a person does: the option becomes selected, then `change`. */
async function choose(select: HTMLElement, value: string) {
  const s = select as HTMLSelectElement;
  for (const o of Array.from(s.options)) o.selected = o.value === value;
  await fireEvent.change(s);
}

describe('Gallery', () => {
  it('keys: / focuses the search, arrows move between cards, Ctrl+N and Ctrl+K open the editor and chat search', async () => {
    const onnew = vi.fn();
    const onsearch = vi.fn();
    const { container, getByLabelText } = render(Gallery, { characters, onopen: () => {}, onimported: () => {}, onnew, onsearch });
    await fireEvent.keyDown(document.body, { key: '/' });
    expect(document.activeElement).toBe(getByLabelText('Search characters'));
    const cards = Array.from(container.querySelectorAll<HTMLElement>('[data-testid=character-card]'));
    cards[0].focus();
    await fireEvent.keyDown(cards[0], { key: 'ArrowRight' });
    expect(document.activeElement).toBe(cards[1]);
    await fireEvent.keyDown(cards[1], { key: 'ArrowLeft' });
    expect(document.activeElement).toBe(cards[0]);
    await fireEvent.keyDown(document.body, { key: 'n', ctrlKey: true });
    await fireEvent.keyDown(document.body, { key: 'k', ctrlKey: true });
    expect([onnew.mock.calls.length, onsearch.mock.calls.length]).toEqual([1, 1]);
  });

  it('filters by category and searches names and taglines', async () => {
    const { container, getByRole, getByLabelText, getByText } = render(Gallery, { characters, onopen: () => {}, onimported: () => {} });
    expect(names(container)).toEqual(['Ada Lovelace', 'Sherlock Holmes', 'Walt Okafor']);
    await fireEvent.click(getByRole('button', { name: 'Fictional' }));
    expect(names(container)).toEqual(['Sherlock Holmes']);
    await fireEvent.click(getByRole('button', { name: 'All' }));
    await fireEvent.input(getByLabelText('Search characters'), { target: { value: 'TAXI' } });
    expect(names(container)).toEqual(['Walt Okafor']);
    await fireEvent.input(getByLabelText('Search characters'), { target: { value: 'nobody' } });
    expect(getByText('No characters match.')).toBeTruthy();
  });

  it('filters by tag and favourites, sorts, and keeps favourites first', async () => {
    const list = [
      { ...c('ada', 'Ada Lovelace', 'celebrity'), tags: ['science', 'victorian'], createdAt: 3, lastChatAt: 10 },
      { ...c('walt', 'Walt Okafor', 'daily_life'), tags: ['night'], createdAt: 2, lastChatAt: 50 },
      { ...c('holmes', 'Sherlock Holmes', 'fictional'), tags: ['victorian'], createdAt: 1, favourite: true },
    ];
    const { container, getByTestId } = render(Gallery, { characters: list, onopen: () => {}, onimported: () => {} });
    // Favourites first, then last chatted.
    expect(names(container)).toEqual(['Sherlock Holmes', 'Walt Okafor', 'Ada Lovelace']);
    await choose(getByTestId('sort'), 'newest');
    expect(names(container)).toEqual(['Sherlock Holmes', 'Ada Lovelace', 'Walt Okafor']);
    const tag = getByTestId('tag-filter') as HTMLSelectElement;
    // Tags by how many characters carry them.
    expect(Array.from(tag.options).map((o) => o.value)).toEqual(['', 'victorian', 'night', 'science']);
    await choose(tag, 'victorian');
    expect(names(container)).toEqual(['Sherlock Holmes', 'Ada Lovelace']);
    await fireEvent.click(getByTestId('favourites-only'));
    expect(names(container)).toEqual(['Sherlock Holmes']);
  });

  it('finds characters by their profile text through the backend', async () => {
    vi.useFakeTimers();
    vi.mocked(searchCharacters).mockResolvedValue(['holmes']);
    const { container, getByLabelText } = render(Gallery, { characters, onopen: () => {}, onimported: () => {} });
    await fireEvent.input(getByLabelText('Search characters'), { target: { value: 'violin' } });
    expect(names(container)).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    vi.useRealTimers();
    expect(searchCharacters).toHaveBeenCalledWith('violin');
    await new Promise((r) => setTimeout(r, 0));
    expect(names(container)).toEqual(['Sherlock Holmes']);
  });

  it('deletes to the trash with an undo', async () => {
    const onchanged = vi.fn();
    const { container, findByTestId } = render(Gallery, { characters, onopen: () => {}, onimported: () => {}, onchanged });
    const card = container.querySelector('[data-id=walt]')!.parentElement!;
    await fireEvent.click(card.querySelector('[data-testid=delete]')!);
    expect(trashCharacter).toHaveBeenCalledWith('walt');
    const toast = await findByTestId('undo-toast');
    expect(toast.textContent).toContain('Deleted Walt Okafor.');
    await fireEvent.click(toast.querySelector('[data-testid=undo]')!);
    expect(restoreCharacter).toHaveBeenCalledWith('walt');
    await new Promise((r) => setTimeout(r, 0));
    expect(onchanged).toHaveBeenCalledTimes(2);
    expect(container.querySelector('[data-testid=undo-toast]')).toBeNull();
  });

  it('opens a character and draws initials when there is no avatar', async () => {
    const onopen = vi.fn();
    const { container } = render(Gallery, { characters, onopen, onimported: () => {} });
    const card = container.querySelector('[data-id=holmes]') as HTMLElement;
    expect(card.querySelector('.initials')?.textContent).toBe('SH');
    await fireEvent.click(card);
    expect(onopen).toHaveBeenCalledWith('holmes');
  });

  it('imports dropped cards one by one, with progress, and reports each file, failures by name', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    vi.mocked(importCards)
      .mockImplementationOnce(async () => {
        await held;
        return [{ file: 'seraphina.png', characterId: 'seraphina', loreEntries: null, error: null }];
      })
      .mockResolvedValueOnce([
        { file: 'broken.png', characterId: null, loreEntries: null, error: 'broken.png: the PNG is damaged: chunk IEND fails its checksum (CRC)' },
      ]);
    const onimported = vi.fn();
    const { container, findByTestId } = render(Gallery, { characters, onopen: () => {}, onimported });
    const files = [new File(['a'], 'seraphina.png'), new File(['b'], 'broken.png')];
    await fireEvent.drop(container.querySelector('.gallery') as HTMLElement, { dataTransfer: { files } });
    expect((await findByTestId('import-progress')).textContent).toContain('Importing 0 of 2');
    release();
    const report = await findByTestId('import-report');
    expect(vi.mocked(importCards).mock.calls).toEqual([[[files[0]]], [[files[1]]]]);
    expect(report.textContent).toContain('Imported seraphina.png.');
    expect(report.textContent).toContain('broken.png: the PNG is damaged');
    expect(onimported).toHaveBeenCalled();
  });
});
