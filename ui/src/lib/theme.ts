// The window's theme: light or dark as Settings says, or the system's when it says "system"
// (followed live, as the system switches).
let media: MediaQueryList | null = null;
let chosen = 'system';

function paint() {
  const light = chosen === 'light' || (chosen === 'system' && !!media?.matches);
  document.documentElement.dataset.theme = light ? 'light' : 'dark';
}

export function applyTheme(theme: string) {
  chosen = theme;
  if (!media && typeof window.matchMedia === 'function') {
    media = window.matchMedia('(prefers-color-scheme: light)');
    media.addEventListener?.('change', paint);
  }
  paint();
}
