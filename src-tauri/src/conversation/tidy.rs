//! Tidying what a model writes: stop strings cut out of a stream (`StopFilter`), a leading
//! name label dropped (`strip_label`), a reply cut off mid-sentence trimmed to its last full
//! sentence, and a Session's title made from its first message. Pure text in, text out.

/// `text` up to the end of its last complete sentence (closing quotes and `*` included), or all
/// of it when it has no sentence end at all.
pub fn trim_incomplete_sentence(text: &str) -> &str {
    let closers = ['"', '\'', '*', ')', '\u{201d}', '\u{2019}'];
    let mut end = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '\u{2026}') {
            let mut j = i + c.len_utf8();
            while let Some(&(k, n)) = chars.peek() {
                if matches!(n, '.' | '!' | '?') || closers.contains(&n) {
                    j = k + n.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            end = Some(j);
        }
    }
    match end {
        Some(j) => &text[..j],
        None => text,
    }
}

/// Holds back streamed text that might be the start of a stop string, and cuts the text at the
/// first stop string. (mistral.rs stops on stop strings too, but streams one token past them.)
#[derive(Debug)]
pub struct StopFilter {
    stops: Vec<String>,
    text: String,
    shown: usize,
    stopped: bool,
}

impl StopFilter {
    pub fn new(stops: Vec<String>) -> StopFilter {
        StopFilter {
            stops,
            text: String::new(),
            shown: 0,
            stopped: false,
        }
    }

    /// Adds a streamed piece; returns the text that is now safe to show (maybe empty).
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.text.push_str(piece);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.stopped = true;
            self.text.truncate(at);
            return self.release(at);
        }
        // The longest tail of the text that could still grow into a stop string stays hidden.
        let held = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(move |&n| s.is_char_boundary(n))
                    .map(move |n| &s[..n])
            })
            .filter(|prefix| self.text.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let upto = self.text.len() - held;
        self.release(upto)
    }

    /// The rest of the text, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let end = self.text.len();
        self.release(end)
    }

    /// True once a stop string was seen: the caller should stop generating.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Everything shown so far.
    pub fn shown(&self) -> &str {
        &self.text[..self.shown]
    }

    fn release(&mut self, upto: usize) -> String {
        if upto <= self.shown {
            return String::new();
        }
        let out = self.text[self.shown..upto].to_string();
        self.shown = upto;
        out
    }
}

/// The opening of a reply without a leading `label` ("Name:"): `None` while `held` could still
/// become the label, else the text to show. Spacing and case inside the label do not count: the
/// small model writes "SherlockHolmes:" as often as "Sherlock Holmes:", and a label left in a
/// reply teaches it, through the history, to open every later reply the same way.
pub fn strip_label(held: &str, label: &str) -> Option<String> {
    let t = held.trim_start();
    let mut want = label.chars().filter(|c| !c.is_whitespace()).peekable();
    for (i, c) in t.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        match want.next() {
            Some(w) if w.to_lowercase().eq(c.to_lowercase()) => {
                if want.peek().is_none() {
                    let rest = t[i + c.len_utf8()..].trim_start();
                    // Only the label so far: wait for the words after it.
                    return (!rest.is_empty()).then(|| rest.to_string());
                }
            }
            _ => return Some(t.to_string()),
        }
    }
    // Everything so far matches the label's start: it could still become the label.
    None
}

/// A Session's title from its first message: its first words, up to about 40 characters.
pub fn title_from(text: &str) -> String {
    let mut title = String::new();
    for word in text.split_whitespace() {
        if !title.is_empty() && title.len() + word.len() > 40 {
            title.push('…');
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    let chars: Vec<char> = title.chars().collect();
    if chars.len() > 48 {
        chars[..47].iter().collect::<String>() + "…"
    } else {
        title
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::prompt::stop_strings;

    #[test]
    fn stop_filter_cuts_at_stop_and_holds_back_partial_matches() {
        let mut f = StopFilter::new(stop_strings());
        assert_eq!(f.push("Hello"), "Hello");
        assert_eq!(f.push(" there.\nUs"), " there.");
        assert_eq!(f.push("er: hi"), "");
        assert!(f.stopped());
        assert_eq!(f.shown(), "Hello there.");
        assert_eq!(f.finish(), "");

        let mut f = StopFilter::new(stop_strings());
        assert_eq!(f.push("Line one\n"), "Line one");
        assert_eq!(f.push("Line two"), "\nLine two");
        assert_eq!(f.finish(), "");
        assert!(!f.stopped());

        let mut f = StopFilter::new(stop_strings());
        assert_eq!(f.push("ends with <|im"), "ends with ");
        assert_eq!(f.finish(), "<|im");
    }

    #[test]
    fn incomplete_sentences_are_trimmed() {
        assert_eq!(
            trim_incomplete_sentence("I went home. Then I saw"),
            "I went home."
        );
        assert_eq!(
            trim_incomplete_sentence("*smiles.* Well! And so"),
            "*smiles.* Well!"
        );
        assert_eq!(
            trim_incomplete_sentence("\"Elementary.\" He said that the"),
            "\"Elementary.\""
        );
        assert_eq!(
            trim_incomplete_sentence("no sentence end at all"),
            "no sentence end at all"
        );
        assert_eq!(
            trim_incomplete_sentence("Wait... what?! Right"),
            "Wait... what?!"
        );
    }

    #[test]
    fn stop_filter_is_safe_with_multibyte_text() {
        let mut f = StopFilter::new(stop_strings());
        assert_eq!(f.push("¡Olé! ñandú 🎻"), "¡Olé! ñandú 🎻");
        assert_eq!(f.push("\n"), "");
        assert_eq!(f.push("¿Sí?"), "\n¿Sí?");
    }
}
