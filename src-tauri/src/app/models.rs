//! The model manager as the front ends use it: the list of model files with what suits this
//! machine, adding, forgetting and choosing a file (each checked before it is offered), and
//! downloads. Operations that change settings change the `Settings` they are given; the front
//! end saves them its own way (the window through its settings store, the CLI to the file).

use std::path::{Path, PathBuf};

use super::Troupe;
use crate::engine::models::{self, Memory, ModelFile};
use crate::engine::{self, check_model_file, download};
use crate::settings::{EngineChoice, Settings};

impl Troupe {
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
