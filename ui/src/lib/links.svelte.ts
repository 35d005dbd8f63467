// The link a person clicked in a message or a card, waiting for their confirmation before it
// opens in the system browser (LinkConfirm.svelte). Never opened inside the window.
export const links = $state<{ pending: string | null }>({ pending: null });

export function askToOpen(href: string) {
  links.pending = href;
}
