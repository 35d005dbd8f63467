// The message catalog: both languages complete, the same placeholders in each, the keys that
// components build at run time present, and the window switching language as a whole.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render } from '@testing-library/svelte';
import { messages } from '../lib/messages';
import { errorText, fromTag, i18n, setLanguage, t } from '../lib/i18n.svelte';
import { ago, categoryLabel, scenarioLabel } from '../lib/format';
import { headline, headlineShort, metricLabel } from '../lib/eval';
import { METRICS } from '../lib/ratings';
import Welcome from '../components/Welcome.svelte';
import type { Settings } from '../api/types';

afterEach(() => {
  cleanup();
  setLanguage('en');
});

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('the message catalog', () => {
  it('has English and Chinese for every key, with the same placeholders', () => {
    for (const [key, [en, zh]] of Object.entries(messages)) {
      expect(en.trim(), key).not.toBe('');
      expect(zh.trim(), key).not.toBe('');
      expect(placeholders(zh), key).toEqual(placeholders(en));
    }
    // A translation, not a copy: only names and codes read the same in both.
    const same = Object.entries(messages).filter(([, [en, zh]]) => en === zh).map(([k]) => k);
    expect(same).toEqual(['settings.language.en', 'settings.language.zh-CN']);
  });

  it('has every key the components build at run time', () => {
    const built = [
      ...['identity', 'interests', 'viewpoints', 'experiences', 'achievements', 'relationships', 'other',
        'linguisticStyle', 'emotionalExpression', 'interactionPatterns', 'description', 'personality', 'setting',
        'systemPrompt', 'postHistoryInstructions', 'creatorNotes'].flatMap((k) => [`editor.${k}`, `editor.${k}.hint`]),
      ...['summary', 'paraphrase', 'self_intro'].map((f) => `editor.form.${f}`),
      ...['pinned', 'fact', 'summary'].flatMap((k) => [`memory.${k}`, `memory.${k}.empty`]),
      ...['fits', 'may_slow', 'wont_fit', 'unusable'].map((f) => `fit.${f}`),
      ...['daily', 'migration', 'restore', 'purge', 'manual', 'export'].map((r) => `backups.reason.${r}`),
      ...['system', 'light', 'dark'].map((v) => `settings.theme.${v}`),
      ...['system', 'en', 'zh-CN'].map((v) => `settings.language.${v}`),
      ...['balanced', 'precise', 'creative', 'deterministic', 'custom'].map((p) => `fields.preset.${p}`),
      ...['memory', 'consistency', 'repetition', 'speed'].map((s) => `eval.suite.${s}`),
      ...headline.map((k) => `short.${k}`),
      ...METRICS.flatMap((m) => [`rate.${m}`, `rate.${m}.hint`]),
      ...['present', 'muted', 'left', 'trash'].map((s) => `group.state.${s}`),
      ...['natural', 'list', 'pooled', 'manual'].flatMap((s) => [`group.strategy.${s}`, `group.strategy.${s}.hint`]),
    ];
    expect(built.filter((k) => !(k in messages))).toEqual([]);
    expect(headline.map(headlineShort).every((s) => s && !s.startsWith('short.'))).toBe(true);
  });

  it('fills placeholders and speaks the chosen language', () => {
    expect(t('gallery.deleted', { name: 'Ada' })).toBe('Deleted Ada.');
    setLanguage('zh-CN');
    expect(i18n.locale).toBe('zh-CN');
    expect(document.documentElement.lang).toBe('zh-CN');
    expect(t('gallery.deleted', { name: 'Ada' })).toBe('已删除 Ada。');
    expect(categoryLabel('fictional')).toBe('虚构角色');
    expect(scenarioLabel('interview')).toBe('访谈');
    expect(ago(Date.now() - 3 * 86_400_000)).toBe('3 天前');
    expect(metricLabel({ suite: 'repetition', name: 'loops' })).toBe('陷入循环的回复');
  });

  it('says every backend error in the chosen language, keeping its detail', () => {
    const codes = ['not_found', 'empty_message', 'message_too_long', 'busy', 'model_loading', 'model_unavailable',
      'reply_failed', 'not_last_reply', 'invalid_setting', 'download_failed', 'bad_card', 'invalid_character',
      'disk_full', 'bad_backup', 'stopped', 'invalid_rating', 'internal'];
    expect(codes.filter((c) => !(`error.${c}` in messages))).toEqual([]);
    const e = { code: 'bad_card', message: 'card.png has no character data' };
    expect(errorText(e)).toBe('card.png has no character data');
    setLanguage('zh-CN');
    expect(errorText(e)).toBe('无法读取角色卡；资料库没有任何改动。（card.png has no character data）');
    expect(errorText(new Error('plain'))).toBe('plain');
  });

  it('takes the system language when Settings says "system"', () => {
    expect(fromTag('zh-Hans-CN')).toBe('zh-CN');
    expect(fromTag('zh-TW')).toBe('zh-CN');
    expect(fromTag('en-GB')).toBe('en');
    expect(fromTag(undefined)).toBe('en');
  });

  it('renders a whole view in Chinese, with no English left', () => {
    setLanguage('zh-CN');
    const settings = { dataDir: '/home/me/.local/share/app.troupe', effectiveModelPath: '/m/qwen.gguf' } as Settings;
    const { container } = render(Welcome, { settings, ondone: () => {}, onmodels: () => {} });
    const text = (container.textContent ?? '').replace(settings.dataDir, '').replace('qwen.gguf', '').replace(/Troupe/g, '');
    expect(text).toContain('一切都留在这台电脑上');
    expect(text).not.toMatch(/[A-Za-z]{3,}/);
  });
});
