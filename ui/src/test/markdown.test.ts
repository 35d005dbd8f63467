// Markdown.svelte on the text cards and models write: the common subset renders as elements,
// and nothing in the text becomes HTML, a script, a fetched image or a link the window follows.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render } from '@testing-library/svelte';
import Markdown from '../components/Markdown.svelte';
import { links } from '../lib/links.svelte';
import { MAX_MARKDOWN, safeHref } from '../lib/markdown';

afterEach(() => {
  cleanup();
  links.pending = null;
});

const show = (text: string) => render(Markdown, { text }).container;

describe('Markdown', () => {
  it('renders paragraphs, emphasis, role-play actions, lists, quotes and code', () => {
    const c = show(
      '*waves* Hello **there**, _friend_.\n\n- bread\n- coffee\n\n1. first\n2. second\n\n> a saying\n\n`x < y` and\n\n```\nlet a = 1;\n```',
    );
    expect(c.querySelector('p em')?.textContent).toBe('waves');
    expect(c.querySelector('strong')?.textContent).toBe('there');
    expect(c.querySelectorAll('ul li')).toHaveLength(2);
    expect(c.querySelector('ol li')?.textContent).toBe('first');
    expect(c.querySelector('blockquote')?.textContent).toBe('a saying');
    expect(c.querySelector('p code')?.textContent).toBe('x < y');
    expect(c.querySelector('pre code')?.textContent).toBe('let a = 1;');
    expect(c.querySelector('p')?.textContent).toBe('waves Hello there, friend.');
  });

  it('keeps single line breaks and leaves a lone asterisk alone', () => {
    const c = show('one\ntwo\n\n2 * 3 = 6');
    expect(c.querySelectorAll('br')).toHaveLength(1);
    expect(c.textContent).toContain('2 * 3 = 6');
  });

  it('shows raw HTML as text and never runs or fetches anything', () => {
    const payload = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold?</b>';
    const c = show(`Hi ${payload}\n\n${payload}\n\n![avatar](http://tracker.example/pixel.png)`);
    expect(c.querySelector('img, script, b, iframe')).toBeNull();
    expect(c.textContent).toContain('<script>');
    expect(c.textContent).toContain('[avatar]');
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it('makes only web and mail links links, and asks before opening one', async () => {
    const c = show('[site](https://example.org/a) [bad](javascript:alert(1)) [file](file:///etc/passwd)');
    const anchors = c.querySelectorAll('a');
    expect(anchors).toHaveLength(1);
    expect(c.textContent).toContain('bad');
    await fireEvent.click(anchors[0]);
    expect(links.pending).toBe('https://example.org/a');
    expect(safeHref('mailto:a@b.c')).toBe('mailto:a@b.c');
    expect(safeHref('data:text/html,x')).toBeNull();
  });

  it('renders tables', () => {
    const c = show('| a | b |\n|---|---|\n| 1 | 2 |');
    expect(c.querySelectorAll('th')).toHaveLength(2);
    expect(c.querySelector('td')?.textContent).toBe('1');
  });

  it('falls back to plain text beyond its size limit', () => {
    const c = show('**x** '.repeat(MAX_MARKDOWN / 6 + 10));
    expect(c.querySelector('strong')).toBeNull();
    expect(c.textContent?.startsWith('**x**')).toBe(true);
  });
});
