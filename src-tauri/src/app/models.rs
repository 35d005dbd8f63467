//! The model manager as the front ends use it: the list of model files with what suits this
//! machine, adding, forgetting and choosing a file (each checked before it is offered), and
//! downloads. Operations that change settings change the `Settings` they are given; the front
//! end saves them its own way (the window through its settings store, the CLI to the file).

use std::path::{Path, PathBuf};

use super::Troupe;
use crate::engine::catalog::{self, Entry};
use crate::engine::models::{self, Fit, Memory, ModelFile};
use crate::engine::{self, check_model_file, download};
use crate::settings::{EngineChoice, Settings};

/// A catalog entry as this machine sees it.
#[derive(Debug, Clone)]
pub struct CatalogModel {
    pub entry: &'static Entry,
    pub fit: Fit,
    pub fit_reason: String,
    /// Where it is when it is already in the models folder (or is the model in use).
    pub installed: Option<PathBuf>,
    pub in_use: bool,
}

impl Troupe {
    /// The model catalog, each entry with whether it suits this machine and whether it is
    /// already here. `in_use` is the model file that would be loaded now.
    pub fn catalog(&self, in_use: &Path) -> Vec<CatalogModel> {
        let mem = models::machine_memory();
        catalog::entries()
            .iter()
            .map(|entry| {
                let (fit, fit_reason) = entry.fit(&mem);
                let here = self.paths.models().join(&entry.file);
                let named = in_use.file_name().is_some_and(|n| *n == *entry.file);
                let installed = [named.then(|| in_use.to_path_buf()), Some(here)]
                    .into_iter()
                    .flatten()
                    .find(|p| p.is_file());
                CatalogModel {
                    entry,
                    fit,
                    fit_reason,
                    in_use: named && installed.is_some(),
                    installed,
                }
            })
            .collect()
    }

    /// Downloads a catalog entry (as `download_model`) and makes it the model that runs.
    /// Returns its path; `settings` is changed, for the front end to save.
    pub async fn install_from_catalog(
        &self,
        settings: &mut Settings,
        id: &str,
        progress: impl FnMut(download::Progress),
        cancelled: impl Fn() -> bool,
    ) -> Result<PathBuf, download::Error> {
        let entry = catalog::entry(id).ok_or_else(|| download::Error::NotInCatalog(id.into()))?;
        let path = self
            .download_model(&entry.repo, &entry.file, progress, cancelled)
            .await?;
        self.choose_model(settings, &path)?;
        Ok(path)
    }

    /// This machine's memory (and GPU memory, where there is one), for fit hints.
    pub fn machine_memory(&self) -> Memory {
        models::machine_memory()
    }

    /// What a model file is and whether it suits this machine.
    pub fn describe_model(&self, path: &Path) -> ModelFile {
        models::describe(path, &models::machine_memory())
    }

    /// Adds a GGUF from elsewhere on disk to the list, after checking it is one Troupe can run.
    /// Returns whether `settings` changed.
    pub fn add_model(&self, settings: &mut Settings, path: &Path) -> Result<bool, engine::Error> {
        check_model_file(path)?;
        if settings.models.iter().any(|p| p == path) {
            return Ok(false);
        }
        settings.models.push(path.to_path_buf());
        Ok(true)
    }

    /// Takes an added file off the list (the file itself is left alone).
    pub fn forget_model(&self, settings: &mut Settings, path: &Path) {
        settings.models.retain(|p| p != path);
    }

    /// Makes a model file the one that runs (the local engine), after checking it.
    pub fn choose_model(&self, settings: &mut Settings, path: &Path) -> Result<(), engine::Error> {
        check_model_file(path)?;
        settings.model_path = (path != self.paths.default_model()).then(|| path.to_path_buf());
        settings.engine = EngineChoice::Local;
        Ok(())
    }

    /// Downloads `file` from the Hugging Face repository `repo` (HF_ENDPOINT, HF_TOKEN) into
    /// the models folder: resumes an interrupted download and checks its SHA-256. `progress`
    /// is called as it goes; `cancelled` is asked between pieces.
    pub async fn download_model(
        &self,
        repo: &str,
        file: &str,
        progress: impl FnMut(download::Progress),
        cancelled: impl Fn() -> bool,
    ) -> Result<PathBuf, download::Error> {
        let token = std::env::var("HF_TOKEN").ok();
        download::download(
            &download::endpoint(),
            &download::Request::new(repo, file),
            &self.paths.models(),
            token.as_deref(),
            progress,
            cancelled,
        )
        .await
    }
}
