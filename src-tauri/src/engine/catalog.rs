//! The model catalog: companion models on Hugging Face that Troupe suggests, with what each is
//! good at, its licence, size, context and the memory it needs, and whether it suits this
//! machine. The list is data (`catalog.json`, beside this file), so it can be updated without
//! touching code; it is compiled in, so the catalog shows with no network. Downloading an entry
//! goes through `download` like any other file.

use std::sync::LazyLock;

use serde::Deserialize;

use super::models::{self, Fit, Memory};

/// One suggested model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// Stable, short: `troupe models get ID`.
    pub id: String,
    pub name: String,
    /// Hugging Face "owner/name".
    pub repo: String,
    /// The GGUF file in it.
    pub file: String,
    pub parameters: u64,
    pub size_bytes: u64,
    pub context_length: u64,
    /// For the memory estimate (see catalog.json's "about").
    pub kv_bytes_per_token: u64,
    /// An SPDX identifier.
    pub licence: String,
    pub good_at: String,
    pub languages: String,
}

impl Entry {
    /// Memory it needs with the context Troupe uses.
    pub fn need(&self) -> u64 {
        models::need(
            self.size_bytes,
            Some(self.context_length),
            Some(self.kv_bytes_per_token),
        )
    }

    /// Whether it suits a machine with `mem`, and why.
    pub fn fit(&self, mem: &Memory) -> (Fit, String) {
        models::fit_need(self.size_bytes, self.need(), mem)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    about: String,
    models: Vec<Entry>,
}

/// Licences the catalog may suggest: personal use without registering or accepting terms.
pub const OPEN_LICENCES: &[&str] = &["Apache-2.0", "MIT"];

static CATALOG: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    // Checked by the tests below, so a bad edit fails CI instead of a user's window.
    serde_json::from_str::<File>(include_str!("catalog.json"))
        .map(|f| f.models)
        .unwrap_or_default()
});

/// The catalog, in the order it is shown.
pub fn entries() -> &'static [Entry] {
    &CATALOG
}

/// An entry by id.
pub fn entry(id: &str) -> Option<&'static Entry> {
    entries().iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::download::Request;

    #[test]
    fn the_catalog_parses_and_every_entry_is_sound() {
        let file: File = serde_json::from_str(include_str!("catalog.json")).expect("catalog.json");
        assert!(file.models.len() >= 6, "a catalog worth the name");
        let mut ids = std::collections::HashSet::new();
        for e in &file.models {
            assert!(ids.insert(&e.id), "{}: ids are unique", e.id);
            assert!(
                OPEN_LICENCES.contains(&e.licence.as_str()),
                "{}: {}",
                e.id,
                e.licence
            );
            let r = Request::new(&e.repo, &e.file);
            assert_eq!(
                (r.repo.as_str(), r.file.as_str()),
                (e.repo.as_str(), e.file.as_str())
            );
            assert_eq!(e.repo.split('/').count(), 2, "{}: owner/name", e.id);
            assert!(e.file.to_lowercase().ends_with(".gguf"), "{}", e.id);
            assert!(
                e.size_bytes > 50_000_000 && e.size_bytes < 16_000_000_000,
                "{}",
                e.id
            );
            assert!(e.parameters > e.size_bytes / 2, "{}: 4-bit weights", e.id);
            assert!(
                e.context_length >= 2048 && e.kv_bytes_per_token > 0,
                "{}",
                e.id
            );
            assert!(!e.good_at.is_empty() && !e.name.is_empty(), "{}", e.id);
        }
        assert_eq!(entries().len(), file.models.len());
    }

    #[test]
    fn fit_follows_the_machine() {
        let gb = 1_000_000_000;
        let small = entry("qwen2.5-coder-0.5b").unwrap();
        let big = entry("mistral-nemo-12b").unwrap();
        let laptop = Memory {
            total: 8 * gb,
            available: 6 * gb,
            gpu: None,
        };
        assert_eq!(small.fit(&laptop).0, Fit::Fits);
        assert_eq!(big.fit(&laptop).0, Fit::WontFit, "{}", big.fit(&laptop).1);
        let workstation = Memory {
            total: 64 * gb,
            available: 60 * gb,
            gpu: None,
        };
        assert_eq!(
            big.fit(&workstation).0,
            Fit::MaySlow,
            "12 B on a CPU is slow"
        );
        let gpu = Memory {
            total: 32 * gb,
            available: 30 * gb,
            gpu: Some(24 * gb),
        };
        assert_eq!(big.fit(&gpu).0, Fit::Fits);
        // SmolLM2-1.7B has no grouped-query attention: its KV cache is most of its need.
        let smol = entry("smollm2-1.7b").unwrap();
        assert!(
            smol.need() > smol.size_bytes + 700_000_000,
            "{}",
            smol.need()
        );
    }
}
