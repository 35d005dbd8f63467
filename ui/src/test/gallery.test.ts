import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render } from '@testing-library/svelte';
import Gallery from '../components/Gallery.svelte';
import { importCards } from '../api/characters';

vi.mock('../api/characters', () => ({ importCards: vi.fn() }));
import type { CharacterSummary } from '../api/types';

afterEach(cleanup);

const c = (id: string, name: string, category: CharacterSummary['category'], tagline = ''): CharacterSummary => ({
  id, name, category, tagline, avatarUrl: null, initials: name.slice(0, 2).toUpperCase(), lastChatAt: null,
});

const characters = [
  c('ada', 'Ada Lovelace', 'celebrity', 'Mathematician'),
  c('walt', 'Walt Okafor', 'daily_life', 'Night-shift taxi driver'),
  c('holmes', 'Sherlock Holmes', 'fictional', 'Consulting detective'),
];

const names = (container: HTMLElement) =>
  Array.from(container.querySelectorAll('[data-testid=character-card] .name')).map((n) => n.textContent);

describe('Gallery', () => {
  it('filters by category and searches names and taglines', async () => {
    const { container, getByRole, getByLabelText, getByText } = render(Gallery, { characters, onopen: () => {}, onimported: () => {} });
    expect(names(container)).toEqual(['Ada Lovelace', 'Walt Okafor', 'Sherlock Holmes']);
    await fireEvent.click(getByRole('tab', { name: 'Fictional' }));
    expect(names(container)).toEqual(['Sherlock Holmes']);
    await fireEvent.click(getByRole('tab', { name: 'All' }));
    await fireEvent.input(getByLabelText('Search characters'), { target: { value: 'TAXI' } });
    expect(names(container)).toEqual(['Walt Okafor']);
    await fireEvent.input(getByLabelText('Search characters'), { target: { value: 'nobody' } });
    expect(getByText('No characters match.')).toBeTruthy();
  });

  it('opens a character and draws initials when there is no avatar', async () => {
    const onopen = vi.fn();
    const { container } = render(Gallery, { characters, onopen, onimported: () => {} });
    const card = container.querySelector('[data-id=holmes]') as HTMLElement;
    expect(card.querySelector('.initials')?.textContent).toBe('SH');
    await fireEvent.click(card);
    expect(onopen).toHaveBeenCalledWith('holmes');
  });

  it('imports dropped cards and reports each file, failures by name', async () => {
    vi.mocked(importCards).mockResolvedValue([
      { file: 'seraphina.png', characterId: 'seraphina', loreEntries: null, error: null },
      { file: 'broken.png', characterId: null, loreEntries: null, error: 'broken.png: the PNG is damaged: chunk IEND fails its checksum (CRC)' },
    ]);
    const onimported = vi.fn();
    const { container, findByTestId } = render(Gallery, { characters, onopen: () => {}, onimported });
    const files = [new File(['a'], 'seraphina.png'), new File(['b'], 'broken.png')];
    await fireEvent.drop(container.querySelector('.gallery') as HTMLElement, { dataTransfer: { files } });
    const report = await findByTestId('import-report');
    expect(importCards).toHaveBeenCalledWith(files);
    expect(report.textContent).toContain('Imported seraphina.png.');
    expect(report.textContent).toContain('broken.png: the PNG is damaged');
    expect(onimported).toHaveBeenCalled();
  });
});
