// Markdown as people write it in cards and as models write it in replies, parsed by `marked`'s
// lexer into tokens that Markdown.svelte turns into elements. No HTML is ever produced or
// inserted: raw HTML in the text comes back as its own text, images as their description (a
// card must not make the app fetch from the network), and only http(s) and mailto links are
// links at all. The text is untrusted (a card, a model).
import { Lexer, type Token, type Tokens } from 'marked';

export type { Token, Tokens };

/** Longest text parsed as markdown; beyond it, plain text (a pathological card cannot stall). */
export const MAX_MARKDOWN = 100_000;

export function blocks(text: string): Token[] {
  if (text.length > MAX_MARKDOWN) return [{ type: 'text', raw: text, text } as Tokens.Text];
  try {
    // gfm: tables and ~~strikethrough~~; breaks: a single newline is a line break, as in chat.
    return Lexer.lex(text, { gfm: true, breaks: true });
  } catch {
    return [{ type: 'text', raw: text, text } as Tokens.Text];
  }
}

/** A link's address when it may be opened in the system browser; null otherwise. */
export function safeHref(href: string | null | undefined): string | null {
  if (!href) return null;
  try {
    const u = new URL(href);
    return ['http:', 'https:', 'mailto:'].includes(u.protocol) ? u.href : null;
  } catch {
    return null;
  }
}
